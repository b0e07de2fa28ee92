"""Serving parts that need no model: models.config (TF Serving's own proto), version policies,
labels and hot swaps in the model manager (with a stand-in loader), batching, metrics, and the
JSON tensor rules."""
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingError
from serving.runtime import model_config
from serving.runtime.batching import Batcher
from serving.runtime.manager import AVAILABLE, END, ModelManager
from serving.runtime.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]


def _version(base: Path, version: int, broken: bool = False) -> Path:
    path = base / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"broken" if broken else b"ok")
    return path


class FakeServable:
    def __init__(self, name, version, path):
        if (Path(path) / "saved_model.pb").read_bytes() == b"broken":
            raise ValueError(f"cannot parse {path}/saved_model.pb")
        self.name, self.version = name, version


# --- models.config -------------------------------------------------------------------------------

def test_written_config_parses_with_tf_servings_proto(tmp_path):
    path = model_config.config_path(tmp_path)
    model_config.ensure_model(path, "fraud")
    model_config.ensure_model(path, "housing", latest_versions=1)
    model_config.set_labels(path, "fraud", {"stable": 1700000000, "canary": 1700000100})
    parsed = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(path.read_text(), parsed)  # what tensorflow_model_server --model_config_file does
    models = {m.name: m for m in parsed.model_config_list.config}
    assert set(models) == {"fraud", "housing"}
    assert models["fraud"].base_path == "fraud" and models["fraud"].model_platform == "tensorflow"
    assert models["fraud"].model_version_policy.latest.num_versions == 2
    assert dict(models["fraud"].version_labels) == {"stable": 1700000000, "canary": 1700000100}
    model_config.ensure_model(path, "fraud")  # an existing entry keeps its labels
    assert dict(model_config.find_model(model_config.read(path), "fraud").version_labels)["canary"] == 1700000100
    model_config.set_labels(path, "fraud", {"canary": None})
    model_config.set_specific_versions(path, "fraud", [1700000000])
    fraud = model_config.find_model(model_config.read(path), "fraud")
    assert dict(fraud.version_labels) == {"stable": 1700000000}
    assert list(fraud.model_version_policy.specific.versions) == [1700000000]


def test_bad_config_names_the_file_and_field_and_is_not_overwritten(tmp_path):
    path = model_config.config_path(tmp_path)
    path.write_text('model_config_list { config { name: "x" base_path: "x" mystery: 1 } }')
    with pytest.raises(model_config.ModelConfigError, match=r"models.config.*mystery"):
        model_config.read(path)
    with pytest.raises(model_config.ModelConfigError):
        model_config.ensure_model(path, "y")
    assert "mystery" in path.read_text()
    path.write_text('model_config_list { config { name: "../etc" base_path: "/etc" } }')
    with pytest.raises(model_config.ModelConfigError, match="not a valid name"):
        model_config.read(path)
    with pytest.raises(model_config.ModelConfigError, match="not a valid name"):
        model_config.ensure_model(model_config.config_path(tmp_path / "other"), "a/../../b")


def test_concurrent_writers_lose_no_change(tmp_path):
    path = model_config.config_path(tmp_path)
    code = ("import sys; from serving.runtime import model_config as m; p = m.config_path(sys.argv[1]); "
            "[m.ensure_model(p, f'model{sys.argv[2]}_{i}') for i in range(15)]")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(k)]) for k in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    names = {m.name for m in model_config.read(path).model_config_list.config}
    assert names == {f"model{k}_{i}" for k in range(4) for i in range(15)}


# --- manager: policies, labels, hot swaps ---------------------------------------------------------

def test_manager_loads_latest_then_swaps_and_unloads_the_old_version(tmp_path):
    _version(tmp_path / "m", 1)
    manager = ModelManager(tmp_path, FakeServable)  # no config: every model dir, latest version
    manager.poll()
    assert manager.resolve("m").version == 1
    (tmp_path / "m" / "2").mkdir()  # a copy in progress (no saved_model.pb yet) is not a version
    manager.poll()
    assert manager.resolve("m").version == 1
    (tmp_path / "m" / "2" / "saved_model.pb").write_bytes(b"ok")
    manager.poll()
    assert manager.resolve("m").version == 2
    assert [(s.version, s.state) for s in manager.status("m")] == [(2, AVAILABLE), (1, END)]
    with pytest.raises(ServingError) as e:
        manager.resolve("m", version=1)
    assert e.value.code == "NOT_FOUND" and "Specific(m, 1)" in e.value.message


def test_failed_version_is_reported_never_served_and_retried_only_when_changed(tmp_path):
    _version(tmp_path / "m", 1)
    model_config.ensure_model(model_config.config_path(tmp_path), "m", latest_versions=1)
    loads = []
    manager = ModelManager(tmp_path, lambda *a: loads.append(a[1]) or FakeServable(*a))
    manager.poll()
    broken = _version(tmp_path / "m", 2, broken=True)
    manager.poll()
    manager.poll()
    status = {s.version: s for s in manager.status("m")}
    assert status[2].state == END and "cannot parse" in status[2].error_message
    assert status[1].state == AVAILABLE and manager.resolve("m").version == 1  # still serving
    assert loads == [1, 2]  # not retried while unchanged
    (broken / "saved_model.pb").write_bytes(b"ok-now")
    manager.poll()
    assert manager.resolve("m").version == 2 and loads == [1, 2, 2]


def test_labels_follow_config_only_to_available_versions(tmp_path):
    path = model_config.config_path(tmp_path)
    _version(tmp_path / "m", 1)
    model_config.ensure_model(path, "m")
    model_config.set_labels(path, "m", {"stable": 1})
    manager = ModelManager(tmp_path, FakeServable)
    manager.poll()
    assert manager.resolve("m", label="stable").version == 1
    model_config.set_labels(path, "m", {"stable": 2, "canary": 2})  # version 2 is not there yet
    manager.poll()
    assert manager.resolve("m", label="stable").version == 1  # kept until 2 is available
    with pytest.raises(ServingError) as e:
        manager.resolve("m", label="canary")
    assert e.value.code == "INVALID_ARGUMENT" and "Unrecognized servable version label: canary" in e.value.message
    _version(tmp_path / "m", 2)
    manager.poll()
    assert manager.resolve("m", label="stable").version == 2 == manager.resolve("m", label="canary").version
    assert manager.resolve("m", version=1).version == 1  # latest-2 keeps the previous version loaded


def test_bad_config_keeps_the_previous_one_in_force(tmp_path):
    path = model_config.config_path(tmp_path)
    _version(tmp_path / "m", 1)
    model_config.ensure_model(path, "m")
    manager = ModelManager(tmp_path, FakeServable)
    manager.poll()
    path.write_text("model_config_list { config { name: ")
    manager.poll()
    assert manager.resolve("m").version == 1 and "models.config" in manager.config_error
    assert manager.models()["m"]["versions"] == {"1": AVAILABLE}


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", ".hidden", ""])
def test_names_that_could_leave_the_base_dir_are_refused(tmp_path, name):
    manager = ModelManager(tmp_path, FakeServable)
    with pytest.raises(ServingError) as e:
        manager.resolve(name)
    assert e.value.code == "INVALID_ARGUMENT"


# --- batching and metrics ----------------------------------------------------------------------

def test_batcher_merges_concurrent_requests_and_returns_each_its_rows():
    calls = []

    def run(inputs):
        calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}

    batcher = Batcher(run, max_batch_size=16, timeout_seconds=0.05)
    results = {}

    def client(i):
        results[i] = batcher.submit({"x": np.array([float(i), float(i) + 0.5])}).result(timeout=10)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    batcher.close()
    for i in range(8):
        np.testing.assert_array_equal(results[i]["y"], [2.0 * i, 2.0 * i + 1])
    assert batcher.batches >= 1 and max(calls) > 2 and sum(calls) == 16
    assert batcher.submit({"x": np.array([1.0])}).result(timeout=5)["y"].tolist() == [2.0]  # after close


def test_batcher_hands_a_failure_to_every_request_in_the_batch():
    batcher = Batcher(lambda inputs: 1 / 0, max_batch_size=8, timeout_seconds=0.01)
    future = batcher.submit({"x": np.array([1.0])})
    with pytest.raises(ZeroDivisionError):
        future.result(timeout=5)
    batcher.close()


def test_metrics_render_prometheus_text():
    metrics = Metrics()
    metrics.observe("m", "3", "predict", "REST", "OK", 0.0007)
    metrics.observe("m", "3", "predict", "REST", "OK", 0.003)
    text = metrics.render()
    assert ':tensorflow:serving:request_count{model_name="m",version="3",API="predict",entrypoint="REST",' \
           'status="OK"} 2' in text
    assert 'le="500"} 0' in text and 'le="1000"} 1' in text and 'le="+Inf"} 2' in text
    assert ':tensorflow:serving:request_latency_count{model_name="m",version="3",API="predict",' \
           'entrypoint="REST"} 2' in text
    assert "mlops_serving_route_requests_total" not in text  # no route: the request reached no version


def test_a_request_that_reached_a_version_counts_its_route_and_label_keys_are_bounded(monkeypatch):
    import serving.runtime.metrics as metrics_module

    monkeypatch.setattr(metrics_module, "MAX_KEYED", 2)
    metrics = Metrics()
    for name in ("a", "b", "c", "c"):
        metrics.observe(name, "1", "predict", "GRPC", "OK", 0.001, route="stable")
    metrics.observe("c", "1", "predict", "GRPC", "NOT_FOUND", 0.001)
    text = metrics.render()
    assert 'mlops_serving_route_requests_total{model_name="c",version="1",route="stable"} 2' in text
    assert 'request_count{model_name="c",version="1",API="predict",entrypoint="GRPC",status="OK"} 2' in text
    assert 'status="NOT_FOUND"} 1' in text and len(metrics._keys) == 2


# --- JSON tensors ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signature():
    import tensorflow as tf

    from serving.runtime.servable import Signature, TensorSpecInfo
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
    import tensorflow as tf

    from serving.runtime.servable import Signature, TensorSpecInfo
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


@pytest.fixture(scope="module")
def scalars():
    """A signature whose inputs all take one value per row: the row format's fast path."""
    import tensorflow as tf

    from serving.runtime.servable import Signature, TensorSpecInfo
    kinds = {"f0": (tf.float32, "float"), "f1": (tf.float32, "float"), "d": (tf.float64, "float"),
             "i32": (tf.int32, "int"), "i64": (tf.int64, "int"), "s": (tf.string, "string")}
    return Signature("serving_default", "tensorflow/serving/predict",
                     {n: TensorSpecInfo(n, dtype, (None,), "", kind) for n, (dtype, kind) in kinds.items()}, {})


SCALAR_ROW = {"f0": 1.5, "f1": -2, "d": 1e300, "i32": -7, "i64": 2 ** 40, "s": "é"}


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


@pytest.mark.parametrize("array", [
    np.array([[0.25]], np.float32), np.arange(6, dtype=np.float64).reshape(2, 3), np.array([1, 2], np.int64),
    np.array([True, False]), np.array(5, np.int32), np.zeros((0, 3), np.float32),
    np.arange(6, dtype=np.float32).reshape(2, 3).T, np.array([b"a", b"\xff"], dtype=object),
    np.array([[1, 2]], np.int8), np.array([1.5], np.float16), np.array([-3], np.int32),
    np.array([[-2**40]], np.int64), np.array([0.0], np.float64), np.zeros((2, 0, 400), np.int64),
    np.array(7, np.int64), np.array([[False]]),
])
def test_tensor_protos_are_written_as_tf_writes_them_and_read_back(array):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    from serving.codec.tensors import proto_to_array, tensor_bytes
    written = tensor_bytes(array)
    assert written == tf.make_tensor_proto(array).SerializeToString()
    np.testing.assert_array_equal(proto_to_array(tensor_pb2.TensorProto.FromString(written)), array)


def _tensor_bytes(*fields: bytes) -> bytes:
    """A TensorProto written field by field (wire format), for layouts no encoder here writes."""
    return b"".join(fields)


_FLOAT_1 = b"\x08\x01"  # dtype: DT_FLOAT
_SHAPE_3 = b"\x12\x06\x12\x02\x08\x03\x18\x00"  # dims [3], then unknown_rank false
_SHAPE_1 = b"\x12\x04\x12\x02\x08\x01"
_PACKED_3 = b"\x2a\x0c" + np.array([1, 2, 3], np.float32).tobytes()


@pytest.mark.parametrize("raw", [
    *[tf.make_tensor_proto(a).SerializeToString() for a in (
        np.array([153.4], np.float32), np.array([2.5]), np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([1, -2], np.int64), np.array([7], np.int32), np.array([[1, 2]], np.uint8), np.float32(4.5),
        np.array([1.5, 2.5], np.float16), np.array([True, False]), np.array([b"a", b"\xff"], dtype=object),
        np.zeros((0, 3), np.float32), np.array([2 ** 63 + 5], np.uint64))],
    _tensor_bytes(_FLOAT_1, _SHAPE_3, _PACKED_3),  # a shape field after its dims
    _tensor_bytes(_PACKED_3, _FLOAT_1, b"\x12\x04\x12\x02\x08\x03"),  # the values first
    _tensor_bytes(_FLOAT_1, _SHAPE_3, b"\x2a\x04" + np.float32(9).tobytes()),  # one value: the last repeats
    _tensor_bytes(_FLOAT_1, _SHAPE_1, _SHAPE_1, b"\x2a\x08" + np.ones(2, np.float32).tobytes()),  # shapes merge
    _tensor_bytes(_FLOAT_1, b"\x12\x09\x12\x07\x08\x01\x12\x03row", b"\x2a\x04" + np.float32(1).tobytes()),
    _tensor_bytes(_FLOAT_1, _SHAPE_1, b"\x2d" + np.float32(6).tobytes()),  # float_val not packed
    _tensor_bytes(_FLOAT_1, _SHAPE_1, b"\x18\x07", b"\x2a\x04" + np.float32(1).tobytes()),  # a version number
    _tensor_bytes(b"\x08\x02", _SHAPE_1, b"\x2a\x04" + np.float32(1).tobytes()),  # float_val on a double
], ids=lambda raw: raw[:12].hex())
def test_tensor_bytes_read_as_protobuf_reads_them(raw):
    """The wire reader (gRPC Predict's inputs) gives what protobuf + proto_to_array give, whether it
    reads the layout itself, learns it, or hands the tensor to protobuf; alone and in a request."""
    from tensorflow.core.framework import tensor_pb2

    from serving.codec.tensors import proto_to_array, tensor_from_bytes, tensors_from_bytes

    try:
        expected = proto_to_array(tensor_pb2.TensorProto.FromString(raw))
    except ServingError as e:
        with pytest.raises(ServingError, match="tensor"):
            tensor_from_bytes(raw)
        assert e.code == "INVALID_ARGUMENT"
        return
    float_row = tf.make_tensor_proto(np.array([0.5], np.float32)).SerializeToString()
    for _ in range(2):  # the second time through the learned layout
        got = tensor_from_bytes(raw)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        both = tensors_from_bytes([("a", raw), ("b", float_row), ("c", raw), ("d", float_row)])
        assert set(both) == {"a", "b", "c", "d"} and both["a"].shape == both["c"].shape == expected.shape
        np.testing.assert_array_equal(both["c"], expected)
        np.testing.assert_array_equal(both["d"], np.array([0.5], np.float32))


def test_malformed_tensor_bytes_are_invalid_argument_and_the_layout_table_is_bounded():
    from serving.codec import tensors

    for raw in (b"\x08", b"\x12\x09\x12", b"\x08\x01\x2a\x08\x00\x00", b"\xff" * 11):
        with pytest.raises(ServingError, match="cannot read tensor") as e:
            tensors.tensor_from_bytes(raw)
        assert e.value.code == "INVALID_ARGUMENT"
    for rows in range(1, 2 * tensors._MAX_LAYOUTS):
        array = np.arange(rows, dtype=np.float32)
        np.testing.assert_array_equal(tensors.tensor_from_bytes(tf.make_tensor_proto(array).SerializeToString()),
                                      array)
        assert sum(map(len, tensors._layouts.values())) <= tensors._MAX_LAYOUTS


def test_grpc_predict_reads_the_request_with_its_inputs_left_as_bytes():
    from tensorflow_serving.apis import predict_pb2

    from serving.api.tfserving_grpc import LeanPredictRequest, lean_inputs

    request = predict_pb2.PredictRequest(output_filter=["p"], client_id=b"me")
    request.model_spec.name, request.model_spec.version.value = "m", 3
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.5], np.float32)))
    request.inputs["y"].CopyFrom(tf.make_tensor_proto(np.array([[1, 2]], np.int64)))
    wire = request.SerializeToString()
    lean = LeanPredictRequest.FromString(wire)
    assert lean.model_spec == request.model_spec and list(lean.output_filter) == ["p"]
    assert {entry.key: entry.value for entry in lean.inputs} == {
        name: tensor.SerializeToString() for name, tensor in request.inputs.items()}
    again = predict_pb2.PredictRequest(inputs={"x": tf.make_tensor_proto(np.array([2.5], np.float32))})
    arrays = lean_inputs(LeanPredictRequest.FromString(wire + again.SerializeToString()))  # x twice: the last
    np.testing.assert_array_equal(arrays["x"], np.array([2.5], np.float32))
    np.testing.assert_array_equal(arrays["y"], np.array([[1, 2]], np.int64))


def _predict_wire(inputs, name="m", output_filter=(), version=None):
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest(output_filter=list(output_filter))
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    for key, array in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
    return request.SerializeToString()


def test_grpc_predict_reads_inputs_of_known_heads_in_any_order_as_the_parse_does():
    """Requests of learned entry heads are read by the walk (any entry order: protobuf writes a map in a
    new order each time) and give what the parse gives; anything else is parsed."""
    from serving.api.tfserving_grpc import LeanPredictRequest, PredictReader, ReadPredict, lean_inputs
    from serving.dataplane import ModelSpec

    reader = PredictReader()
    rng = np.random.default_rng(0)

    def inputs():
        return {"a": rng.normal(size=1).astype(np.float32), "b": rng.normal(size=(1, 3)).astype(np.float64),
                "c": rng.integers(-5, 5, size=(1, 2)).astype(np.int64), "d": rng.normal(size=2).astype(np.float32),
                "big": rng.normal(size=(1, 40)).astype(np.float32)}  # an entry longer than 127 bytes

    orders = set()
    for i in range(8):
        sent = inputs()
        wire = _predict_wire(sent, output_filter=["p", "q"], version=3)
        orders.add(tuple(entry.key for entry in LeanPredictRequest.FromString(wire).inputs))
        read = reader(wire)
        assert isinstance(read, ReadPredict), i
        assert read.spec == ModelSpec("m", 3, None, "") and read.output_filter == ("p", "q")
        parsed = lean_inputs(LeanPredictRequest.FromString(wire))
        assert set(read.inputs) == set(sent)
        for key, array in sent.items():
            assert read.inputs[key].dtype == array.dtype and read.inputs[key].shape == array.shape
            np.testing.assert_array_equal(read.inputs[key], array)
            np.testing.assert_array_equal(parsed[key], array)
    assert len(orders) > 1  # the entries did come in other orders
    read = reader(_predict_wire({"a": np.array([1.5], np.float32)}, name="n"))  # another model, one input
    assert read.spec.name == "n" and set(read.inputs) == {"a"} and read.output_filter == ()
    for wire in (_predict_wire({"s": np.array([b"x"], object)}), _predict_wire({"i": np.array([7], np.int64)}),
                 _predict_wire({"a": np.array([1.5], np.float32)}, name="")):
        assert not isinstance(reader(wire), ReadPredict)  # strings, one int as a varint, no model: parsed
    twice = _predict_wire({"x": np.array([1.5], np.float32)}) + _predict_wire({"x": np.array([2.5], np.float32)})
    read = reader(twice)
    assert not isinstance(read, ReadPredict)
    np.testing.assert_array_equal(lean_inputs(read)["x"], np.array([2.5], np.float32))  # the last, as a map
    with pytest.raises(Exception, match="(?i)pars|decod|truncat"):
        reader(b"\x12\xff")  # malformed: protobuf's DecodeError (INTERNAL on the wire, as grpcio)
    for rows in range(1, 50):
        reader(_predict_wire({f"x{rows}": np.zeros(rows, np.float32)}))
    reader.MAX_KNOWN = 16
    for rows in range(1, 50):
        assert isinstance(reader(_predict_wire({f"y{rows}": np.zeros(2, np.float32)})), ReadPredict)
        assert len(reader._known) <= 16


def test_grpc_predict_split_at_a_shared_tail_reads_what_the_parse_reads():
    """Inputs that all share one tail (e.g. float32 of shape [1]) are read by splitting the message at it;
    whatever that cannot vouch for (an output filter, a key that holds the tail's bytes, a new name, an
    input named twice) goes to the walk or the parse, and reads as they do."""
    from serving.api.tfserving_grpc import LeanPredictRequest, PredictReader, ReadPredict, lean_inputs

    reader = PredictReader()
    rng = np.random.default_rng(1)
    names = [f"feature_{i}" for i in range(30)] + ["x" * 150]  # a key longer than 127 bytes: a 2-byte length

    def check(read, wire):
        parsed = lean_inputs(LeanPredictRequest.FromString(wire))
        assert isinstance(read, ReadPredict) and set(read.inputs) == set(parsed)
        for key, array in parsed.items():
            assert read.inputs[key].dtype == array.dtype and read.inputs[key].shape == array.shape
            np.testing.assert_array_equal(read.inputs[key], array)

    first = _predict_wire({n: rng.normal(size=1).astype(np.float32) for n in names})
    assert reader._split(first) is None  # nothing learned yet: the walk reads it and learns
    check(reader(first), first)
    for _ in range(5):  # a new entry order each time
        wire = _predict_wire({n: rng.normal(size=1).astype(np.float32) for n in names})
        check(reader._split(wire), wire)
    assert reader._split(wire).dtype == np.float32  # one dtype for all: the servicer checks it once
    tail = next(iter(reader._tails))
    odd = _predict_wire({"a" + tail.decode(): np.array([2.0], np.float32), "feature_2": np.array([3.0], np.float32)})
    for _ in range(2):  # a key holding the tail's bytes: split there, its pieces are no learned key parts
        assert reader._split(odd) is None
        check(reader(odd), odd)
    wire = _predict_wire({"feature_1": np.array([1.0], np.float32), "new": np.array([2.0], np.float32)})
    assert reader._split(wire) is None  # a name never seen: the walk learns it
    check(reader(wire), wire)
    check(reader._split(wire), wire)
    filtered = _predict_wire({"feature_1": np.array([1.0], np.float32)}, output_filter=["p"])
    assert reader._split(filtered) is None and reader(filtered).output_filter == ("p",)
    check(reader(filtered), filtered)
    twice = (_predict_wire({"feature_1": np.array([1.5], np.float32)})
             + _predict_wire({"feature_1": np.array([2.5], np.float32)})[len(_predict_wire({}, name="m")):])
    assert reader._split(twice) is None
    np.testing.assert_array_equal(lean_inputs(reader(twice))["feature_1"], np.array([2.5], np.float32))
    other = _predict_wire({"feature_1": np.array([1.0], np.float32)}, name="other")
    assert reader._split(other) is None  # a model spec not seen yet
    check(reader(other), other)
    assert reader(other).spec.name == "other"
    for dtype in (np.float64, np.float32):  # another model's layout beside: each request splits at its own
        wire = _predict_wire({f"z{i}": rng.normal(size=(1, 2)).astype(dtype) for i in range(4)}, name="other")
        reader(wire)
        check(reader._split(wire), wire)
    assert len(reader._tails) == 3  # float32 [1], float64 [1, 2], float32 [1, 2]
    wire = _predict_wire({n: rng.normal(size=1).astype(np.float32) for n in names})
    check(reader._split(wire), wire)
    for cut in range(1, len(wire)):  # a message cut anywhere: read only where protobuf reads a request
        read = reader._split(wire[:cut])
        if read is not None:  # cut between two entries: the inputs before the cut
            check(read, wire[:cut])


def test_grpc_predict_answers_what_a_predict_response_of_tfs_tensors_reads():
    from types import SimpleNamespace

    from tensorflow_serving.apis import predict_pb2

    from serving.api.tfserving_grpc import predict_response

    outputs = {"probabilities": np.array([[0.25, 0.75]], np.float32), "label": np.array([b"yes"], object),
               "score": np.array([1.5], np.float64)}
    wire = predict_response(SimpleNamespace(name="m", version=7), "serving_default", outputs)
    expected = predict_pb2.PredictResponse(outputs={name: tf.make_tensor_proto(array)
                                                    for name, array in outputs.items()})
    expected.model_spec.name, expected.model_spec.version.value = "m", 7
    expected.model_spec.signature_name = "serving_default"
    assert predict_pb2.PredictResponse.FromString(wire) == expected


def test_serve_predict_and_config_paths_import_no_tfx():
    code = ("import sys; import cli.main, serving.server, serving.client, serving.runtime.model_config; "
            "cli.main.build_parser().parse_args(['serve']); "
            "bad = sorted(m for m in sys.modules if m == 'tfx' or m.startswith('tfx.')); "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_promote_rollback_and_score_paths_import_neither_tfx_nor_tft():
    """They load TensorFlow (the models) but not TFX or TFT (18-50 s of imports)."""
    code = ("import sys; import cli.main, release.promotion, release.model_eval, release.mlflow_registry, "
            "ops.scoring, serving.pyfunc; import tensorflow; "
            "[cli.main.build_parser().parse_args(a) for a in (['promote', 'm'], ['rollback', 'm'], "
            "['score', 'm', '--data', 'x.csv', '--output', 'o'])]; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tfx', 'tensorflow_transform')); "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_unreadable_config_at_start_is_an_error(tmp_path):
    model_config.config_path(tmp_path).write_text("model_config_list { config { name: ")
    manager = ModelManager(tmp_path, FakeServable)
    with pytest.raises(model_config.ModelConfigError, match="models.config"):
        manager.start()


def test_predictions_go_to_the_stream_that_is_stdout_when_they_are_printed():
    """A default bound at import kept the stream of that moment (a test's capture, a closed pipe)."""
    import contextlib
    import io

    from serving.client import print_predictions

    for response, lines in (({"predictions": [[0.25], [0.75]]}, ["0\t[0.25]", "1\t[0.75]"]),
                            ({"outputs": {"a": 1}}, ['{"a": 1}'])):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            print_predictions(response)
        assert out.getvalue().splitlines() == lines


def test_a_client_that_expects_100_continue_gets_it_at_once():
    """Answers leave in one write (a buffered wfile); the interim "100 Continue" must not wait in that
    buffer, or a client such as curl waits a second before it sends its body."""
    import socket
    from types import SimpleNamespace

    from serving.api.tfserving_rest import make_rest_server, serve_in_thread
    from serving.options import ServerOptions

    server = make_rest_server(SimpleNamespace(options=ServerOptions()), "127.0.0.1", 0)
    serve_in_thread(server)
    try:
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            client.settimeout(0.5)
            assert client.recv(64).startswith(b"HTTP/1.1 100 Continue")
    finally:
        server.shutdown()
        server.server_close()


# --- the REST front's own request parser --------------------------------------------------------

@pytest.fixture(scope="module")
def bare_rest_server():
    """The REST server without models: enough to parse requests and answer 400 for unknown paths."""
    from types import SimpleNamespace

    from serving.api.tfserving_rest import make_rest_server, serve_in_thread
    from serving.options import ServerOptions

    server = make_rest_server(SimpleNamespace(options=ServerOptions()), "127.0.0.1", 0)
    serve_in_thread(server)
    yield server.server_address
    server.shutdown()
    server.server_close()


def _exchange(address, raw: bytes) -> bytes:
    """Sends ``raw`` and reads until the server closes the connection or is silent for 0.5 s."""
    import socket

    received = b""
    with socket.create_connection(address, timeout=5) as client:
        client.sendall(raw)
        client.settimeout(0.5)
        try:
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    return received + b"<closed>"
                received += chunk
        except TimeoutError:
            return received


def test_requests_on_one_connection_are_parsed_with_any_header_case_and_kept_alive(bare_rest_server):
    one = b"POST /nope HTTP/1.1\r\nhost: x\r\ncontent-LENGTH: 2\r\nX-Folded: a\r\n b\r\n\r\n{}"
    answer = _exchange(bare_rest_server, one + one)
    assert answer.count(b"HTTP/1.1 400 Bad Request\r\n") == 2 and b"<closed>" not in answer
    assert answer.count(b'{"error":"Malformed request: POST /nope"}') == 2
    assert b"\r\nDate: " in answer and b"\r\nContent-Length: 41\r\n" in answer


def test_request_and_header_lines_read_again_answer_as_when_first_parsed(bare_rest_server, monkeypatch):
    """Lines are parsed once and looked up after: the same bytes on a new connection get the same
    answers (keep-alive, Content-Length, Connection: close, a folded field) as when first parsed."""
    import re

    from serving.api import tfserving_rest as rest

    for table in ("_request_lines", "_field_lines"):
        monkeypatch.setattr(rest, table, {})
    first = b"POST /nope HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\n{}"
    last = b"POST /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\n{ }"
    answers = [re.sub(rb"Date: [^\r]*", b"", _exchange(bare_rest_server, first + last)) for _ in range(2)]
    assert answers[0] == answers[1] and answers[0].count(b" 400 Bad Request\r\n") == 2
    assert answers[0].endswith(b"<closed>")
    assert rest._field_lines[b"Connection: close"] == ("connection", "close")
    assert rest._request_lines[b"POST /nope HTTP/1.1\r\n"][1:3] == ("POST", "HTTP/1.1")
    assert b" b" not in rest._field_lines  # a folded continuation depends on the line before it


@pytest.mark.parametrize("raw, status, closed", [
    (b"POST /nope HTTP/1.0\r\nContent-Length: 0\r\n\r\n", b"400", True),  # HTTP/1.0: one request
    (b"POST /nope HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", b"400", True),
    (b"POST /nope HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", b"400", False),
    (b"GET / HTTP/2.0\r\n\r\n", b"505", True),
    (b"GET / HTTP/one\r\n\r\n", b"400", True),
    (b"GET /\r\n\r\n", b"400", True),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", b"400", True),
    (b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", b"431", True),
    (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", b"431", True),
    (b"BREW /pot HTTP/1.1\r\n\r\n", b"501", True),
    (b"POST /nope HTTP/1.1\nContent-Length: 0\nConnection: close\n\n", b"400", True),  # bare LF: line by line
])
def test_malformed_or_final_requests_get_http_servers_answers(bare_rest_server, raw, status, closed):
    answer = _exchange(bare_rest_server, raw)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]
    assert answer.endswith(b"<closed>") == closed
    assert b"\r\nContent-Type: application/json\r\n" in answer and b'{"error":"' in answer


# --- calls in the caller's thread -----------------------------------------------------------------

def _saved_model(path: Path, loop: bool) -> Path:
    """A two-input SavedModel: ``y = a * 2 + b``, or ``a`` summed ``n[0]`` times in a while loop."""
    import tensorflow as tf

    if loop:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                      tf.TensorSpec([None], tf.int32, name="n")])
        def serve(a, n):
            return {"y": tf.while_loop(lambda i, total: i < n[0], lambda i, total: (i + 1, total + a),
                                       [tf.constant(0), tf.zeros_like(a)])[1]}
    else:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                      tf.TensorSpec([None], tf.float32, name="b")])
        def serve(a, b):
            return {"y": a * 2.0 + b}
    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def _counted(call):
    counts = {"inline": 0, "pooled": 0}
    for kind in counts:
        function = getattr(call, kind)

        def counting(*args, function=function, kind=kind):
            counts[kind] += 1
            return function(*args)
        setattr(call, kind, counting)
    return counts


def test_a_batch_proven_cheap_runs_in_the_callers_thread_and_a_larger_one_is_measured_first(tmp_path):
    from serving.runtime.servable import Servable

    servable = Servable("m", 1, _saved_model(tmp_path / "1", loop=False), timeout_s=30)
    one = {"a": np.array([1.0], np.float32), "b": np.array([0.5], np.float32)}
    assert servable.run("", one)["y"].tolist() == [2.5]
    call = servable._callable(servable.signature(""), ("a", "b"), ("y",))
    counts = _counted(call)
    for _ in range(20):  # the first fast answer (2 ms: any quiet moment) opens batches of 1 to the caller's thread
        servable.run("", one)
        if call.inline_rows:
            break
    assert call.inline_rows == 1
    before = dict(counts)
    assert servable.run("", one)["y"].tolist() == [2.5] and counts["inline"] == before["inline"] + 1
    many = {"a": np.arange(64, dtype=np.float32), "b": np.ones(64, np.float32)}
    assert servable.run("", many)["y"].tolist() == [2.0 * i + 1 for i in range(64)]
    assert counts["pooled"] == before["pooled"] + 1  # a batch larger than any measured: through the pool
    servable.close()


def test_a_graph_with_a_loop_never_leaves_the_pool_and_keeps_its_deadline(tmp_path):

    from serving.runtime.servable import Servable

    servable = Servable("m", 1, _saved_model(tmp_path / "1", loop=True), timeout_s=0.3)
    quick = {"a": np.array([1.0], np.float32), "n": np.array([3], np.int32)}
    for _ in range(5):
        assert servable.run("", quick)["y"].tolist() == [3.0]
    assert servable._callable(servable.signature(""), ("a", "n"), ("y",)).inline_rows == 0
    with pytest.raises(ServingError) as e:
        servable.run("", {"a": np.array([1.0], np.float32), "n": np.array([10 ** 9], np.int32)})
    assert e.value.code == "DEADLINE_EXCEEDED"  # the loop alone runs for minutes: only the deadline ends it
    servable.close()


def _executed_ops(servable, inputs):
    """The op types one traced call of the default signature ran."""
    from tensorflow.core.protobuf import config_pb2

    signature = servable.signature("")
    metadata = config_pb2.RunMetadata()
    servable._session.run([spec.tensor_name for spec in signature.outputs.values()],
                          {signature.inputs[name].tensor_name: value for name, value in inputs.items()},
                          options=config_pb2.RunOptions(trace_level=config_pb2.RunOptions.FULL_TRACE),
                          run_metadata=metadata)
    return {node.timeline_label.split(" = ")[-1].split("(")[0] for device in metadata.step_stats.dev_stats
            for node in device.node_stats}


def test_dense_graphs_run_unfused_and_convolutions_keep_their_fusions(tmp_path):
    """Without a convolution the remapper is off (oneDNN's fused MatMul costs more than its parts at a
    request's shapes); a graph with one keeps the fused convolution. Answers equal the model's own."""
    from serving.runtime.servable import Servable

    weights = tf.constant([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.25]])

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def dense(x):
        return {"y": tf.nn.relu(tf.nn.bias_add(tf.matmul(x, weights), [0.1, -0.1]))}

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 1], tf.float32, name="x")])
    def conv(x):
        return {"y": tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, tf.ones([2, 2, 1, 3]), 1, "VALID"), [0.5, 0.0, -9.0]))}

    rng = np.random.default_rng(0)
    for name, function, value, fused in (("dense", dense, rng.normal(size=(2, 3)), "FusedMatMul"),
                                         ("conv", conv, rng.normal(size=(1, 4, 4, 1)), "FusedConv2D")):
        module = tf.Module()
        module.serve = function
        tf.saved_model.save(module, str(tmp_path / name / "1"), signatures={"serving_default": function})
        servable = Servable(name, 1, tmp_path / name / "1")
        inputs = {"x": value.astype(np.float32)}
        np.testing.assert_allclose(servable.run("", inputs)["y"], function(inputs["x"])["y"].numpy(), rtol=1e-6)
        ran = _executed_ops(servable, inputs)
        assert any(fused in op for op in ran) == (name == "conv"), (name, sorted(ran))
        servable.close()


def test_answers_are_compact_json_with_tf_servings_nan_and_big_integers():
    from serving.codec.tensors import dumps

    for document in ({"predictions": [[0.25, 1e-05, 1e16]], "s": "é"}, {"n": None, "b": [True, False]}):
        assert json.loads(dumps(document)) == document and b" " not in dumps(document)
    assert dumps({"predictions": [[float("nan"), float("inf")]]}) == b'{"predictions":[[NaN,Infinity]]}'
    assert dumps({"big": 2 ** 70}) == b'{"big":1180591620717411303424}'  # beyond 64 bits: the standard encoder


def test_request_targets_are_routed_once_and_the_table_is_bounded(monkeypatch):
    from serving.api import tfserving_rest as rest

    monkeypatch.setattr(rest, "_routes", {})
    match, path = rest._target_route("/v1/models/m/versions/3:predict?x=1")
    assert path == "/v1/models/m/versions/3:predict" and match.group("version") == "3"
    assert rest._target_route("/v1/models/m/versions/3:predict?x=1")[0] is match
    for i in range(rest.MAX_REMEMBERED + 10):
        rest._target_route(f"/v1/models/m{i}:predict")
    assert len(rest._routes) == 11 and "/v1/models/m1033:predict" in rest._routes  # full: started again
    long_target = "/v1/models/" + "a" * rest.MAX_REMEMBERED_BYTES + ":predict"
    assert rest._target_route(long_target)[0].group("name") == "a" * rest.MAX_REMEMBERED_BYTES  # answered
    assert long_target not in rest._routes  # but not remembered


def test_grpc_inputs_of_the_signatures_one_dtype_pass_and_any_other_dtype_is_named():
    from serving.codec.tensors import cast_inputs
    from serving.errors import ServingError
    from serving.runtime.servable import Signature, TensorSpecInfo

    signature = Signature("serving_default", "tensorflow/serving/predict",
                          {n: TensorSpecInfo(n, tf.float32, (None,), kind="float") for n in ("a", "b")}, {})
    assert signature.uniform_dtype == np.float32
    given = {"a": np.ones(2, np.float32), "b": np.zeros(2, np.float32)}
    assert cast_inputs(given, signature) == given and cast_inputs(given, signature) is not given
    assert cast_inputs(given, signature, np.dtype(np.float32)) == given  # the reader vouches: one dtype
    with pytest.raises(ServingError, match=r"Expects arg\[b\] to be float32 but float64 is provided"):
        cast_inputs({"a": given["a"], "b": np.zeros(2, np.float64)}, signature)
    wrong = {"a": np.ones(2, np.float64), "b": np.zeros(2, np.float64)}
    with pytest.raises(ServingError, match=r"to be float32 but float64 is provided"):
        cast_inputs(wrong, signature, np.dtype(np.float64))  # one dtype, not the signature's: looked at


def test_a_version_loads_from_one_parse_of_its_saved_model(tmp_path, monkeypatch):
    """TF's loader.load parses saved_model.pb twice and choosing the session's options read it once more;
    a load parses it once, with variables and lookup tables restored as TF's loader restores them."""
    from tensorflow.python.saved_model import loader_impl

    from serving.runtime.servable import Servable

    module = tf.Module()
    module.scale = tf.Variable(2.0)
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(["a", "b"], tf.constant([1, 2], tf.int64)), default_value=-1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="k")])
    def serve(k):
        return {"y": tf.cast(module.table.lookup(k), tf.float32) * module.scale}

    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": serve})
    parses, reads = [], []
    parse, read_bytes = loader_impl.parse_saved_model, Path.read_bytes
    monkeypatch.setattr(loader_impl, "parse_saved_model", lambda path: parses.append(path) or parse(path))
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or read_bytes(self))
    servable = Servable("m", 1, tmp_path / "1")
    assert len(parses) == 1 and "saved_model.pb" not in reads, (parses, reads)
    assert servable.run("", {"k": np.array([b"a", b"b", b"c"])})["y"].tolist() == [2.0, 4.0, -2.0]
    assert servable.signature_defs["serving_default"].inputs["k"].name.startswith("serving_default_k")
    servable.close()
