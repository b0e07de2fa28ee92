"""The edge model's first half: from raw features, one input per feature, to what the model was
trained on, with the Transform folded in (no TFT in a TF Lite model).

The Transform's normalization of each number is read from the Transform graph itself by probing
it at 0, h and 2h, with h the first power of ten that moves the output by at least PROBE_MOVE
(z-scores and 0-1 scaling are affine; anything else is refused), then again around the value it
maps to 0: the model computes ``(raw - centre) * scale + shift`` as the Transform's
``(x - mean) / std`` does. A step of 1 on a column of 10^9-scale values moves a float32 z-score by
less than its rounding, and even on columns near 10^3 its rounding was 1e-4 of the scale. Because
each feature is its own input, int8 gives each its own scale (one scale over raw features from 0.05
to 4,000 collapsed accuracy to 0.58 when measured). String features arrive as vocabulary indices
looked up on the host; date-times as five parts the host computes.
"""
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.edge_parity import EdgeExportError
from components.export import CALL_TRANSFORMED
from components.features import LABEL_OFFSET, LABEL_SCALE, PREDICTIONS, feature_vocabularies, transformed_name
from components.transform import OOV_BUCKETS
from serving.codec import examples as example_codec
from serving.codec.columns import date_parts, days_from_civil, read_columns
from serving.codec.images import ImageInfo, read_image_info


def probe_example(raw_spec: Mapping[str, Any], value: float, overrides: Mapping[str, Any] = {}) -> bytes:
    """One example with every raw feature present: ``value`` for numbers, an empty string for text
    (``overrides``: name -> a cell to use instead, or a list of cells: the feature's whole value)."""
    features = {}
    for name, feature in raw_spec.items():
        width = int(np.prod(feature.shape)) if getattr(feature, "shape", None) else 1
        cell = b"" if feature.dtype == tf.string else int(value) if feature.dtype.is_integer else float(value)
        cell = overrides.get(name, cell)
        features[name] = example_codec.feature(cell if isinstance(cell, list) else [cell] * width)
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
    cell (``serving.codec.columns.date_parts``), with the Transform's affine map of each part."""
    inputs = []
    for part, moments in _DATE_PROBES.items():
        cells = [_date_cell(m, date_format, raw_spec[name].dtype) for m in moments]
        probes = tf.constant([probe_example(raw_spec, 0.0, {name: cell}) for cell in cells])
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
    resizes, ``serving.codec.images``), scaled in the model as the Transform does."""
    shape = [info.size, info.size, info.channels]
    return {"name": info.feature, "kind": "image", "dtype": "float32", "shape": shape, "transformed_shape": shape,
            "scale": info.scale, "offset": info.offset, "fill": 0.0, "centre": 0.0, "shift": info.offset}


def edge_inputs(served: Any, model_dir: Path, tft_output: tft.TFTransformOutput,
                labels: Sequence[str]) -> List[Dict[str, Any]]:
    """One entry per raw feature: how the host feeds it and the affine map the Transform applies.
    ``served``: the SavedModel at ``model_dir``, loaded (once per export: a load is seconds)."""
    image = read_image_info(model_dir)
    if image is not None:
        return [image_input(image)]
    full_spec = tft_output.raw_feature_spec()
    columns = read_columns(model_dir)  # a user's table: column kinds (booleans, categories, date-times)
    probes = tf.constant([probe_example(full_spec, v) for v in PROBE_VALUES])
    transformed = {k: v.numpy() for k, v in served.signatures["transform_features"](examples=probes).items()}
    inputs, vocabularies = [], feature_vocabularies(tft_output)
    for name, feature in sorted(full_spec.items()):
        if name in labels:
            continue
        kind = columns.kinds.get(name, "")
        if kind == "datetime":
            inputs.extend(_date_part_inputs(served, full_spec, name, columns.date_formats.get(name, "iso")))
            continue
        if kind == "text":
            raise EdgeExportError(f"feature '{name}' is free text: its words are split and looked up inside "
                                  "the Transform with string ops TF Lite's builtins lack; the SavedModel serves it")
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
    does: measured from 0, a column whose mean is far from 0 in standard deviations (years) has a
    z there whose float32 rounding misplaces the scale, and with it every value at the data."""
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
    probes = tf.constant([probe_example(full_spec, 0.0, {name: cells[k] for name, cells in fed.items()})
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
    probe = tf.constant([probe_example(tft_output.raw_feature_spec(), 0.0)])
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
                transformed[transformed_name(spec["name"])] = tf.reshape(
                    (value - spec["centre"]) * spec["scale"] + spec["shift"], [-1, *spec["transformed_shape"]])
        outputs = getattr(model, CALL_TRANSFORMED)(transformed)
        outputs = dict(outputs) if isinstance(outputs, dict) else {PREDICTIONS: outputs}
        if task == "forecast" and window is not None:  # back to the series' units
            outputs["forecast"] = (outputs[PREDICTIONS] - window["offset"]) / window["scale"]
        if scaling is not None:
            outputs[PREDICTIONS] = outputs[PREDICTIONS] * scaling[1] + scaling[0]
        return outputs

    return edge.get_concrete_function()
