"""The Open Inference Protocol's (KServe V2) tensors and documents: datatypes, JSON and binary data,
BYTES framing, versions as numbers or labels, and the errors a bad request gets."""
import struct

import numpy as np
import pytest
import tensorflow as tf

from serving.api import open_inference as v2
from serving.codec.signature import Signature, TensorSpecInfo
from serving.errors import ServingError


def _spec(name, dtype, shape=(None,)):
    kind = "string" if dtype == tf.string else "float"
    return TensorSpecInfo(name, dtype, shape, f"{name}:0", kind)


SIGNATURE = Signature("serving_default", "tensorflow/serving/predict",
                      {"amount": _spec("amount", tf.float32), "segment": _spec("segment", tf.string),
                       "age": _spec("age", tf.float64, None)},
                      {"predictions": _spec("predictions", tf.float32, (None, 1))})


def test_metadata_lists_the_signatures_tensors_with_v2_datatypes_and_shapes():
    metadata = v2.model_metadata("fraud", ["3", "5"], SIGNATURE)
    assert metadata["platform"] == "tensorflow_savedmodel" and metadata["versions"] == ["3", "5"]
    assert metadata["inputs"] == [{"name": "age", "datatype": "FP64", "shape": [-1]},
                                  {"name": "amount", "datatype": "FP32", "shape": [-1]},
                                  {"name": "segment", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [{"name": "predictions", "datatype": "FP32", "shape": [-1, 1]}]


def test_a_version_is_a_number_or_a_label():
    assert v2.model_spec("m", "7").version == 7
    spec = v2.model_spec("m", "stable", {"signature_name": "classification"})
    assert spec.label == "stable" and spec.version is None and spec.signature_name == "classification"
    assert v2.model_spec("m", "").version is None and v2.model_spec("m", "").label is None


def test_bytes_framing_round_trips_and_a_cut_buffer_is_refused():
    values = np.array([b"", b"jpeg\x00\xff", "text".encode()], dtype=object)
    raw = v2.encode_bytes(values)
    assert raw[:4] == struct.pack("<I", 0) and list(v2.decode_bytes(raw)) == list(values)
    with pytest.raises(ServingError, match="runs past"):
        v2.decode_bytes(raw[:-1], "image")


def test_json_data_nested_or_flat_and_typed_strictly():
    nested = v2.array_from_json([[1, 2], [3, 4]], "FP32", (2, 2), "x")
    flat = v2.array_from_json([1, 2, 3, 4], "FP32", (2, 2), "x")
    assert nested.dtype == np.float32 and np.array_equal(nested, flat)
    assert v2.array_from_json(["a", {"b64": "/w=="}], "BYTES", (2,), "s").tolist() == [b"a", b"\xff"]
    for data, datatype, message in (([1, 2, 3], "FP32", "3 values for shape"), ([1.5], "INT64", "not a INT64"),
                                    ([True], "FP32", "not a FP32"), ([1], "BOOL", "not a BOOL"),
                                    ([None], "FP64", "null is not"), ([2 ** 70], "INT64", "out of range"),
                                    ([3], "BYTES", "BYTES elements are strings")):
        with pytest.raises(ServingError, match=message):
            v2.array_from_json(data, datatype, (len(data) if message != "3 values for shape" else 2,), "x")


def test_binary_inputs_are_read_in_order_and_every_byte_must_be_claimed():
    amount = np.array([1.5, 2.5], np.float32)
    segment = v2.encode_bytes(np.array([b"online", b"retail"], dtype=object))
    document = {"inputs": [
        {"name": "amount", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
        {"name": "segment", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(segment)}},
        {"name": "age", "datatype": "FP64", "shape": [2], "data": [10, 20]}]}
    inputs = v2.request_inputs(document, amount.tobytes() + segment)
    assert inputs["amount"][0] == "FP32" and np.array_equal(inputs["amount"][1], amount)
    assert inputs["segment"][1].tolist() == [b"online", b"retail"] and inputs["age"][1].dtype == np.float64
    with pytest.raises(ServingError, match="not claimed"):
        v2.request_inputs(document, amount.tobytes() + segment + b"x")
    with pytest.raises(ServingError, match="runs past"):
        v2.request_inputs(document, amount.tobytes())
    header, tail = v2.split_body(b'{"a": 1}BIN', "8")
    assert header == b'{"a": 1}' and tail == b"BIN"
    with pytest.raises(ServingError, match="outside the body"):
        v2.split_body(b"{}", "9")


def test_datatypes_must_be_the_signatures():
    good = {"amount": ("FP32", np.zeros(2, np.float32)), "segment": ("BYTES", np.array([b"a", b"b"], object))}
    assert set(v2.check_inputs(good, SIGNATURE)) == {"amount", "segment"}
    with pytest.raises(ServingError, match="datatype FP64 does not match the model's FP32"):
        v2.check_inputs({"amount": ("FP64", np.zeros(2))}, SIGNATURE)
    for bad in ({"inputs": []}, {"inputs": [{"name": "a", "datatype": "FLOAT", "shape": [1], "data": [1]}]},
                {"inputs": [{"name": "a", "datatype": "FP32", "shape": [-1], "data": [1]}]},
                {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1]}]}):
        with pytest.raises(ServingError):
            v2.request_inputs(bad, b"")


def test_outputs_as_json_or_binary_as_requested():
    outputs = {"predictions": np.array([[0.25], [0.75]], np.float32), "classes": np.array([b"a", b"\xff"], object)}
    wanted = v2.requested_outputs({"outputs": [{"name": "predictions", "parameters": {"binary_data": True}},
                                               {"name": "classes"}]})
    document, tail = v2.response_document("m", 3, outputs, wanted, False, "req-1")
    assert document["id"] == "req-1" and document["model_version"] == "3"
    first, second = document["outputs"]
    assert first == {"name": "predictions", "datatype": "FP32", "shape": [2, 1], "parameters": {"binary_data_size": 8}}
    assert np.array_equal(np.frombuffer(tail, np.float32), [0.25, 0.75])
    assert second["datatype"] == "BYTES" and second["data"] == ["a", {"b64": "/w=="}]
    assert v2.requested_outputs({"parameters": {"binary_data_output": True}}) == {}
