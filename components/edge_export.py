"""EdgeExport: TF Lite variants of every blessed model, gated on parity with the SavedModel.

Runs after the Evaluator and only for a blessed model. For each variant (float32, float16,
dynamic_range, int8 with representative rows from the train split) it converts the edge function
(``components.edge_folding``: raw features in, the Transform folded in) with builtin ops only
(``components.edge_conversion``), runs the LiteRT interpreter over the eval split and compares with
the SavedModel (``components.edge_parity``): the task metric's drop and the largest output
difference. A variant past its tolerance is left out (the Pusher ships only accepted variants,
under ``<version>/tflite/``) and the report says why; an export that fails as a whole leaves every
variant out with the reason, and the model is pushed all the same.
"""
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import Channel, artifact, artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.edge_conversion import conversion_problem, convert, save_edge_function
from components.edge_folding import edge_function, edge_inputs, label_scaling
from components.edge_parity import DEFAULT_TOLERANCES, EdgeExportError, Head, parity
from components.edge_series import series_constants, series_edge_function, series_inputs
from components.export import FORECAST
from components.features import PREDICTIONS
from components.splits import read_split
from components.tasks import get_task
from serving.codec import examples as example_codec
from serving.codec.columns import read_columns
from serving.codec.images import PIXELS_SIGNATURE, ImageInfo, load_pixels, read_image_info
from serving.codec.model_extras import SERVING_MODEL_DIR
from serving.codec.periods import read_series_info
from serving.edge_runtime import ARTIFACT_TYPE, REPORT_FILE, SIDECAR, EdgeModel, rows_to_inputs

VARIANTS = ("float32", "float16", "dynamic_range", "int8")
REPRESENTATIVE_ROWS = 200
PARITY_ROWS = 2000
EXAMPLE_ROWS = 3  # raw rows kept in the sidecar (edge bench, smoke checks on a device)
SERIES_NORMALIZATION = ("computed in the model from the raw window, as the Transform does (components.edge_series): "
                        "the window less its mean over its seasonal naive error, the base forecast the train windows "
                        "chose, each covariate's moves scaled; next_date arrives as days since 1970-01-01")
NORMALIZATION = ("folded into the model: transformed = (raw - centre) * scale + shift (= raw * scale + offset); "
                 "a missing number is replaced by 'fill' on the host; strings are looked up in 'vocabulary' "
                 "(else 'oov_index')")


class EdgeModelArtifact(artifact.Artifact):
    """TF Lite variants plus their sidecar; custom properties hold the parity results."""
    TYPE_NAME = ARTIFACT_TYPE


def _raw_rows(serialized_examples: Sequence[bytes], names: Sequence[str]) -> List[Dict[str, Any]]:
    rows = []
    for serialized in serialized_examples:
        row: Dict[str, Any] = {}
        for name, values in example_codec.decode(serialized, names).items():
            row[name] = values[0] if values and isinstance(values[0], str) else example_codec.scalar_or_list(values)
        rows.append(row)
    return rows


def _host_agreement(graph: Mapping[str, np.ndarray], host: Mapping[str, np.ndarray], key: str) -> Dict[str, float]:
    """How the host's decoding (Pillow) agrees with the graph's (TF) on the same files: the share of
    equal top classes (or verdicts, for one score) and the largest difference of output ``key``."""
    key = key if key in graph and key in host else sorted(set(graph) & set(host))[0]
    graph_out, host_out = graph[key].astype(np.float64), host[key].astype(np.float64)
    top = (np.argmax(graph_out, -1) == np.argmax(host_out, -1)) if graph_out.shape[-1] > 1 else \
        ((graph_out > 0.5) == (host_out > 0.5)).reshape(-1)
    return {"top_class_agreement": float(np.mean(top)), "max_abs_diff": float(np.max(np.abs(graph_out - host_out))),
            "rows": int(len(graph_out))}


def _image_rows(serialized_examples: Sequence[bytes], image: ImageInfo) -> List[Dict[str, Any]]:
    """Each example's image decoded and resized by the host (as a device would), not by the graph."""
    rows = []
    for serialized in serialized_examples:
        data = (example_codec.decode(serialized, [image.feature], text=False)[image.feature] or [b""])[0]
        rows.append({image.feature: load_pixels(data, image.size)})
    return rows


def _labels(serialized_examples: Sequence[bytes], label: str, task: str,
            class_names: Sequence[str]) -> Optional[np.ndarray]:
    if task not in ("binary", "multiclass", "regression", "anomaly"):
        return None
    values = []
    for serialized in serialized_examples:
        cells = example_codec.decode(serialized, [label])[label]
        if not cells:  # a head whose label this row lacks (multitask): left out of its metric
            values.append(float("nan") if task == "regression" else -1)
            continue
        raw = cells[0]
        if task == "regression":
            values.append(float(raw))
        else:
            text = str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw)
            values.append(class_names.index(text) if text in class_names else -1)
    return np.asarray(values)


def _series_targets(serialized_examples: Sequence[bytes], label: str) -> np.ndarray:
    """[windows, horizon]: each eval window's targets in the series' units (a forecaster's MAE)."""
    return np.asarray([example_codec.decode(serialized, [label])[label] for serialized in serialized_examples],
                      np.float64)


def _reference(served: Any, eval_examples: Sequence[bytes], eval_inputs: Mapping[str, np.ndarray],
               image: Optional[ImageInfo], task: str, sidecar: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """The SavedModel's outputs the variants are held to: on the eval tf.Examples, or for an image
    model on the host's pixels (what the edge model starts from; how the host's decoding agrees
    with the graph's goes into the sidecar)."""
    reference = {k: v.numpy() for k, v in served.signatures["serving_tf_example"](
        examples=tf.constant(list(eval_examples))).items()}
    if image:
        from_graph = reference
        reference = {k: v.numpy() for k, v in served.signatures[PIXELS_SIGNATURE](
            pixels=tf.constant(eval_inputs[image.feature])).items()}
        sidecar["host_decoding"] = _host_agreement(from_graph, reference, get_task(task).prediction_key or PREDICTIONS)
    return reference


def _heads(tft_output: tft.TFTransformOutput, task: str, targets: Sequence[Sequence[str]],
           eval_examples: Sequence[bytes]) -> List[Head]:
    """(output, task, labels) per target of a multitask model, each gated on its own metric."""
    from components.trainer import class_names as label_classes

    if len(targets) < 2:
        return []
    return [(label, subtask, _labels(eval_examples, label, subtask, label_classes(tft_output, label, subtask)))
            for label, subtask in targets]


def _variant(saved_dir: Path, variant: str, output_dir: Path, representative: Any, uint8_input: bool,
             eval_inputs: Mapping[str, np.ndarray], check: Any) -> Dict[str, Any]:
    """One variant converted, run by the LiteRT interpreter and gated by ``check`` (outputs ->
    parity facts); its file kept only when accepted. Any failure leaves this variant out alone."""
    entry: Dict[str, Any] = {"file": f"{variant}.tflite"}
    try:
        flatbuffer, note = convert(saved_dir, variant, representative, uint8_input=uint8_input)
    except Exception as e:  # noqa: BLE001 - e.g. an op with no builtin kernel
        return {**entry, "accepted": False, "reason": f"not convertible with builtin ops only: {conversion_problem(e)}"}
    path = output_dir / entry["file"]
    path.write_bytes(flatbuffer)
    entry.update(size_bytes=len(flatbuffer), note=note)
    try:
        entry.update(check(EdgeModel(path).predict(dict(eval_inputs))))
    except Exception as e:  # noqa: BLE001 - the interpreter or the comparison failed on this variant
        entry.update(accepted=False, reason=f"the TF Lite interpreter could not run it: "
                                            f"{type(e).__name__}: {str(e).strip()[:200]}")
    if not entry["accepted"]:
        path.unlink()
    return entry


def export_edge(model_dir: Path, tft_output: tft.TFTransformOutput, task: str, targets: Sequence[Sequence[str]],
                train_examples: Sequence[bytes], eval_examples: Sequence[bytes], output_dir: Path,
                tolerances: Mapping[str, Mapping[str, Optional[float]]] = DEFAULT_TOLERANCES,
                representative_rows: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Writes accepted variants and ``edge.json`` into ``output_dir``; returns the full report (every
    variant, accepted or not, with its parity numbers). ``targets``: (label, task) pairs."""
    from components.trainer import class_names as label_classes

    labels = [label for label, _ in targets]
    served = tf.saved_model.load(str(model_dir))
    series = read_series_info(model_dir)
    inputs = series_inputs(series) if series else edge_inputs(served, model_dir, tft_output, labels)
    names = sorted({spec.get("source", spec["name"]) for spec in inputs})
    columns, image = read_columns(model_dir), read_image_info(model_dir)
    class_names = label_classes(tft_output, labels[0], task) if len(labels) == 1 else []
    sidecar: Dict[str, Any] = {"task": task, "labels": labels, "inputs": inputs,
                               **({"class_names": class_names} if class_names else {}),
                               **({"image": image.as_json()} if image else {}),
                               **({"columns": columns.as_json()} if columns.keys else {}),
                               **({"series": series.as_json()} if series else {}),
                               "normalization": SERIES_NORMALIZATION if series else NORMALIZATION, "variants": {}}
    try:
        if series:
            concrete = series_edge_function(served, series, series_constants(served, tft_output.raw_feature_spec(),
                                                                             series))
        else:
            concrete = edge_function(served, inputs, task, label_scaling(served, tft_output))
    except Exception as e:  # noqa: BLE001 - any tracing failure means: no edge model for this family
        raise EdgeExportError(f"cannot build the edge function: {type(e).__name__}: {e}") from e
    rows_of = (lambda records: _image_rows(records, image)) if image else (lambda records: _raw_rows(records, names))
    rep_rows = representative_rows or rows_of(train_examples[:REPRESENTATIVE_ROWS])

    def representative():
        for row in rep_rows:
            yield rows_to_inputs(sidecar, [row])

    eval_examples = list(eval_examples[:PARITY_ROWS])
    sidecar["parity_on"] = f"the eval split ({len(eval_examples)} rows)"
    if series:  # one eval window a series: the train windows add rows to compare on
        extra = list(train_examples[:PARITY_ROWS - len(eval_examples)])
        sidecar["parity_on"] = f"{len(eval_examples)} eval and {len(extra)} train windows"
        eval_examples += extra
    eval_rows = rows_of(eval_examples)
    sidecar["example_rows"] = [] if image else [dict(row) for row in eval_rows[:EXAMPLE_ROWS]]
    eval_inputs = rows_to_inputs(sidecar, eval_rows, "eval split")
    reference = _reference(served, eval_examples, eval_inputs, image, task, sidecar)
    label_values = _labels(eval_examples, labels[0], task, class_names) if len(labels) == 1 else None
    heads = [(FORECAST, task, _series_targets(eval_examples, labels[0]))] if series else \
        _heads(tft_output, task, targets, eval_examples)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-function-") as saved_dir:
        save_edge_function(concrete, served, Path(saved_dir))
        for variant in VARIANTS:
            sidecar["variants"][variant] = _variant(
                Path(saved_dir), variant, output_dir, representative, image is not None, eval_inputs,
                lambda outputs, v=variant: parity(outputs, reference, task, label_values, tolerances[v], heads))
    (output_dir / SIDECAR).write_text(json.dumps(
        {**sidecar, "variants": {k: v for k, v in sidecar["variants"].items() if v.get("accepted")}}, indent=1))
    return sidecar


def left_out(output_dir: Path, error: Exception) -> Dict[str, Any]:
    """The report of an export that failed as a whole: every variant left out with the reason, and
    nothing half-written left for the Pusher."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if not isinstance(error, EdgeExportError):
        reason = f"the export failed: {type(error).__name__}{': ' + reason if reason else ''}"
    for path in output_dir.glob("*") if output_dir.is_dir() else ():
        if path.suffix == ".tflite" or path.name == SIDECAR:
            path.unlink()
    return {"error": reason, "variants": {v: {"file": f"{v}.tflite", "accepted": False, "reason": reason}
                                          for v in VARIANTS}}


# --- the TFX component ------------------------------------------------------------------------------

class EdgeExportExecutor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        edge = artifact_utils.get_single_instance(output_dict["edge_model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        if not blessing.get_int_custom_property("blessed"):
            edge.set_int_custom_property("exported", 0)
            return
        model = artifact_utils.get_single_instance(input_dict["model"])
        model_dir = Path(model.uri) / SERVING_MODEL_DIR
        tft_output = tft.TFTransformOutput(artifact_utils.get_single_instance(input_dict["transform_graph"]).uri)
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        tolerances = {**DEFAULT_TOLERANCES, **json.loads(exec_properties.get("tolerances") or "{}")}
        try:
            report = export_edge(model_dir, tft_output, exec_properties["task"],
                                 json.loads(exec_properties["targets"]),
                                 read_split(examples, "train", REPRESENTATIVE_ROWS),
                                 read_split(examples, "eval", PARITY_ROWS), Path(edge.uri), tolerances)
        except Exception as e:  # noqa: BLE001 - the edge is optional: serving must never wait on it
            report = left_out(Path(edge.uri), e)
        Path(edge.uri).mkdir(parents=True, exist_ok=True)
        (Path(edge.uri) / REPORT_FILE).write_text(json.dumps(
            {k: v for k, v in report.items() if k not in ("inputs", "example_rows")}, indent=1))
        accepted = [v for v, entry in report["variants"].items() if entry.get("accepted")]
        edge.set_int_custom_property("exported", 1 if accepted else 0)
        edge.set_string_custom_property("accepted", ",".join(accepted))
        for variant, entry in report["variants"].items():
            for key in ("size_bytes", "max_abs_diff", "metric_drop", "value"):
                if entry.get(key) is not None:
                    edge.set_float_custom_property(f"{variant}_{key}", float(entry[key]))
            if entry.get("reason"):
                edge.set_string_custom_property(f"{variant}_reason", entry["reason"])


class EdgeExportSpec(ComponentSpec):
    PARAMETERS = {"task": ExecutionParameter(type=str), "targets": ExecutionParameter(type=str),
                  "tolerances": ExecutionParameter(type=str, optional=True)}
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {"edge_model": ChannelParameter(type=EdgeModelArtifact)}


class EdgeExport(base_component.BaseComponent):
    SPEC_CLASS = EdgeExportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(EdgeExportExecutor)

    def __init__(self, model: Channel, model_blessing: Channel, transform_graph: Channel, examples: Channel,
                 task: str, targets: Sequence[Sequence[str]],
                 tolerances: Optional[Mapping[str, Mapping[str, Optional[float]]]] = None):
        super().__init__(spec=EdgeExportSpec(
            model=model, model_blessing=model_blessing, transform_graph=transform_graph, examples=examples,
            task=task, targets=json.dumps([list(t) for t in targets]), tolerances=json.dumps(tolerances or {}),
            edge_model=Channel(type=EdgeModelArtifact)))


def copy_accepted(edge_uri: str, destination: Path) -> bool:
    """Copies the accepted variants and the sidecar (what the Pusher ships)."""
    source = Path(edge_uri)
    if not (source / SIDECAR).exists():
        return False
    destination.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.suffix == ".tflite" or path.name == SIDECAR:
            shutil.copy2(path, destination / path.name)
    return True

