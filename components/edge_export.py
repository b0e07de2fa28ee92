"""EdgeExport: TF Lite variants of every blessed model, gated on parity with the SavedModel.

Runs after the Evaluator and only for a blessed model. For each variant (float32, float16,
dynamic_range, int8 with representative rows from the train split) it converts with builtin ops
only (a Flex model does not run on LiteRT's runtimes), runs the LiteRT interpreter over the eval
split and compares with the SavedModel: the task metric's drop and the largest output difference.
A variant past its tolerance is left out (the Pusher ships only accepted variants, under
``<version>/tflite/``) and the report says why.

The edge model takes raw features, one input per feature. The Transform's normalization is folded
in as ``raw * scale + offset``, read from the Transform graph itself by probing it at 0, h and 2h,
with h the first power of ten that moves the output by at least PROBE_MOVE (z-scores and 0-1 scaling
are affine; anything else is refused). A step of 1 on a column of 10^9-scale values moves a float32
z-score by less than its rounding, and even on columns near 10^3 its rounding was 1e-4 of the scale.
Because each feature is its own input, int8 gives each its own scale (one scale over raw features
from 0.05 to 4,000 collapsed accuracy to 0.58 when measured). String features arrive as vocabulary
indices looked up on the host.
"""
import json
import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import Channel, artifact, artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components import metrics
from components.export import CALL_TRANSFORMED
from components.features import LABEL_OFFSET, LABEL_SCALE, PREDICTIONS, feature_vocabularies, transformed_name
from components.splits import read_split
from components.tasks import get_task
from components.transform import OOV_BUCKETS
from serving import examples as example_codec
from serving.columns import date_parts, days_from_civil, read_columns
from serving.edge_runtime import ARTIFACT_TYPE, REPORT_FILE, SIDECAR, SIGNATURE, EdgeModel, rows_to_inputs
from serving.images import PIXELS_SIGNATURE, ImageInfo, load_pixels, read_image_info

VARIANTS = ("float32", "float16", "dynamic_range", "int8")
# Per variant: largest allowed metric drop (AUC/accuracy points as fractions; RMSE relative) and
# largest output difference from the SavedModel (None: not checked), absolute for outputs within
# [-1, 1] and relative to the largest output beyond: a float32 model of prices near 180,000 differs
# from its SavedModel by float32's own rounding (~0.4), which an absolute 1e-4 refused.
DEFAULT_TOLERANCES: Dict[str, Dict[str, Optional[float]]] = {
    "float32": {"metric_drop": 0.001, "max_abs_diff": 1e-4},
    "float16": {"metric_drop": 0.005, "max_abs_diff": 1e-2},
    "dynamic_range": {"metric_drop": 0.01, "max_abs_diff": None},
    "int8": {"metric_drop": 0.01, "max_abs_diff": None},
}
REPRESENTATIVE_ROWS = 200
PARITY_ROWS = 2000
EXAMPLE_ROWS = 3  # raw rows kept in the sidecar (edge bench, smoke checks on a device)


class EdgeModelArtifact(artifact.Artifact):
    """TF Lite variants plus their sidecar; custom properties hold the parity results."""
    TYPE_NAME = ARTIFACT_TYPE


class EdgeExportError(ValueError):
    pass


# --- the raw -> model function ---------------------------------------------------------------------

def _probe_examples(raw_spec: Mapping[str, Any], value: float, overrides: Mapping[str, Any] = {}) -> bytes:
    """One example with every raw feature present: ``value`` for numbers, an empty string for text
    (``overrides``: name -> a cell to use instead)."""
    features = {}
    for name, feature in raw_spec.items():
        width = int(np.prod(feature.shape)) if getattr(feature, "shape", None) else 1
        cell = b"" if feature.dtype == tf.string else int(value) if feature.dtype.is_integer else float(value)
        cell = overrides.get(name, cell)
        features[name] = example_codec.feature([cell] * width)
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


# Three probes per date part, that part +0, +1, +2 (2001-03-05 was a Monday, day 64 of its year)
_DATE_PROBES = {"year": ((2001, 3, 5, 0), (2002, 3, 5, 0), (2003, 3, 5, 0)),
                "month": ((2001, 3, 5, 0), (2001, 4, 5, 0), (2001, 5, 5, 0)),
                "day_of_week": ((2001, 3, 5, 0), (2001, 3, 6, 0), (2001, 3, 7, 0)),
                "day_of_year": ((2001, 3, 5, 0), (2001, 3, 6, 0), (2001, 3, 7, 0)),
                "hour": ((2001, 3, 5, 0), (2001, 3, 5, 1), (2001, 3, 5, 2))}


def _date_cell(moment: Tuple[int, int, int, int], date_format: str, dtype: Any) -> Any:
    year, month, day, hour = moment
    if date_format == "unix":
        seconds = (days_from_civil(year, month, day) * 24 + hour) * 3600
        return int(seconds) if dtype.is_integer else float(seconds)
    if date_format == "mdy_slash":
        return f"{month:02d}/{day:02d}/{year} {hour:02d}:00".encode()
    separator = "/" if date_format == "ymd_slash" else "-"
    return f"{year}{separator}{month:02d}{separator}{day:02d} {hour:02d}:00".encode()


def _date_part_inputs(served: Any, raw_spec: Mapping[str, Any], name: str, date_format: str) -> List[Dict[str, Any]]:
    """Edge inputs for a date-time column: one float per part, which the host computes from the raw
    cell (``serving.columns.date_parts``), with the Transform's affine map of each part."""
    inputs = []
    for part, moments in _DATE_PROBES.items():
        cells = [_date_cell(m, date_format, raw_spec[name].dtype) for m in moments]
        probes = tf.constant([_probe_examples(raw_spec, 0.0, {name: cell}) for cell in cells])
        out = served.signatures["transform_features"](examples=probes)[transformed_name(f"{name}__{part}")].numpy()
        values = [date_parts(cell.decode() if isinstance(cell, bytes) else cell, date_format)[part] for cell in cells]
        z0, z1, z2 = (float(np.reshape(out[i], [-1])[0]) for i in range(3))
        scale = (z1 - z0) / (values[1] - values[0])
        offset = z0 - scale * values[0]
        inputs.append({"name": f"{name}__{part}", "kind": "date_part", "source": name, "part": part,
                       "format": date_format, "dtype": "float32", "shape": [], "transformed_shape": [1],
                       "scale": scale, "offset": offset, "fill": -offset / scale if abs(scale) > 1e-12 else 0.0,
                       "centre": values[0], "shift": z0})
    return inputs


PROBE_STEPS = tuple(10.0 ** k for k in range(13))  # 1 .. 10^12: raw scales from a fraction to trillions
PROBE_VALUES = (0.0, *(v for step in PROBE_STEPS for v in (step, 2 * step)))
PROBE_MOVE = 0.5  # a step that moves the transformed value this much keeps float32 rounding ~1e-7 of it


def affine_map(name: str, outputs: Sequence[float]) -> Tuple[float, float]:
    """(scale, offset) of the Transform's map of one numeric feature, from its outputs at
    PROBE_VALUES (as float32 carried them), in float64; EdgeExportError when it is not affine."""
    values = np.asarray(PROBE_VALUES, np.float32).astype(np.float64)
    z = np.asarray(outputs, np.float64)
    z0 = z[0]
    for i in range(len(PROBE_STEPS)):
        (h, z1), (h2, z2) = (values[1 + 2 * i], z[1 + 2 * i]), (values[2 + 2 * i], z[2 + 2 * i])
        if not (math.isfinite(z0) and math.isfinite(z1) and math.isfinite(z2)):
            break
        if abs(z1 - z0) < PROBE_MOVE:
            continue
        scale = (z1 - z0) / h
        if math.isclose(z2, z0 + scale * h2, rel_tol=1e-4, abs_tol=1e-5 * max(1.0, abs(z0))):
            return scale, z0
        break
    raise EdgeExportError(f"feature '{name}': the Transform is not an affine map of the raw value; it "
                          "cannot be folded into the edge model")


def image_input(info: ImageInfo) -> Dict[str, Any]:
    """An image model's one edge input: the decoded, resized RGB pixels (0-255; the host decodes and
    resizes, ``serving.images``), scaled in the model as the Transform does."""
    shape = [info.size, info.size, info.channels]
    return {"name": info.feature, "kind": "image", "dtype": "float32", "shape": shape, "transformed_shape": shape,
            "scale": info.scale, "offset": info.offset, "fill": 0.0}


def edge_inputs(served: Any, model_dir: Path, tft_output: tft.TFTransformOutput,
                labels: Sequence[str]) -> List[Dict[str, Any]]:
    """One entry per raw feature: how the host feeds it and the affine map the Transform applies.
    ``served``: the SavedModel at ``model_dir``, loaded (once per export: a load is seconds)."""
    image = read_image_info(model_dir)
    if image is not None:
        return [image_input(image)]
    full_spec = tft_output.raw_feature_spec()
    columns = read_columns(model_dir)  # a user's table: column kinds (booleans, categories, date-times)
    probes = tf.constant([_probe_examples(full_spec, v) for v in PROBE_VALUES])
    transformed = {k: v.numpy() for k, v in served.signatures["transform_features"](examples=probes).items()}
    inputs, vocabularies = [], feature_vocabularies(tft_output)
    for name, feature in sorted(full_spec.items()):
        if name in labels:
            continue
        kind = columns.kinds.get(name, "")
        if kind == "datetime":
            inputs.extend(_date_part_inputs(served, full_spec, name, columns.date_formats.get(name, "iso")))
            continue
        out = transformed[transformed_name(name)]
        if feature.dtype == tf.string or kind in ("string", "boolean"):
            vocabulary = [v.decode() for v in vocabularies.get(name, ())]
            inputs.append({"name": name, "kind": "string", "dtype": "int32", "shape": [],
                           "vocabulary": vocabulary, "oov_index": len(vocabulary) if OOV_BUCKETS else -1,
                           **({"normalize": "boolean"} if kind == "boolean" else {})})
            continue
        scale, offset = affine_map(name, np.reshape(out, [len(PROBE_VALUES), -1])[:, 0])
        shape = [int(d) for d in getattr(feature, "shape", [])]
        tensor = shape not in ([], [1])
        inputs.append({"name": name, "kind": "tensor" if tensor else "numeric", "dtype": "float32",
                       "shape": shape if tensor else [], "transformed_shape": list(out.shape[1:]),
                       "scale": scale, "offset": offset, "fill": -offset / scale})
    _centre_maps(served, full_spec, [spec for spec in inputs if spec["kind"] in ("numeric", "tensor")])
    return inputs


def _centre_maps(served: Any, full_spec: Mapping[str, Any], numeric: List[Dict[str, Any]]) -> None:
    """Each numeric map measured again around the value the Transform sends to 0 (its mean), so
    that the edge computes ``(raw - centre) * scale + shift`` as the Transform's ``(x - mean) / std``
    does: measured from 0, a column of years (mean 2008, std 0.8) carried a z of -2,556 whose
    float32 rounding moved its scale by 2e-4, half a z at the data."""
    if not numeric:
        return
    fed: Dict[str, List[float]] = {}
    for spec in numeric:
        integer = full_spec[spec["name"]].dtype.is_integer
        step = 10.0 ** math.ceil(math.log10(PROBE_MOVE / abs(spec["scale"])))
        centre = float(round(spec["fill"])) if integer else spec["fill"]
        step = max(1.0, step) if integer else step
        fed[spec["name"]] = [int(centre + k * step) if integer else float(np.float32(centre + k * step))
                             for k in range(3)]
    probes = tf.constant([_probe_examples(full_spec, 0.0, {name: cells[k] for name, cells in fed.items()})
                          for k in range(3)])
    out = served.signatures["transform_features"](examples=probes)
    for spec in numeric:
        (v0, v1, v2), name = (float(v) for v in fed[spec["name"]]), spec["name"]
        z0, z1, z2 = (float(z) for z in np.reshape(out[transformed_name(name)].numpy(), [3, -1])[:, 0])
        scale = (z1 - z0) / (v1 - v0)
        if not math.isclose(z2, z0 + scale * (v2 - v0), rel_tol=1e-4, abs_tol=1e-5):
            raise EdgeExportError(f"feature '{name}': the Transform is not an affine map of the raw value near "
                                  "its mean; it cannot be folded into the edge model")
        spec.update(scale=scale, offset=z0 - scale * v0, fill=v0 - z0 / scale, centre=v0, shift=z0)


def label_scaling(served: Any, tft_output: tft.TFTransformOutput) -> Optional[Tuple[float, float]]:
    """A regression label's (mean, standard deviation) the model's output is scaled back with, if any."""
    probe = tf.constant([_probe_examples(tft_output.raw_feature_spec(), 0.0)])
    out = served.signatures["transform_features"](examples=probe)
    if LABEL_SCALE not in out:
        return None
    return float(np.reshape(out[LABEL_OFFSET].numpy(), [-1])[0]), float(np.reshape(out[LABEL_SCALE].numpy(), [-1])[0])


def edge_function(model: Any, inputs: List[Dict[str, Any]], task: str,
                  scaling: Optional[Tuple[float, float]] = None) -> Any:
    """A concrete function from raw inputs (by name) to the loaded SavedModel's outputs (through its
    ``CALL_TRANSFORMED`` function, components.export.save_model), with builtin-convertible ops;
    ``scaling``: a regression label's (mean, std), as the exported signatures apply it."""
    specs = {spec["name"]: tf.TensorSpec([None, *spec["shape"]], tf.int32 if spec["kind"] == "string" else tf.float32,
                                         name=spec["name"]) for spec in inputs}
    window = next((s for s in inputs if s["kind"] == "tensor"), None)

    @tf.function(input_signature=[specs])
    def edge(features):
        transformed = {}
        for spec in inputs:
            value = features[spec["name"]]
            if spec["kind"] == "string":
                transformed[transformed_name(spec["name"])] = tf.reshape(tf.cast(value, tf.int64), [-1, 1])
            else:
                # Centred first, as the Transform's (x - mean) / std is: raw * scale + offset cancels
                # in float32 where the mean is many standard deviations from 0 (years, 10^9 counts).
                centre, shift = spec.get("centre", 0.0), spec.get("shift", spec["offset"])
                transformed[transformed_name(spec["name"])] = tf.reshape(
                    (value - centre) * spec["scale"] + shift, [-1, *spec["transformed_shape"]])
        outputs = getattr(model, CALL_TRANSFORMED)(transformed)
        outputs = dict(outputs) if isinstance(outputs, dict) else {PREDICTIONS: outputs}
        if task == "forecast" and window is not None:  # back to the series' units
            outputs["forecast"] = (outputs[PREDICTIONS] - window["offset"]) / window["scale"]
        if scaling is not None:
            outputs[PREDICTIONS] = outputs[PREDICTIONS] * scaling[1] + scaling[0]
        return outputs

    return edge.get_concrete_function()


def save_edge_function(concrete: Any, model: Any, directory: Path) -> None:
    """The edge function as a SavedModel of its own, converted once per variant.

    TF Lite's ``from_concrete_functions`` saves and reloads the whole model (every restored Keras
    function: 20 s a conversion for MobileNet) for each conversion; this saves only the function and
    the variables it reads (3 s, once). A function that reads another resource (a lookup table) gets
    the whole model saved with it."""
    minimal = tf.Module()
    minimal.variables_read = list(concrete.variables)  # what it captures (a model saved without traces has no list)
    try:
        tf.saved_model.save(minimal, str(directory), signatures={SIGNATURE: concrete})
    except (AssertionError, ValueError) as e:  # TF asserts "an 'untracked' resource": more than variables
        if "untracked" not in str(e).lower():
            raise
        shutil.rmtree(directory, ignore_errors=True)
        tf.saved_model.save(model, str(directory), signatures={SIGNATURE: concrete})


def convert(saved_dir: Path, variant: str,
            representative: Optional[Callable[[], Iterable[Dict[str, np.ndarray]]]] = None,
            uint8_input: bool = False) -> Tuple[bytes, str]:
    """The flatbuffer of the edge SavedModel (``save_edge_function``) and a note (e.g. int8 falling
    back to float kernels for some ops). ``uint8_input``: a full-integer variant takes uint8 (an image
    model's 0-255 pixels)."""
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS

    def converter(ops, integer_input=False):
        c = tf.lite.TFLiteConverter.from_saved_model(str(saved_dir), signature_keys=[SIGNATURE])
        c.target_spec.supported_ops = ops
        if variant == "float16":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.target_spec.supported_types = [tf.float16]
        elif variant == "dynamic_range":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
        elif variant == "int8":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.representative_dataset = representative
            if integer_input:
                c.inference_input_type = tf.uint8
        return c

    if variant != "int8":
        return converter([builtins]).convert(), ""
    try:
        if uint8_input:
            return converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8], True).convert(), "full integer, uint8 input"
        return converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8]).convert(), "full integer"
    except Exception as e:  # noqa: BLE001 - the converter raises several types; the mixed build is the fallback
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8, builtins]).convert(), \
            f"int8 where possible, float kernels elsewhere ({first_line[:120]})"


def conversion_problem(error: Exception) -> str:
    """The op the converter could not lower, out of its long MLIR message."""
    text = str(error)
    ops = sorted(set(re.findall(r"failed to legalize operation '([\w.]+)'", text)))
    if ops:
        return f"{', '.join(ops)} has no builtin kernel (it would need Flex, which LiteRT runtimes lack)"
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op ([^\n]*?)(?: during|\n|$)", text)))
    if ops:
        return "; ".join(f"{op} {why}" for op, why in ops)[:300]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]


# --- parity ------------------------------------------------------------------------------------

def task_metric(task: str, labels: Optional[np.ndarray], predictions: np.ndarray) -> Tuple[str, Optional[float]]:
    """(name, value) of the task's gate metric, which the parity gate compares; none without labels."""
    if labels is None:
        return "", None
    name = get_task(task).gate_metric
    return name, metrics.value(name, labels, predictions)


Head = Tuple[str, str, Optional[np.ndarray]]  # (output key, task, labels) of one target


def _metric_check(head: Head, edge: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                  limit: Optional[float], prefix: str = "") -> Tuple[Dict[str, Any], str]:
    """One head's gate metric on the edge outputs against the SavedModel's: the facts and, when
    it dropped past ``limit``, the reason."""
    key, task, labels = head
    if labels is not None:  # rows without this head's label are not scored
        known = ~np.isnan(labels) if labels.dtype.kind == "f" else labels >= 0
        labels, edge, reference = labels[known], {key: edge[key][known]}, {key: reference[key][known]}
    name, value = task_metric(task, labels, edge[key])
    _, ref_value = task_metric(task, labels, reference[key])
    if not name or value is None or ref_value is None or math.isnan(ref_value):
        return {}, ""
    drop = metrics.worsening(name, ref_value, value)
    facts: Dict[str, Any] = {"metric": prefix + name, "value": value, "reference": ref_value, "metric_drop": drop}
    if limit is not None and name.endswith("accuracy"):
        # One row is the finest change an accuracy shows: on 66 eval rows a single row sitting on a
        # decision boundary (top scores 0.002 apart) moves it 1.5 points, past a 1-point limit.
        limit = max(limit, 1.0 / len(labels))
        facts["metric_drop_limit"] = limit
    if limit is not None and (math.isnan(value) or drop > limit + 1e-9):  # 1 - 0.98 is 0.020000000000000018
        return facts, f"{prefix}{name} {value:.4f} vs {ref_value:.4f} (drop {drop:.4f} > {limit:g})"
    return facts, ""


def parity(edge: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], task: str,
           labels: Optional[np.ndarray], tolerance: Mapping[str, Optional[float]],
           heads: Sequence[Head] = ()) -> Dict[str, Any]:
    """The edge outputs against the SavedModel's: the largest difference and the gate metric's drop
    (``heads``: one (output, task, labels) per target of a multitask model, each gated; else the
    task's one output with ``labels``)."""
    shared = sorted(set(edge) & set(reference))
    if not shared:
        raise EdgeExportError(f"edge outputs {sorted(edge)} share no name with the SavedModel's {sorted(reference)}")
    def rows(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float64).reshape(len(values), -1)

    # A 0/1 verdict (an anomaly flag: score > threshold) flips on a row whose score sits on the
    # threshold under any rounding, so it is not held to the absolute tolerance: the share of rows
    # that flipped is reported, and the task metric's drop still gates the variant.
    verdicts = [k for k in shared if np.isin(reference[k], (0, 1)).all() and np.isin(edge[k], (0, 1)).all()]
    continuous = [k for k in shared if k not in verdicts] or shared
    diff = max(float(np.max(np.abs(rows(edge[k]) - rows(reference[k])))) for k in continuous)
    scale = max([1.0] + [float(np.max(np.abs(rows(reference[k])), initial=0.0)) for k in continuous])
    result: Dict[str, Any] = {"max_abs_diff": diff}
    if scale > 1.0:
        result["output_scale"] = scale
    if verdicts and continuous is not shared:
        flipped = np.any(np.concatenate([rows(edge[k]) != rows(reference[k]) for k in verdicts], axis=1), axis=1)
        result["verdict_flips"] = float(flipped.mean())
    if not heads:
        key = get_task(task).prediction_key or PREDICTIONS
        heads = [(key if key in shared else shared[0], task, labels)]
    checks = [_metric_check(head, edge, reference, tolerance.get("metric_drop"),
                            f"{head[0]}/" if len(heads) > 1 else "") for head in heads if head[0] in shared]
    checks = [(facts, reason) for facts, reason in checks if facts]
    if checks:  # the worst head stands for the variant; each head's facts are kept
        result.update(max(checks, key=lambda check: check[0]["metric_drop"])[0])
        if len(heads) > 1:
            result["heads"] = {facts["metric"]: facts for facts, _ in checks}
    reasons = [reason for _, reason in checks if reason]
    limit = tolerance.get("max_abs_diff")
    if limit is not None and not diff <= limit * scale:
        relative = f" x {scale:.4g} (the largest output)" if scale > 1 else ""
        reasons.append(f"max |diff| {diff:.2e} > {limit:g}{relative}")
    result["accepted"] = not reasons
    result["reason"] = "; ".join(reasons)
    return result


# --- the export -------------------------------------------------------------------------------------

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


def export_edge(model_dir: Path, tft_output: tft.TFTransformOutput, task: str, targets: Sequence[Sequence[str]],
                train_examples: Sequence[bytes], eval_examples: Sequence[bytes], output_dir: Path,
                tolerances: Mapping[str, Mapping[str, Optional[float]]] = DEFAULT_TOLERANCES,
                representative_rows: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Writes accepted variants and ``edge.json`` into ``output_dir``; returns the full report (every
    variant, accepted or not, with its parity numbers). ``targets``: (label, task) pairs."""
    from components.trainer import class_names as label_classes

    labels = [label for label, _ in targets]
    served = tf.saved_model.load(str(model_dir))
    inputs = edge_inputs(served, model_dir, tft_output, labels)
    names = sorted({spec.get("source", spec["name"]) for spec in inputs})
    columns = read_columns(model_dir)
    image = read_image_info(model_dir)
    class_names = label_classes(tft_output, labels[0], task) if len(labels) == 1 else []
    sidecar: Dict[str, Any] = {"task": task, "labels": labels, "inputs": inputs,
                               **({"class_names": class_names} if class_names else {}),
                               **({"image": image.as_json()} if image else {}),
                               **({"columns": columns.as_json()} if columns.keys else {}),
                               "normalization": "folded into the model: transformed = (raw - centre) * scale + "
                                                "shift (= raw * scale + offset); a missing number is replaced "
                                                "by 'fill' on the host; "
                                                "strings are looked up in 'vocabulary' (else 'oov_index')",
                               "variants": {}}
    try:
        concrete = edge_function(served, inputs, task, label_scaling(served, tft_output))
    except Exception as e:  # noqa: BLE001 - any tracing failure means: no edge model for this family
        raise EdgeExportError(f"cannot build the edge function: {type(e).__name__}: {e}") from e
    rows_of = (lambda records: _image_rows(records, image)) if image else (lambda records: _raw_rows(records, names))
    rep_rows = representative_rows or rows_of(train_examples[:REPRESENTATIVE_ROWS])

    def representative():
        for row in rep_rows:
            yield rows_to_inputs(sidecar, [row])

    eval_rows = rows_of(eval_examples[:PARITY_ROWS])
    sidecar["example_rows"] = [] if image else [{k: v for k, v in row.items()} for row in eval_rows[:EXAMPLE_ROWS]]
    eval_inputs = rows_to_inputs(sidecar, eval_rows, "eval split")
    reference = {k: v.numpy() for k, v in served.signatures["serving_tf_example"](
        examples=tf.constant(list(eval_examples[:PARITY_ROWS]))).items()}
    if image:  # the edge model starts from the host's pixels: compare with the graph on those same pixels
        from_graph = reference
        reference = {k: v.numpy() for k, v in served.signatures[PIXELS_SIGNATURE](
            pixels=tf.constant(eval_inputs[image.feature])).items()}
        sidecar["host_decoding"] = _host_agreement(from_graph, reference, get_task(task).prediction_key or PREDICTIONS)
    label_values = _labels(eval_examples[:PARITY_ROWS], labels[0], task, class_names) if len(labels) == 1 else None
    heads = [(label, subtask, _labels(eval_examples[:PARITY_ROWS], label, subtask,
                                      label_classes(tft_output, label, subtask)))
             for label, subtask in targets] if len(labels) > 1 else []

    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-function-") as saved_dir:
        save_edge_function(concrete, served, Path(saved_dir))
        for variant in VARIANTS:
            entry: Dict[str, Any] = {"file": f"{variant}.tflite"}
            try:
                flatbuffer, note = convert(Path(saved_dir), variant, representative, uint8_input=image is not None)
            except Exception as e:  # noqa: BLE001 - e.g. an op with no builtin kernel
                entry.update(accepted=False, reason=f"not convertible with builtin ops only: {conversion_problem(e)}")
                sidecar["variants"][variant] = entry
                continue
            path = output_dir / entry["file"]
            path.write_bytes(flatbuffer)
            entry.update(size_bytes=len(flatbuffer), note=note)
            try:
                edge_outputs = EdgeModel(path).predict({k: v for k, v in eval_inputs.items()})
                entry.update(parity(edge_outputs, reference, task, label_values, tolerances[variant], heads))
            except Exception as e:  # noqa: BLE001 - one variant's failure leaves the others
                entry.update(accepted=False, reason=f"the TF Lite interpreter could not run it: "
                                                    f"{type(e).__name__}: {str(e).strip()[:200]}")
            if not entry["accepted"]:
                path.unlink()
            sidecar["variants"][variant] = entry
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
        model_dir = Path(model.uri) / "Format-Serving"
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

