"""TF Serving warmup records (``assets.extra/tf_serving_warmup_requests``) built from real rows.

Each record is a PredictionLog replayed by the server before the version takes traffic, so the
first real request does not pay for tracing and graph set-up. Built from eval-split tf.Examples: a
few single-row ``serving_default`` requests (raw features, as clients send them), one batched
request, and a Classify/Regress request when the model has that signature.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving.codec.examples import decode, read_records
from serving.codec.signature import TensorSpecInfo, tensor_spec
from serving.codec.tensors import examples_from_input, proto_to_array
from serving.runtime.servable import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD, Servable, read_signature_defs

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


def _value(values: List[Any], spec: TensorSpecInfo) -> Optional[np.ndarray]:
    """One row's value for a raw input: NaN / "" when the example lacks it (how clients say missing)."""
    width = int(np.prod([d for d in spec.shape[1:]])) if spec.shape and len(spec.shape) > 1 else 1
    if spec.dtype == tf.string:
        values = values or [b""] * width
        array = np.array([v if isinstance(v, bytes) else str(v).encode() for v in values], dtype=object)
    else:
        values = values or [np.nan] * width
        array = np.array(values, dtype=spec.dtype.as_numpy_dtype)
    if array.size != width:
        return None
    return array.reshape(spec.shape[1:] if spec.shape and len(spec.shape) > 1 else [])


def predict_inputs(examples: Sequence[bytes], inputs: Dict[str, TensorSpecInfo]) -> Optional[Dict[str, np.ndarray]]:
    """Rows of raw inputs for ``serving_default`` from serialized tf.Examples (None if one does not fit)."""
    columns: Dict[str, List[np.ndarray]] = {name: [] for name in inputs}
    for serialized in examples:
        row = decode(serialized, inputs, text=False)
        for name, spec in inputs.items():
            value = _value(row[name], spec)
            if value is None:
                return None
            columns[name].append(value)
    return {name: np.stack(values) for name, values in columns.items()}


def build_warmup_records(model_dir: Path, examples: Sequence[bytes], single_rows: int = 4) -> List[bytes]:
    signature_defs = read_signature_defs(model_dir)
    records = []
    default = signature_defs.get(DEFAULT_SIGNATURE)
    if default is not None and examples:
        specs = {name: tensor_spec(name, info) for name, info in default.inputs.items()}
        for rows in [examples[i:i + 1] for i in range(min(single_rows, len(examples)))] + [examples]:
            inputs = predict_inputs(rows, specs)
            if inputs is None:
                continue
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.signature_name = DEFAULT_SIGNATURE
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            records.append(log.SerializeToString())
    for key, signature in signature_defs.items():
        kind = {CLASSIFY_METHOD: "classify_log", REGRESS_METHOD: "regress_log"}.get(signature.method_name)
        if kind and examples:
            log = prediction_log_pb2.PredictionLog()
            request = getattr(log, kind).request
            request.model_spec.signature_name = key
            for serialized in examples:
                request.input.example_list.examples.add().ParseFromString(serialized)
            records.append(log.SerializeToString())
    return records


def write_warmup(model_dir: Path, records: Sequence[bytes]) -> Path:
    path = Path(model_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


def read_warmup_records(model_dir: Path) -> List[bytes]:
    path = Path(model_dir) / WARMUP_FILE
    if not path.exists():
        return []
    return read_records([path], MAX_WARMUP_RECORDS, compression="")


def replay(servable: Servable, records: Sequence[bytes]) -> int:
    """Replays TF Serving warmup records (PredictionLog) on a loaded version; any failure fails the load."""
    count = 0
    for raw in records[:MAX_WARMUP_RECORDS]:
        log = prediction_log_pb2.PredictionLog.FromString(raw)
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            servable.run(request.model_spec.signature_name,
                         {k: proto_to_array(v) for k, v in request.inputs.items()}, list(request.output_filter))
        elif kind in ("classify_log", "regress_log"):
            request = getattr(log, kind).request
            method = CLASSIFY_METHOD if kind == "classify_log" else REGRESS_METHOD
            servable.run_examples(request.model_spec.signature_name, method, examples_from_input(request.input))
        else:
            raise ValueError(f"warmup record {count}: unsupported log type {kind}")
        count += 1
    return count
