"""TF Serving's JSON tensor rules (serving.codec.tensors): row and columnar formats, errors, fast paths, answers."""
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from serving.errors import ServingError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def signature():

    from serving.codec.signature import Signature, TensorSpecInfo
    return Signature("serving_default", "tensorflow/serving/predict", {
        "amount": TensorSpecInfo("amount", tf.float32, (None,), "serving_default_amount:0", "float"),
        "segment": TensorSpecInfo("segment", tf.string, (None,), "serving_default_segment:0", "string"),
        "pixels": TensorSpecInfo("pixels", tf.float32, (None, 2), "serving_default_pixels:0", "float"),
    }, {})


def test_row_and_columnar_formats_give_the_same_arrays(signature):
    from serving.codec.tensors import request_inputs

    rows = {"instances": [{"amount": 1, "segment": "a", "pixels": [1, 2]},
                          {"amount": float("nan"), "segment": {"b64": "YmluYXJ5"}, "pixels": [3, 4]}]}
    columns = {"inputs": {"amount": [1, float("nan")], "segment": ["a", {"b64": "YmluYXJ5"}],
                          "pixels": [[1, 2], [3, 4]]}}
    by_row, row_format = request_inputs(rows, signature)
    by_column, column_format = request_inputs(columns, signature)
    assert (row_format, column_format) == ("row", "columnar")
    for name in by_row:
        np.testing.assert_array_equal(by_row[name], by_column[name])
    assert by_row["segment"].tolist() == [b"a", b"binary"] and by_row["amount"].dtype == np.float32


@pytest.mark.parametrize("document, message", [
    ({}, "Missing 'inputs' or 'instances' key"),
    ({"instances": [], "inputs": {}}, "only one of 'inputs' or 'instances'"),
    ({"instances": [{"amount": "x", "segment": "a", "pixels": [1, 2]}]}, "is not of expected type: float32"),
    ({"instances": [{"amount": 1, "segment": 3, "pixels": [1, 2]}]}, "is not of expected type: string"),
    ({"instances": [{"amount": 1, "segment": "a", "pixels": [1, 2]}, {"amount": 1, "segment": "a",
                                                                      "pixels": [1]}]}, "unequal sizes"),
    ({"instances": [{"amount": 1, "segment": "a", "pixels": [1, 2], "extra": 1}]}, "does not have named input"),
    ({"instances": [{"amount": 1, "segment": {"b64": "%%%"}, "pixels": [1, 2]}]}, "base64"),
    ({"instances": [{"amount": 1e300, "segment": "a", "pixels": [1, 2]}]}, "without loss of precision"),
])
def test_bad_predict_bodies_are_invalid_argument(signature, document, message):
    from serving.codec.tensors import request_inputs

    with pytest.raises(ServingError) as e:
        request_inputs(document, signature)
    assert e.value.code == "INVALID_ARGUMENT" and e.value.http_status == 400
    assert message in e.value.message


@pytest.fixture(scope="module")
def numbers():
    """A signature of many scalar inputs, the case the stacked conversion speeds up."""

    from serving.codec.signature import Signature, TensorSpecInfo
    specs = {f"f{i}": TensorSpecInfo(f"f{i}", tf.float32, (None,), "", "float") for i in range(4)}
    specs.update({"d": TensorSpecInfo("d", tf.float64, (None,), "", "float"),
                  "i32": TensorSpecInfo("i32", tf.int32, (None,), "", "int"),
                  "i64": TensorSpecInfo("i64", tf.int64, (None,), "", "int"),
                  "wide": TensorSpecInfo("wide", tf.float32, (None, 2), "", "float")})
    return Signature("serving_default", "tensorflow/serving/predict", specs, {})


@pytest.mark.parametrize("columns", [
    {"f0": [1.5, -2], "f1": [0, 3e38], "f2": [float("nan"), 1], "f3": [4, 5], "d": [1e300, 2],
     "i32": [7, -8], "i64": [2 ** 40, 1], "wide": [[1, 2], [3, 4]]},
    {"f0": [1.0], "f1": [float("inf")], "f2": [2.0], "f3": [3.0], "d": [1.0], "i32": [1], "i64": [1],
     "wide": [[1, 2]]},  # an explicit Infinity: allowed
    {"f0": [1.0, 2.0], "f1": [1.0], "f2": [2.0], "f3": [3.0], "d": [1.0], "i32": [1], "i64": [1],
     "wide": [[1, 2]]},  # columns of different lengths: each converted alone
])
def test_inputs_converted_together_equal_one_by_one(numbers, columns):
    from serving.codec.tensors import request_inputs, to_array

    arrays, _ = request_inputs({"inputs": columns}, numbers)
    assert list(arrays) == list(columns)
    for name, values in columns.items():
        alone = to_array(values, numbers.inputs[name])
        assert arrays[name].dtype == alone.dtype and arrays[name].shape == alone.shape
        np.testing.assert_array_equal(arrays[name], alone)


@pytest.mark.parametrize("value", [2 ** 31, -2 ** 31 - 1, 2 ** 70, True])
def test_an_int_out_of_its_range_is_refused_not_wrapped(numbers, value):
    from serving.codec.tensors import request_inputs

    with pytest.raises(ServingError) as e:
        request_inputs({"instances": [{"f0": 1, "f1": 1, "f2": 1, "f3": 1, "d": 1, "i32": value, "i64": 1,
                                       "wide": [1, 2]}]}, numbers)
    assert "is not of expected type: int32" in e.value.message and "'i32'" in e.value.message


SCALAR_ROW = {"f0": 1.5, "f1": -2, "d": 1e300, "i32": -7, "i64": 2 ** 40, "s": "é"}


@pytest.fixture(scope="module")
def scalars():
    """A signature whose inputs all take one value per row: the row format's fast path."""

    from serving.codec.signature import Signature, TensorSpecInfo
    kinds = {"f0": (tf.float32, "float"), "f1": (tf.float32, "float"), "d": (tf.float64, "float"),
             "i32": (tf.int32, "int"), "i64": (tf.int64, "int"), "s": (tf.string, "string")}
    return Signature("serving_default", "tensorflow/serving/predict",
                     {n: TensorSpecInfo(n, dtype, (None,), "", kind) for n, (dtype, kind) in kinds.items()}, {})


@pytest.mark.parametrize("rows", [
    [SCALAR_ROW],
    [SCALAR_ROW, {**SCALAR_ROW, "f0": float("nan"), "f1": float("inf"), "s": ""}],  # NaN, an explicit Infinity
    [{**SCALAR_ROW, "f0": True}],  # a bool is no number: the general path refuses it
    [{**SCALAR_ROW, "f0": "1.5"}],
    [{**SCALAR_ROW, "f0": 1e300}],  # beyond float32
    [{**SCALAR_ROW, "i32": 2 ** 31}, SCALAR_ROW],
    [{**SCALAR_ROW, "i64": 2 ** 70}],
    [{**SCALAR_ROW, "s": {"b64": "YmluYXJ5"}}],
    [{k: v for k, v in SCALAR_ROW.items() if k != "d"}],  # a missing input
    [{**SCALAR_ROW, "extra": 1}],
    [SCALAR_ROW, [1, 2, 3, 4, 5, 6]],
    [{**SCALAR_ROW, "s": "\ud800"}],  # a lone surrogate escape: JSON lets it through, UTF-8 cannot hold it
])
def test_rows_of_scalars_convert_as_the_general_path_does(scalars, rows, monkeypatch):
    """The fast path for rows of one value per input answers exactly as the general row path: the
    same arrays and dtypes, or the same INVALID_ARGUMENT message."""
    from serving.codec import tensors

    def outcome():
        try:
            return tensors.request_inputs({"instances": rows}, scalars)[0]
        except ServingError as e:
            return e.message

    fast = outcome()
    monkeypatch.setattr(tensors, "_scalar_rows", lambda rows, signature: None)
    general = outcome()
    if isinstance(general, str) or isinstance(fast, str):
        assert fast == general
        return
    assert sorted(fast) == sorted(general)
    for name in fast:
        assert fast[name].dtype == general[name].dtype and fast[name].shape == general[name].shape
        np.testing.assert_array_equal(fast[name], general[name])


def test_rows_of_plain_scalars_take_the_fast_path_and_anything_else_does_not(scalars):
    from serving.codec.tensors import _scalar_rows

    arrays = _scalar_rows([SCALAR_ROW, SCALAR_ROW], scalars)
    assert sorted(arrays) == sorted(SCALAR_ROW) and arrays["s"].tolist() == ["é".encode()] * 2
    assert all(array.shape == (2,) and array.dtype == scalars.inputs[name].numpy_dtype
               for name, array in arrays.items())
    assert _scalar_rows([{**SCALAR_ROW, "i64": False}], scalars) is None


def test_json_bodies_orjson_refuses_are_read_by_the_standard_parser():
    from serving.codec.tensors import parse_json

    document = parse_json(b'{"instances": [[NaN, Infinity, -Infinity, 123456789012345678901234567890]]}')
    values = document["instances"][0]
    assert np.isnan(values[0]) and values[1:] == [float("inf"), float("-inf"), 123456789012345678901234567890]
    with pytest.raises(ServingError, match="JSON Parse error"):
        parse_json(b'{"instances": [1,')
    with pytest.raises(ServingError, match="must be a JSON object"):
        parse_json(b"[1]")
    with pytest.raises(ServingError, match="JSON Parse error: arrays or objects nested too deeply") as deep:
        parse_json(b'{"instances":' + b"[" * 100_000 + b"}")  # beyond both parsers' depth: 400, not a crash
    assert deep.value.code == "INVALID_ARGUMENT"


@pytest.mark.parametrize("document, rows", [
    ({"instances": [{}] * 5}, 5), ({"inputs": {"a": [1, 2, 3], "b": [[1], [2], [3]]}}, 3),
    ({"inputs": [[1, 2]] * 4}, 4), ({"inputs": {"a": 1.0}}, 1), ({"inputs": 7}, 1), ({"instances": 7}, 1),
])
def test_a_requests_rows_are_counted_on_the_document(document, rows):
    from serving.codec.tensors import request_rows

    assert request_rows(document) == rows


def test_answers_are_compact_json_with_tf_servings_nan_and_big_integers():
    from serving.codec.tensors import dumps

    for document in ({"predictions": [[0.25, 1e-05, 1e16]], "s": "é"}, {"n": None, "b": [True, False]}):
        assert json.loads(dumps(document)) == document and b" " not in dumps(document)
    assert dumps({"predictions": [[float("nan"), float("inf")]]}) == b'{"predictions":[[NaN,Infinity]]}'
    assert dumps({"big": 2 ** 70}) == b'{"big":1180591620717411303424}'  # beyond 64 bits: the standard encoder


@pytest.mark.parametrize("document, message", [
    ({"instances": [{"course": "Intro", "extra": "x"}]},
     "instances[0]: JSON object: does not have named input: extra (the model's one input is course)"),
    ({"instances": [{}]}, "instances[0]: JSON object: an empty object (the model's one input is course)"),
    ({"inputs": {"title": ["Intro"]}}, "'inputs': JSON object: does not have named input: title"),
])
def test_a_one_input_model_names_an_object_that_misnames_its_input(document, message):
    """A probe's text model took {"course": ..., "extra": ...} as one value of the wrong type; a
    value, named or bare, and {"b64": ...} still pass."""
    from serving.codec.signature import Signature, TensorSpecInfo
    from serving.codec.tensors import request_inputs

    one = Signature("serving_default", "tensorflow/serving/predict",
                    {"course": TensorSpecInfo("course", tf.string, (None,), "", "string")}, {})
    with pytest.raises(ServingError) as e:
        request_inputs(document, one)
    assert e.value.code == "INVALID_ARGUMENT" and message in e.value.message, e.value.message
    for good in ({"instances": ["Intro"]}, {"instances": [{"course": "Intro"}]}, {"instances": [{"b64": "SW50cm8="}]},
                 {"inputs": ["Intro"]}, {"inputs": {"course": ["Intro"]}}):
        assert request_inputs(good, one)[0]["course"].tolist() == [b"Intro"]


def test_null_is_a_missing_value_and_a_boolean_is_its_text(signature):
    """A probe could send no missing number over REST, and a yes/no column refused JSON false: null
    is "" for a string and NaN for a float (both read as missing by the served graph), true/false
    the text "true"/"false". An integer still refuses null: it has no missing value."""
    from serving.codec.tensors import request_inputs

    rows = {"instances": [{"amount": None, "segment": False, "pixels": [1, None]},
                          {"amount": 2.5, "segment": None, "pixels": [3, 4]}]}
    arrays, _ = request_inputs(rows, signature)
    assert np.isnan(arrays["amount"][0]) and arrays["amount"][1] == 2.5 and np.isnan(arrays["pixels"][0][1])
    assert arrays["segment"].tolist() == [b"false", b""]
    from serving.codec.signature import Signature, TensorSpecInfo

    ints = Signature("serving_default", "tensorflow/serving/predict",
                     {"n": TensorSpecInfo("n", tf.int64, (None,), "", "int")}, {})
    with pytest.raises(ServingError, match="is not of expected type: int64"):
        request_inputs({"instances": [None]}, ints)
