"""gRPC tensors (serving.codec.tensors): TensorProto to numpy and back, dtype checks."""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from serving.errors import ServingError

REPO = Path(__file__).resolve().parents[2]


def test_grpc_inputs_of_the_signatures_one_dtype_pass_and_any_other_dtype_is_named():
    from serving.codec.signature import Signature, TensorSpecInfo
    from serving.codec.tensors import cast_inputs
    from serving.errors import ServingError

    signature = Signature("serving_default", "tensorflow/serving/predict",
                          {n: TensorSpecInfo(n, tf.float32, (None,), kind="float") for n in ("a", "b")}, {})
    assert signature.uniform_dtype == np.float32
    given = {"a": np.ones(2, np.float32), "b": np.zeros(2, np.float32)}
    assert cast_inputs(given, signature) == given and cast_inputs(given, signature) is not given
    with pytest.raises(ServingError, match=r"Expects arg\[b\] to be float32 but float64 is provided"):
        cast_inputs({"a": given["a"], "b": np.zeros(2, np.float64)}, signature)
    wrong = {"a": np.ones(2, np.float64), "b": np.zeros(2, np.float64)}
    with pytest.raises(ServingError, match=r"to be float32 but float64 is provided"):
        cast_inputs(wrong, signature)  # one dtype, not the signature's


@pytest.mark.parametrize("array", [
    np.array([[0.25]], np.float32), np.arange(6, dtype=np.float64).reshape(2, 3), np.array([1, 2], np.int64),
    np.array([True, False]), np.array(5, np.int32), np.zeros((0, 3), np.float32),
    np.arange(6, dtype=np.float32).reshape(2, 3).T, np.array([b"a", b"\xff"], dtype=object),
    np.array([[1, 2]], np.int8), np.array([1.5], np.float16), np.array([-3], np.int32),
    np.array([[-2**40]], np.int64), np.array([0.0], np.float64), np.zeros((2, 0, 400), np.int64),
    np.array(7, np.int64), np.array([[False]]), np.array(["text", "é"], dtype=object),
])
def test_an_answers_tensor_protos_read_back_by_tensorflow_and_by_the_server(array):
    """What Predict answers (``fill_tensor_proto``) is what TensorFlow's make_ndarray reads, and what
    the server reads from a request (``proto_to_array``) is the array again."""
    from tensorflow.core.framework import tensor_pb2

    from serving.codec.tensors import fill_tensor_proto, proto_to_array

    proto = tensor_pb2.TensorProto()
    fill_tensor_proto(proto, array)
    expected = np.array([v.encode() if isinstance(v, str) else v for v in array.reshape(-1)],
                        dtype=object).reshape(array.shape) if array.dtype == object else array
    np.testing.assert_array_equal(tf.make_ndarray(proto), expected)
    assert tf.make_ndarray(proto).dtype == (expected.dtype if array.dtype != object else object)
    np.testing.assert_array_equal(proto_to_array(tensor_pb2.TensorProto.FromString(proto.SerializeToString())),
                                  expected)


@pytest.mark.parametrize("proto, message", [
    ({"dtype": 1, "tensor_shape": {"dim": [{"size": 3}]}, "tensor_content": b"\x00" * 8}, "2 values for shape"),
    ({"dtype": 1, "tensor_shape": {"dim": [{"size": 1}]}, "float_val": [1.0, 2.0]}, "2 values for shape"),
])
def test_a_tensor_whose_values_do_not_fill_its_shape_is_invalid_argument(proto, message):
    from google.protobuf import json_format
    from tensorflow.core.framework import tensor_pb2

    from serving.codec.tensors import proto_to_array

    parsed = tensor_pb2.TensorProto()
    json_format.ParseDict({k: (v if k != "tensor_content" else __import__("base64").b64encode(v).decode())
                           for k, v in proto.items()}, parsed)
    with pytest.raises(ServingError, match=message):
        proto_to_array(parsed)
