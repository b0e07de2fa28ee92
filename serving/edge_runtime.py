"""The edge runtime: a TF Lite model plus its sidecar (``edge.json``), with no TFX and, when the
``ai-edge-litert`` wheel is there, no TensorFlow either (an edge device has neither).

The edge model takes raw features, one input per feature (so each gets its own int8 scale):
numbers as float32 (the Transform's normalization is folded into the model), string features as
int32 vocabulary indices that the host looks up in the sidecar's vocabularies, image pixels as the
raw tensor. A missing number is replaced on the host by the sidecar's ``fill`` (the train mean,
what the Transform fills in). A forecaster takes each series' raw window (and covariates) and its
first forecast day as a number; the host reads them from a history CSV as ``mlops predict`` does.
"""
import json
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from serving.codec.columns import (
    ColumnNames,
    boolean_text,
    csv_dict_reader,
    date_parts,
    days_from_civil,
    is_missing_text,
    parse,
)
from serving.codec.periods import SeriesInfo
from serving.forecast_client import SeriesWindow, read_history, request_row

SIDECAR = "edge.json"
REPORT_FILE = "edge_report.json"  # EdgeExport's full report (every variant, shipped or not)
ARTIFACT_TYPE = "mlops.EdgeModel"  # EdgeExport's output in ML Metadata (namespaced, as Kubeflow v2 requires)
EDGE_DIR = "tflite"
SIGNATURE = "serving_default"
PREDICTIONS = "predictions"  # the output of a single-output model (signatures and edge models)


class EdgeInputError(ValueError):
    """A row, file or column the edge model cannot take; the message names it."""


def interpreter_class():
    """LiteRT's interpreter (the runtime devices use), else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - the lock installs ai-edge-litert
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


def read_sidecar(model_path: Path) -> Dict[str, Any]:
    path = Path(model_path).with_name(SIDECAR)
    if not path.exists():
        raise EdgeInputError(f"{model_path}: no {SIDECAR} beside the model")
    return json.loads(path.read_text())


def _missing(value: Any) -> bool:
    return is_missing_text(value)


def columns_name(columns: ColumnNames, key: str) -> str:
    """A column's original name, for messages (the key when the model has no table mapping)."""
    return next((name for name, k in columns.keys.items() if k == key), key)


def rows_to_inputs(sidecar: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                   source: str = "rows") -> Dict[str, np.ndarray]:
    """Raw rows (dicts of feature -> value, as in the training CSV) -> the edge model's inputs."""
    inputs: Dict[str, np.ndarray] = {}
    columns = parse(sidecar.get("columns"))
    rows = [columns.rename(row) for row in rows]
    for spec in sidecar["inputs"]:
        name, kind = spec["name"], spec["kind"]
        column = spec.get("source", name)
        index = {v: k for k, v in enumerate(spec["vocabulary"])} if kind == "string" else {}
        values = []
        for i, row in enumerate(rows):
            if column not in row:
                raise EdgeInputError(f"{source}: row {i + 1} has no column '{columns_name(columns, column)}'")
            value = row[column]
            if kind == "date_part":
                parts = date_parts(value, spec["format"])
                values.append(spec["fill"] if parts is None else parts[spec["part"]])
            elif kind == "day":
                values.append(_day_number(value, f"{source}: row {i + 1}, '{name}'"))
            elif kind == "string":
                text = "" if _missing(value) else str(value).strip()
                if spec.get("normalize") == "boolean":
                    text = boolean_text(text)
                values.append(index.get(text, spec["oov_index"]))
            elif kind in ("tensor", "image"):
                array = np.asarray(value, dtype=np.float32).reshape(-1)
                if array.size != math.prod(spec["shape"]):
                    raise EdgeInputError(f"{source}: row {i + 1}, '{name}': {array.size} values, expected "
                                         f"{math.prod(spec['shape'])}")
                values.append(array.reshape(spec["shape"]))
            else:
                if _missing(value):
                    values.append(spec["fill"])
                else:
                    try:
                        values.append(float(value))
                    except (TypeError, ValueError):
                        raise EdgeInputError(f"{source}: row {i + 1}, column '{name}': {value!r} is not a "
                                             "number") from None
        inputs[name] = np.asarray(values, dtype=np.int32 if kind == "string" else np.float32)
    return inputs


def _day_number(value: Any, where: str) -> float:
    """A YYYY-MM-DD date as days since 1970-01-01 (a forecaster's first forecast step, which TF
    Lite's builtins cannot parse)."""
    try:
        year, month, day = (int(part) for part in str(value).strip().split("-"))
        return float(days_from_civil(year, month, day))
    except ValueError:
        raise EdgeInputError(f"{where}: {value!r} is not a YYYY-MM-DD date") from None


def series_rows(path: Path, sidecar: Mapping[str, Any]) -> Tuple[SeriesInfo, List[SeriesWindow], List[Dict[str, Any]]]:
    """A forecaster's history CSV (as ``mlops predict`` takes it) -> its series' info, each series'
    window and the rows the edge model takes (HistoryError names a bad line)."""
    info = SeriesInfo.parse(sidecar["series"])
    windows = read_history(Path(path), info)
    if not windows:
        raise EdgeInputError(f"{path}: no series with a value")
    return info, windows, [request_row(window, info) for window in windows]


def image_inputs(sidecar: Mapping[str, Any], paths: Sequence[Path]) -> Dict[str, np.ndarray]:
    """Image files decoded and resized on the host (Pillow) as the served graph does."""
    from serving.codec.images import load_batch

    spec = sidecar["inputs"][0]
    return {spec["name"]: load_batch(list(paths), int(sidecar["image"]["size"]))}


def read_rows(path: Path, sidecar: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Rows from a CSV (columns by name; extra columns ignored) or an .npy array (one row per
    example, the features in the sidecar's input order; a single tensor input takes the row as is)."""
    path = Path(path)
    if not path.exists():
        raise EdgeInputError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        array = np.load(path, allow_pickle=False)
        names = [spec["name"] for spec in sidecar["inputs"]]
        if len(names) == 1 and sidecar["inputs"][0]["kind"] == "tensor":
            return [{names[0]: row} for row in array.reshape(len(array), -1)]
        if array.ndim != 2 or array.shape[1] != len(names):
            raise EdgeInputError(f"{path}: expected a 2-D array with {len(names)} columns ({', '.join(names)}), "
                                 f"got shape {list(array.shape)}")
        return [dict(zip(names, row.tolist())) for row in array]
    columns = parse(sidecar.get("columns"))
    with csv_dict_reader(path) as reader:
        needed = {spec.get("source", spec["name"]) for spec in sidecar["inputs"]}
        given = {columns.key(name) for name in reader.fieldnames or []}
        missing = sorted(columns_name(columns, key) for key in needed - given)
        if missing:
            raise EdgeInputError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    for spec in sidecar["inputs"]:
        if spec["kind"] == "tensor":
            raise EdgeInputError(f"{path}: input '{spec['name']}' is a tensor; give an .npy file")
    if not rows:
        raise EdgeInputError(f"{path}: no rows")
    return rows


class EdgeModel:
    """A .tflite file through its ``serving_default`` signature runner (inputs by name)."""

    def __init__(self, path: Path, num_threads: Optional[int] = 1):
        self.path = Path(path)
        self.interpreter = interpreter_class()(model_path=str(self.path), num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)

    def predict(self, inputs: Mapping[str, np.ndarray], batch: int = 256) -> Dict[str, np.ndarray]:
        inputs = self.typed(inputs)
        rows = len(next(iter(inputs.values())))
        chunks: Dict[str, List[np.ndarray]] = {}
        for start in range(0, rows, batch):
            outputs = self.runner(**{name: value[start:start + batch] for name, value in inputs.items()})
            for name, value in outputs.items():
                chunks.setdefault(name, []).append(np.asarray(value))
        return {name: np.concatenate(parts) for name, parts in chunks.items()}


    def typed(self, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Inputs in the dtypes the model takes (an int8 image model takes uint8 pixels, rounded)."""
        details = self.runner.get_input_details()
        typed = {}
        for name, value in inputs.items():
            dtype = np.dtype(details[name]["dtype"]) if name in details else value.dtype
            if dtype == np.uint8 and value.dtype != np.uint8:
                value = np.clip(np.round(value), 0, 255)
            typed[name] = value.astype(dtype, copy=False)
        return typed


def bench(path: Path, runs: int = 2000, rows: Optional[List[Dict[str, Any]]] = None) -> Dict[str, float]:
    """Batch-1 latency of a .tflite model (bounded: ``runs`` calls after 50 warm-up calls)."""
    sidecar = read_sidecar(path)
    model = EdgeModel(path)
    sample = rows or sidecar.get("example_rows") or []
    if not sample and sidecar.get("image"):  # latency does not depend on what the pixels show
        spec = sidecar["inputs"][0]
        sample = [{spec["name"]: np.random.default_rng(0).uniform(0, 255, spec["shape"]).astype(np.float32)}]
    if not sample:
        raise EdgeInputError(f"{path}: the sidecar has no example rows; give rows")
    inputs = model.typed(rows_to_inputs(sidecar, sample[:1]))
    for _ in range(50):
        model.runner(**inputs)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        model.runner(**inputs)
        timings.append(time.perf_counter() - start)
    timings.sort()
    return {"runs": runs, "size_bytes": path.stat().st_size,
            "p50_us": round(timings[len(timings) // 2] * 1e6, 1),
            "p99_us": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))] * 1e6, 1)}


def footprint(model_dir: str, runs: int = 300) -> Dict[str, float]:
    """A pushed model's size on disk (the SavedModel, its TF Lite variants aside) and its int8
    variant's size and batch-1 latency, when it has one."""
    root = Path(model_dir)
    edge_dir = root / EDGE_DIR
    facts: Dict[str, float] = {"savedmodel_bytes": float(sum(p.stat().st_size for p in root.rglob("*")
                                                             if p.is_file() and edge_dir not in p.parents))}
    int8 = edge_dir / "int8.tflite"
    if int8.is_file():
        timing = bench(int8, runs=runs)
        facts.update(int8_bytes=float(timing["size_bytes"]), int8_p50_us=timing["p50_us"])
    return facts
