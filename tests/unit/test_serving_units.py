"""Serving parts that need no model: models.config (TF Serving's own proto), version policies,
labels and hot swaps in the model manager (with a stand-in loader), batching, metrics, and the
JSON tensor rules."""
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import model_config
from serving.batching import Batcher
from serving.errors import ServingError
from serving.manager import AVAILABLE, END, ModelManager
from serving.metrics import Metrics

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
    code = ("import sys; from serving import model_config as m; p = m.config_path(sys.argv[1]); "
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


# --- JSON tensors ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signature():
    import tensorflow as tf

    from serving.servable import Signature, TensorSpecInfo
    return Signature("serving_default", "tensorflow/serving/predict", {
        "amount": TensorSpecInfo("amount", tf.float32, (None,), "serving_default_amount:0", "float"),
        "segment": TensorSpecInfo("segment", tf.string, (None,), "serving_default_segment:0", "string"),
        "pixels": TensorSpecInfo("pixels", tf.float32, (None, 2), "serving_default_pixels:0", "float"),
    }, {})


def test_row_and_columnar_formats_give_the_same_arrays(signature):
    from serving.tensors import request_inputs

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
    from serving.tensors import request_inputs

    with pytest.raises(ServingError) as e:
        request_inputs(document, signature)
    assert e.value.code == "INVALID_ARGUMENT" and e.value.http_status == 400
    assert message in e.value.message


@pytest.fixture(scope="module")
def numbers():
    """A signature of many scalar inputs, the case the stacked conversion speeds up."""
    import tensorflow as tf

    from serving.servable import Signature, TensorSpecInfo
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
    from serving.tensors import request_inputs, to_array

    arrays, _ = request_inputs({"inputs": columns}, numbers)
    assert list(arrays) == list(columns)
    for name, values in columns.items():
        alone = to_array(values, numbers.inputs[name])
        assert arrays[name].dtype == alone.dtype and arrays[name].shape == alone.shape
        np.testing.assert_array_equal(arrays[name], alone)


@pytest.mark.parametrize("value", [2 ** 31, -2 ** 31 - 1, 2 ** 70, True])
def test_an_int_out_of_its_range_is_refused_not_wrapped(numbers, value):
    from serving.tensors import request_inputs

    with pytest.raises(ServingError) as e:
        request_inputs({"instances": [{"f0": 1, "f1": 1, "f2": 1, "f3": 1, "d": 1, "i32": value, "i64": 1,
                                       "wide": [1, 2]}]}, numbers)
    assert "is not of expected type: int32" in e.value.message and "'i32'" in e.value.message


@pytest.mark.parametrize("array", [
    np.array([[0.25]], np.float32), np.arange(6, dtype=np.float64).reshape(2, 3), np.array([1, 2], np.int64),
    np.array([True, False]), np.array(5, np.int32), np.zeros((0, 3), np.float32),
    np.arange(6, dtype=np.float32).reshape(2, 3).T, np.array([b"a", b"\xff"], dtype=object),
    np.array([[1, 2]], np.int8), np.array([1.5], np.float16),
])
def test_tensor_protos_are_written_as_tf_writes_them_and_read_back(array):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    from serving.tensors import fill_proto, proto_to_array
    proto = tensor_pb2.TensorProto()
    fill_proto(proto, array)
    assert proto == tf.make_tensor_proto(array)
    np.testing.assert_array_equal(proto_to_array(proto), array)


def test_serve_predict_and_config_paths_import_no_tfx():
    code = ("import sys; import cli.main, serving.server, serving.client, serving.model_config; "
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

    from serving.options import ServerOptions
    from serving.rest import make_rest_server, serve_in_thread

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
