"""Serving the model the session's pipeline pushed, over TF Serving's REST and gRPC APIs.

`mlops serve` runs as a real process on loopback (conformance, errors, the CLI client); the hot
swap, batching and request-log tests run the same server in this process so they can push
versions and read its state. Expected predictions come from the SavedModel loaded directly."""
import csv
import http.client
import json
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from serving.options import ServerOptions
from serving.runtime import model_config
from serving.runtime.publish import push_version
from serving.server import start_server
from tests.helpers import TRANSACTIONS, metric_samples

pytestmark = pytest.mark.pipeline
NAME = TRANSACTIONS
MAX_BODY = 200_000
READY = re.compile(r"REST http://127\.0\.0\.1:(\d+)\s+gRPC 127\.0\.0\.1:(\d+)")


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pushed(transactions_runs):
    home, _, first, _ = transactions_runs
    assert first.pushed_path, first.blessing_reason
    return home, Path(first.pushed_path)


def _copy_serving_dir(home: Path, destination: Path) -> Path:
    shutil.copytree(home / "serving", destination)
    return destination


@pytest.fixture(scope="module")
def rows(transactions_csv):
    with transactions_csv.open() as f:
        raw = list(csv.DictReader(f))[:12]
    return [{"amount": float(r["amount"]), "age_days": float(r["age_days"]) if r["age_days"] else math.nan,
             "risk_score": float(r["risk_score"]), "segment": r["segment"]} for r in raw]


@pytest.fixture(scope="module")
def expected(pushed, rows):
    """What the SavedModel itself answers for these rows (through the raw-feature signature)."""
    model = tf.saved_model.load(str(pushed[1]))
    columns = {"amount": tf.constant([r["amount"] for r in rows], tf.float32),
               "age_days": tf.constant([r["age_days"] for r in rows], tf.float64),
               "risk_score": tf.constant([r["risk_score"] for r in rows], tf.float32),
               "segment": tf.constant([r["segment"] for r in rows])}
    return model.signatures["serving_default"](**columns)["predictions"].numpy()


@pytest.fixture(scope="module")
def server(pushed, tmp_path_factory):
    """`mlops serve` as its own process, on free loopback ports."""
    home = tmp_path_factory.mktemp("serve-home")
    serving_dir = _copy_serving_dir(pushed[0], home / "serving")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--home", str(home), "--rest-port", "0", "--grpc-port", "0",
         "--max-request-bytes", str(MAX_BODY), "--poll-seconds", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    output, deadline = [], time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert process.poll() is None, "".join(output)
            continue
        output.append(line)
        match = READY.search(line)
        if match:
            break
    else:
        process.kill()
        pytest.fail("server did not start:\n" + "".join(output))
    yield {"rest": int(match.group(1)), "grpc": int(match.group(2)), "dir": serving_dir, "output": output,
           "home": home}
    process.terminate()
    assert process.wait(timeout=60) == 0


def _wait_for(condition, what: str, seconds: float = 60.0) -> None:
    """Waits for an event the server signals on its own time (a label picked up, a slot given back):
    not a speed check, so the cap is far beyond what it takes; only an event that never comes fails."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {seconds:g} s for {what}")
        time.sleep(0.02)


def _request(port: int, method: str, path: str, body=None, raw: bytes = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, payload.decode()


def _version(pushed) -> int:
    return int(pushed[1].name)


# --- REST conformance ----------------------------------------------------------------------------

def test_rest_status_and_metadata(server, pushed):
    version = _version(pushed)
    status, body = _request(server["rest"], "GET", f"/v1/models/{NAME}")
    assert status == 200
    assert body == {"model_version_status": [{"version": str(version), "state": "AVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}]}
    assert _request(server["rest"], "GET", f"/v1/models/{NAME}/versions/{version}")[0] == 200
    status, body = _request(server["rest"], "GET", f"/v1/models/{NAME}/metadata")
    assert status == 200 and body["model_spec"] == {"name": NAME, "signature_name": "", "version": str(version)}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert set(signatures["serving_default"]["inputs"]) == {"amount", "age_days", "risk_score", "segment"}
    assert signatures["serving_default"]["inputs"]["age_days"]["dtype"] == "DT_DOUBLE"
    assert signatures["classification"]["method_name"] == "tensorflow/serving/classify"


def test_rest_predict_row_and_columnar_equal_the_saved_model(server, rows, expected):
    status, by_row = _request(server["rest"], "POST", f"/v1/models/{NAME}:predict", {"instances": rows})
    assert status == 200
    np.testing.assert_allclose(by_row["predictions"], expected, atol=1e-6)
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    status, by_column = _request(server["rest"], "POST", f"/v1/models/{NAME}:predict",
                                 {"inputs": columns, "signature_name": "serving_default"})
    assert status == 200
    np.testing.assert_allclose(by_column["outputs"], expected, atol=1e-6)
    b64 = [{**rows[0], "segment": {"b64": "b25saW5l"}}]  # "online"
    plain = [{**rows[0], "segment": "online"}]
    assert (_request(server["rest"], "POST", f"/v1/models/{NAME}:predict", {"instances": b64})[1]
            == _request(server["rest"], "POST", f"/v1/models/{NAME}:predict", {"instances": plain})[1])


def _example_json(row):
    example = {"amount": row["amount"], "risk_score": row["risk_score"]}
    if not math.isnan(row["age_days"]):
        example["age_days"] = int(row["age_days"])
    if row["segment"]:
        example["segment"] = row["segment"]
    return example


def _tf_example(row) -> tf.train.Example:
    """A row as CsvExampleGen writes it: integer columns int64, missing values left out."""
    example = tf.train.Example()
    for key, value in _example_json(row).items():
        feature = example.features.feature[key]
        if isinstance(value, str):
            feature.bytes_list.value.append(value.encode())
        elif isinstance(value, int):
            feature.int64_list.value.append(value)
        else:
            feature.float_list.value.append(value)
    return example


def test_rest_classify_on_examples(server, rows, expected):
    body = {"signature_name": "classification", "examples": [_example_json(r) for r in rows]}
    status, result = _request(server["rest"], "POST", f"/v1/models/{NAME}:classify", body)
    assert status == 200, result
    assert [[label for label, _ in row] for row in result["results"]] == [["0", "1"]] * len(rows)
    np.testing.assert_allclose([row[1][1] for row in result["results"]], expected[:, 0], atol=1e-6)
    status, result = _request(server["rest"], "POST", f"/v1/models/{NAME}:classify",
                              {"examples": body["examples"]})  # serving_default is a predict signature
    assert status == 400 and "Expected classification signature method_name" in result["error"]


def test_labels_from_models_config(server, pushed, rows, expected):
    version = _version(pushed)
    model_config.set_labels(model_config.config_path(server["dir"]), NAME, {"stable": version})
    _wait_for(lambda: _request(server["rest"], "GET", f"/v1/models/{NAME}/labels/stable")[0] == 200,
              "the label to be picked up")
    status, body = _request(server["rest"], "POST", f"/v1/models/{NAME}/labels/stable:predict", {"instances": rows})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], expected, atol=1e-6)


# --- gRPC conformance ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server['grpc']}")
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def _predict_request(rows, version=None, label=None) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = NAME
    if version:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    request.inputs["amount"].CopyFrom(tf.make_tensor_proto(np.array([r["amount"] for r in rows], np.float32)))
    request.inputs["age_days"].CopyFrom(tf.make_tensor_proto(np.array([r["age_days"] for r in rows], np.float64)))
    request.inputs["risk_score"].CopyFrom(tf.make_tensor_proto(np.array([r["risk_score"] for r in rows], np.float32)))
    request.inputs["segment"].CopyFrom(tf.make_tensor_proto(np.array([r["segment"].encode() for r in rows],
                                                                     dtype=object)))
    return request


def test_grpc_predict_classify_metadata_status(stubs, pushed, rows, expected):
    prediction, models = stubs
    version = _version(pushed)
    response = prediction.Predict(_predict_request(rows), timeout=30)
    assert response.model_spec.name == NAME and response.model_spec.version.value == version
    assert response.model_spec.signature_name == "serving_default"
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["predictions"]), expected, atol=1e-6)

    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name, classify.model_spec.signature_name = NAME, "classification"
    for row in rows:
        classify.input.example_list.examples.add().CopyFrom(_tf_example(row))
    result = prediction.Classify(classify, timeout=30).result
    np.testing.assert_allclose([c.classes[1].score for c in result.classifications], expected[:, 0], atol=1e-6)
    assert {c.classes[0].label for c in result.classifications} == {"0"}

    metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata_request.model_spec.name = NAME
    metadata = prediction.GetModelMetadata(metadata_request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signature_map)
    assert {"serving_default", "serving_tf_example", "classification"} <= set(signature_map.signature_def)

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = NAME
    status = models.GetModelStatus(status_request, timeout=30).model_version_status
    assert [(s.version, s.state) for s in status] == [(version, 30)]  # 30 = AVAILABLE


@pytest.mark.parametrize("change, code, message", [
    (lambda r: r.model_spec.__setattr__("name", "nope"), grpc.StatusCode.NOT_FOUND, "Servable not found"),
    (lambda r: r.model_spec.version.__setattr__("value", 7), grpc.StatusCode.NOT_FOUND, "Specific(transactions, 7)"),
    (lambda r: r.model_spec.__setattr__("version_label", "nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: nope"),
    (lambda r: r.inputs["amount"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float64))),
     grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[amount] to be float32"),
    (lambda r: r.inputs.pop("segment"), grpc.StatusCode.INVALID_ARGUMENT, "Missing: {segment}"),
    (lambda r: r.model_spec.__setattr__("signature_name", "nope"), grpc.StatusCode.INVALID_ARGUMENT,
     'Serving signature name: "nope" not found'),
])
def test_grpc_errors_use_tf_serving_codes(stubs, rows, change, code, message):
    request = _predict_request(rows[:1])
    change(request)
    with pytest.raises(grpc.RpcError) as e:
        stubs[0].Predict(request, timeout=30)
    assert e.value.code() == code and message in e.value.details()


# --- the Open Inference Protocol (KServe V2), driven by Triton's own clients ---------------------

V2_NUMPY = {"FP32": np.float32, "FP64": np.float64, "BYTES": object}


def _v2_inputs(module, metadata_inputs, rows):
    """The rows as V2 tensors of the model's metadata (datatype and rank from the server)."""
    inputs = []
    for tensor in metadata_inputs:
        name, datatype, rank = tensor["name"], tensor["datatype"], len(tensor["shape"])
        values = [r[name].encode() if datatype == "BYTES" else r[name] for r in rows]
        array = np.array(values, dtype=V2_NUMPY[datatype]).reshape([len(rows)] + [1] * (rank - 1))
        entry = module.InferInput(name, list(array.shape), datatype)
        entry.set_data_from_numpy(array)
        inputs.append(entry)
    return inputs


def test_v2_rest_and_grpc_clients_get_the_tf_serving_predictions(server, pushed, rows, expected):
    import tritonclient.grpc as v2_grpc
    import tritonclient.http as v2_http
    from tritonclient.utils import InferenceServerException

    version = str(_version(pushed))
    rest = v2_http.InferenceServerClient(f"127.0.0.1:{server['rest']}")
    grpc_client = v2_grpc.InferenceServerClient(f"127.0.0.1:{server['grpc']}")
    try:
        assert rest.is_server_live() and rest.is_server_ready() and grpc_client.is_server_live()
        assert grpc_client.is_server_ready() and rest.is_model_ready(NAME) and grpc_client.is_model_ready(NAME)
        assert rest.is_model_ready(NAME, version) and not rest.is_model_ready(NAME, "7")
        assert "binary_tensor_data" in rest.get_server_metadata()["extensions"]
        metadata = rest.get_model_metadata(NAME)
        assert metadata["versions"] == [version] and metadata["platform"] == "tensorflow_savedmodel"
        assert {t["name"]: t["datatype"] for t in metadata["inputs"]} == {
            "amount": "FP32", "age_days": "FP64", "risk_score": "FP32", "segment": "BYTES"}
        grpc_metadata = grpc_client.get_model_metadata(NAME, as_json=True)
        assert [t["name"] for t in grpc_metadata["inputs"]] == [t["name"] for t in metadata["inputs"]]

        for client, module in ((rest, v2_http), (grpc_client, v2_grpc)):
            result = client.infer(NAME, _v2_inputs(module, metadata["inputs"], rows), model_version=version,
                                  request_id="r1")
            np.testing.assert_allclose(result.as_numpy("predictions"), expected, atol=1e-6)
        # JSON output on request, and the model addressed by a label as its version's alias
        model_config.set_labels(model_config.config_path(server["dir"]), NAME, {"stable": int(version)})
        _wait_for(lambda: rest.is_model_ready(NAME, "stable"), "the label to be picked up")
        result = rest.infer(NAME, _v2_inputs(v2_http, metadata["inputs"], rows), model_version="stable",
                            outputs=[v2_http.InferRequestedOutput("predictions", binary_data=False)])
        assert result.get_response()["outputs"][0]["data"] and result.get_response()["model_version"] == version
        np.testing.assert_allclose(result.as_numpy("predictions"), expected, atol=1e-6)

        # errors as the protocol states them: a status and one message
        wrong = _v2_inputs(v2_grpc, [dict(t, datatype="FP64") if t["name"] == "amount" else t
                                     for t in metadata["inputs"]], rows)
        with pytest.raises(InferenceServerException) as e:
            grpc_client.infer(NAME, wrong)
        assert e.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "datatype FP64 does not match the model's FP32" in e.value.message()
        with pytest.raises(InferenceServerException) as e:
            rest.infer("nope", _v2_inputs(v2_http, metadata["inputs"], rows))
        assert e.value.status() == "404" and "Servable not found" in e.value.message()
    finally:
        rest.close()
        grpc_client.close()
    status, body = _request(server["rest"], "POST", f"/v2/models/{NAME}/infer",
                            {"inputs": [{"name": "amount", "datatype": "FP32", "shape": [2], "data": [1.0]}]})
    assert status == 400 and "1 values for shape [2]" in body["error"]
    status, body = _request(server["rest"], "GET", "/v2/models/nope")
    assert status == 404 and "Servable not found" in body["error"]
    status, text = _request(server["rest"], "GET", "/monitoring/prometheus/metrics")
    counted = {(dict(labels)["entrypoint"], dict(labels)["status"])
               for labels in metric_samples(text)[":tensorflow:serving:request_count"]}
    assert {("V2_REST", "OK"), ("V2_GRPC", "OK")} <= counted


# --- bad requests: each an error in TF Serving's shape, the server stays up ----------------------

BAD_REQUESTS = [
    ("POST", f"/v1/models/{NAME}:predict", b"{not json", 400, "JSON Parse error"),
    ("POST", f"/v1/models/{NAME}:predict", {"instances": [{"amount": "x"}]}, 400, "is not of expected type"),
    ("POST", f"/v1/models/{NAME}:predict", {"instances": [{"amount": [1.0, 2.0], "age_days": 1.0,
                                                           "risk_score": 1.0, "segment": "a"}]}, 400, "shape"),
    ("POST", f"/v1/models/{NAME}:predict", {"instances": [], "inputs": {}}, 400, "only one of"),
    ("POST", f"/v1/models/{NAME}:predict", {"instances": [{"amount": 1.0}]}, 400, "Missing: {age_days,risk_score"),
    ("POST", "/v1/models/nope:predict", {"instances": [1]}, 404, "Servable not found for request: Latest(nope)"),
    ("POST", f"/v1/models/{NAME}/versions/7:predict", {"instances": [1]}, 404, "Specific(transactions, 7)"),
    ("POST", f"/v1/models/{NAME}/versions/x:predict", {"instances": [1]}, 400, "Failed to convert version"),
    ("POST", f"/v1/models/{NAME}/labels/nope:predict", {"instances": [1]}, 400, "Unrecognized servable version"),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", f"/v1/models/{NAME}/versions/7", None, 404, "Could not find version 7"),
    ("POST", "/v1/models/..:predict", {"instances": [1]}, 400, "Invalid model name"),
    ("POST", "/v1/models/%2e%2e%2fetc:predict", {"instances": [1]}, 400, "Invalid model name"),
    ("POST", f"/v1/models/{NAME}:explode", {"instances": [1]}, 400, "Malformed request"),
    ("POST", f"/v1/models/{NAME}:predict", {"instances": [1], "signature_name": 3}, 400, "must be a string"),
    ("POST", f"/v1/models/{NAME}:regress", {"examples": [{"amount": 1.0}]}, 400, "Expected regression signature"),
]


@pytest.mark.parametrize("method, path, body, status, message", BAD_REQUESTS)
def test_bad_requests_get_tf_serving_errors(server, method, path, body, status, message):
    got_status, got = _request(server["rest"], method, path, raw=body if isinstance(body, bytes) else None,
                               body=None if isinstance(body, bytes) else body)
    assert got_status == status and isinstance(got, dict) and message in got["error"], got


def test_oversize_body_is_refused_and_the_server_stays_up(server, rows):
    status, body = _request(server["rest"], "POST", f"/v1/models/{NAME}:predict",
                            {"instances": rows * (MAX_BODY // 100)})
    assert status == 413 and "exceeds the limit" in body["error"]
    status, body = _request(server["rest"], "GET", "/healthz")
    assert status == 200 and body["models"][NAME]["versions"]


def test_metrics_count_requests_per_model_and_version(server, pushed, rows):
    assert _request(server["rest"], "POST", f"/v1/models/{NAME}:predict", {"instances": rows})[0] == 200
    assert _request(server["rest"], "POST", "/v1/models/nope:predict", {"instances": rows})[0] == 404
    status, text = _request(server["rest"], "GET", "/monitoring/prometheus/metrics")
    version = _version(pushed)
    assert status == 200
    samples = metric_samples(text)
    assert samples[":tensorflow:serving:request_count"][(("API", "predict"), ("entrypoint", "REST"),
                                                         ("model_name", NAME), ("status", "OK"),
                                                         ("version", str(version)))] >= 1
    assert any(dict(labels)["model_name"] == NAME and dict(labels)["version"] == str(version)
               for labels in samples[":tensorflow:serving:request_latency_bucket"])
    assert any(dict(labels)["status"] == "NOT_FOUND" for labels in samples[":tensorflow:serving:request_count"])


def test_pushed_model_carries_warmup_records_the_server_replays(server, pushed):
    path = pushed[1] / "assets.extra" / "tf_serving_warmup_requests"
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    kinds = [log.WhichOneof("log_type") for log in logs]
    assert kinds.count("predict_log") >= 2 and "classify_log" in kinds
    first = next(log.predict_log.request for log in logs if log.WhichOneof("log_type") == "predict_log")
    assert set(first.inputs) == {"amount", "age_days", "risk_score", "segment"}
    assert any(f"({len(logs)} warmup requests)" in line for line in server["output"])


def test_predict_command_over_rest_and_grpc(server, transactions_csv, tmp_path, expected):
    small = tmp_path / "rows.csv"
    small.write_text("".join(transactions_csv.read_text().splitlines(keepends=True)[:13]))
    outputs = {}
    for api in ("--rest", "--grpc"):
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "predict", str(small), "--model", NAME, api,
             "--rest-port", str(server["rest"]), "--grpc-port", str(server["grpc"])],
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "left out: is_fraud" in result.stderr
        assert "note: each score is the probability that is_fraud is '1' (not '0')" in result.stderr
        outputs[api] = [json.loads(line.split("\t")[1]) for line in result.stdout.splitlines()]
    np.testing.assert_allclose(outputs["--rest"], expected, atol=1e-6)
    np.testing.assert_allclose(outputs["--grpc"], expected, atol=1e-6)
    result = subprocess.run([sys.executable, "-m", "cli.main", "predict", str(small), "--model", "nope",
                             "--rest-port", str(server["rest"])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "HTTP 404" in result.stderr  # the server said no
    no_segment = tmp_path / "no_segment.csv"
    no_segment.write_text("amount,age_days,risk_score\n1.5,30,0.2\n")
    result = subprocess.run([sys.executable, "-m", "cli.main", "predict", str(no_segment), "--model", NAME,
                             "--rest-port", str(server["rest"])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "missing column(s) the model needs: segment" in result.stderr  # bad input
    worded = tmp_path / "worded.json"  # sent as it is: the server reads it and refuses it
    worded.write_text(json.dumps({"instances": [{"amount": "lots", "age_days": 30, "risk_score": 0.2,
                                                 "segment": "retail"}]}))
    result = subprocess.run([sys.executable, "-m", "cli.main", "predict", str(worded), "--model", NAME,
                             "--rest-port", str(server["rest"])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "HTTP 400" in result.stderr and "amount" in result.stderr, result.stderr


# --- hot swap under load, failed versions, batching, request logs (server in this process) --------

@pytest.fixture
def local_server(pushed, tmp_path):
    running = []

    def start(**options):
        serving_dir = _copy_serving_dir(pushed[0], tmp_path / f"serving{len(running)}")
        server = start_server(serving_dir, rest_port=0, grpc_port=0,
                              options=ServerOptions(poll_seconds=0.2, **options))
        running.append(server)
        return server, serving_dir
    yield start
    for server in running:
        server.stop()




def test_tls_and_mutual_tls_over_rest_and_grpc(local_server, pushed, rows, expected, tmp_path, capsys):
    """TF Serving's ssl_config: HTTPS and gRPC over TLS with the server's certificate; with a client
    CA, both refuse a client without a certificate and serve one with it; `mlops predict` speaks it."""
    import ssl
    import urllib.request

    from cli.main import main
    from serving.client import ClientError, Target, predict_grpc, predict_rest
    from serving.options import TlsFiles
    from tests.helpers import write_tls_files

    files = write_tls_files(tmp_path / "tls")
    server, _ = local_server(tls=TlsFiles(files["server_cert"], files["server_key"]))
    body = {"instances": rows}
    inputs = {"amount": {"dtype": "DT_FLOAT"}, "age_days": {"dtype": "DT_DOUBLE"},
              "risk_score": {"dtype": "DT_FLOAT"}, "segment": {"dtype": "DT_STRING"}}
    verified = Target("127.0.0.1", NAME, tls=TlsFiles(ca=files["ca"]))
    rest = predict_rest("127.0.0.1", server.rest_port, verified, body)["predictions"]
    grpc_answer = predict_grpc("127.0.0.1", server.grpc_port, verified, body, inputs)["predictions"]
    np.testing.assert_allclose(rest, expected, atol=1e-6)
    np.testing.assert_allclose(grpc_answer, expected, atol=1e-6)
    with pytest.raises(http.client.RemoteDisconnected):  # plain HTTP to the HTTPS port: no answer in the clear
        urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}/v1/models/{NAME}", timeout=10)
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # a client that trusts another CA
        urllib.request.urlopen(f"https://127.0.0.1:{server.rest_port}/v1/models/{NAME}", timeout=10,
                               context=ssl.create_default_context())

    mutual, _ = local_server(tls=TlsFiles(files["server_cert"], files["server_key"], files["ca"]))
    # TLS 1.3 refuses after the handshake: the alert, or EOF when the server closes first
    with pytest.raises(ClientError, match=r"refused the TLS connection \(.*(CERTIFICATE_REQUIRED|EOF occurred|"
                                          r"closed the connection after the handshake)"):
        predict_rest("127.0.0.1", mutual.rest_port, verified, body)
    with pytest.raises(ClientError, match=r"gRPC 127\.0\.0\.1:\d+: UNAVAILABLE"):
        predict_grpc("127.0.0.1", mutual.grpc_port, verified, body, inputs, timeout=10)
    client = Target("127.0.0.1", NAME, tls=TlsFiles(files["client_cert"], files["client_key"], files["ca"]))
    np.testing.assert_allclose(predict_rest("127.0.0.1", mutual.rest_port, client, body)["predictions"], expected,
                               atol=1e-6)
    np.testing.assert_allclose(predict_grpc("127.0.0.1", mutual.grpc_port, client, body, inputs)["predictions"],
                               expected, atol=1e-6)
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps(body))
    capsys.readouterr()
    for api in ("--rest", "--grpc"):
        assert main(["predict", "--model", NAME, api, "--rest-port", str(mutual.rest_port), "--grpc-port",
                     str(mutual.grpc_port), "--ssl-ca", str(files["ca"]), "--ssl-cert", str(files["client_cert"]),
                     "--ssl-key", str(files["client_key"]), str(rows_file)]) == 0
    answered = [line for line in capsys.readouterr().out.splitlines() if re.match(r"^\d+\t", line)]
    assert len(answered) == 2 * len(rows)
    assert main(["predict", "--model", NAME, "--ssl-ca", str(tmp_path / "none.pem"), str(rows_file)]) == 2


def _closed_by_server(sock, within: float) -> bool:
    """True when the server closes ``sock`` (EOF or a reset) within ``within`` seconds."""
    import socket

    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_a_stalled_tls_handshake_is_dropped_while_others_are_served(local_server, rows, expected, tmp_path,
                                                                     monkeypatch):
    """A client that opens a TLS port and never says hello is dropped after the handshake bound
    (ServerOptions.handshake_timeout_s, 10 s, 0.5 s here) on both APIs, and a client with a handshake
    is answered meanwhile. The check allows 20x the bound, so a loaded machine cannot make it flake;
    without a bound the connection would stay open for good and fail it."""
    import socket

    from serving.client import Target, predict_grpc, predict_rest
    from serving.options import TlsFiles
    from tests.helpers import write_tls_files

    files = write_tls_files(tmp_path / "tls")
    server, _ = local_server(tls=TlsFiles(files["server_cert"], files["server_key"]), handshake_timeout_s=0.5)
    verified = Target("127.0.0.1", NAME, tls=TlsFiles(ca=files["ca"]))
    inputs = {"amount": {"dtype": "DT_FLOAT"}, "age_days": {"dtype": "DT_DOUBLE"},
              "risk_score": {"dtype": "DT_FLOAT"}, "segment": {"dtype": "DT_STRING"}}
    for port in (server.rest_port, server.grpc_port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            rest = predict_rest("127.0.0.1", server.rest_port, verified, {"instances": rows})["predictions"]
            grpc_answer = predict_grpc("127.0.0.1", server.grpc_port, verified, {"instances": rows},
                                       inputs)["predictions"]
            np.testing.assert_allclose(rest, expected, atol=1e-6)
            np.testing.assert_allclose(grpc_answer, expected, atol=1e-6)
            assert _closed_by_server(stalled, within=10.0), f"port {port} kept a silent TLS client"


def test_grpc_calls_in_flight_finish_when_the_server_stops(local_server, pushed, rows, expected, monkeypatch):
    """A call the model is still running when the server stops is answered in full (the stop waits
    up to its grace for calls in flight); a call after the stop is refused. The model is made slow
    here (each run waits 1 s: fault injection) so that a call is surely in flight at the stop."""
    from serving.runtime.servable import Servable

    entered, run = threading.Event(), Servable.run

    def slow_run(self, *args, **kwargs):
        entered.set()
        time.sleep(1.0)
        return run(self, *args, **kwargs)

    server, _ = local_server()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    monkeypatch.setattr(Servable, "run", slow_run)
    answer = {}
    caller = threading.Thread(target=lambda: answer.update(response=stub.Predict(_predict_request(rows), timeout=60)))
    caller.start()
    assert entered.wait(timeout=60)
    server.stop()
    caller.join(timeout=60)
    response = answer.get("response")
    assert response is not None, "the call in flight was not answered"
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["predictions"]).reshape(-1),
                               np.reshape(expected, -1), atol=1e-6)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Predict(_predict_request(rows), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()


def test_idle_and_half_sent_connections_are_closed_and_a_full_server_says_503(local_server, rows, expected):
    """Abuse: connections that send nothing or half a request are closed after the idle timeout; past
    the connection limit a new client gets a clear 503 at once; then service is normal again."""
    import socket

    server, _ = local_server(idle_timeout_s=1.0, max_connections=8)
    idle = [socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) for _ in range(7)]
    half = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
    half.sendall(f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nContent-Length: 500\r\n\r\n{{\"inst".encode())
    _wait_for(lambda: server._rest.open_connections == 8, "the 8 connections to be open")
    status, body = _request(server.rest_port, "GET", f"/v1/models/{NAME}")
    assert status == 503 and "Too many connections" in body["error"]
    for connection in idle + [half]:  # each closed by the server after its 1 s of silence: EOF
        assert _closed_by_server(connection, within=10.0)  # 10x the idle timeout: a slow machine is not a failure
        connection.close()
    _wait_for(lambda: server._rest.open_connections == 0, "every slot to be given back")
    status, body = _request(server.rest_port, "POST", f"/v1/models/{NAME}:predict", {"instances": rows})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], expected, atol=1e-6)


def _shifted_copy(model_dir: Path, target: Path) -> Path:
    """A copy of the SavedModel whose output bias is 3.0 higher: the same graph and signatures, other
    weights (every answer differs from the original's). The variables are rewritten key for key,
    the checkpoint's object graph included, so the copy loads as the original does."""
    shutil.copytree(model_dir, target)
    prefix = str(target / "variables" / "variables")
    reader = tf.train.load_checkpoint(prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    biases = [k for k in shapes if k.endswith("bias/.ATTRIBUTES/VARIABLE_VALUE") and shapes[k] == [1]]
    assert biases, "no output bias of one unit in the checkpoint"
    names = sorted(shapes)
    values = [reader.get_tensor(k) + 3.0 if k in biases else reader.get_tensor(k) for k in names]
    for path in (target / "variables").glob("variables.*"):
        path.unlink()
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(v, dtype=dtypes[k]) for k, v in zip(names, values)])
    return target


def _saved_model_predictions(model_dir: Path, rows) -> np.ndarray:
    model = tf.saved_model.load(str(model_dir))
    columns = {"amount": tf.constant([r["amount"] for r in rows], tf.float32),
               "age_days": tf.constant([r["age_days"] for r in rows], tf.float64),
               "risk_score": tf.constant([r["risk_score"] for r in rows], tf.float32),
               "segment": tf.constant([r["segment"] for r in rows])}
    return model.signatures["serving_default"](**columns)["predictions"].numpy().reshape(-1)


def _which(values, by_version) -> str:
    """The version ("old", "new") whose SavedModel gives exactly these values for the request's rows
    ("": neither, e.g. rows served by different versions)."""
    return next((version for version, expected in by_version.items()
                 if np.allclose(np.reshape(values, -1), expected, atol=1e-6)), "")


def test_hot_swap_under_load_fails_no_request(local_server, pushed, rows, tmp_path):
    """Four clients (two REST, two gRPC) on the label `stable` while it moves to a version with other
    weights: every call is answered, every answer is one version's values for all its rows (gRPC's
    equal to the version it names), each client's answers move once from old to new and never back."""
    server, serving_dir = local_server()
    old = _version(pushed)
    config = model_config.config_path(serving_dir)
    model_config.set_labels(config, NAME, {"stable": old})
    server.core.manager.poll()
    shifted = _shifted_copy(pushed[1], tmp_path / "shifted")
    batches = [rows[i:i + 3] for i in range(0, 12, 3)]  # 3 rows a request: a split answer would show
    old_values = [_saved_model_predictions(pushed[1], batch) for batch in batches]
    new_values = [_saved_model_predictions(shifted, batch) for batch in batches]
    assert all(np.abs(o - n).max() > 1e-4 for o, n in zip(old_values, new_values))  # far beyond atol 1e-6
    answers, failures, lock = {}, [], threading.Lock()
    # each client: 100 requests before the swap starts, then on until 100 answers came from the new
    # version (at most MAX_CALLS in all: bounded however slowly it loads)
    before, after, most, swapped_at = 100, 100, 3000, threading.Event()

    def record(client, i, served, version_named=None) -> bool:
        """Records an answer; False once this client has had enough of the new version."""
        with lock:
            served_so_far = answers.setdefault(client, [])
            served_so_far.append((served, version_named))
            if i == before:
                swapped_at.set()
            return sum(1 for version, _ in served_so_far if version == "new") < after

    def rest_client(client):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
            for i in range(most):
                batch = i % len(batches)
                connection.request("POST", f"/v1/models/{NAME}/labels/stable:predict",
                                   body=json.dumps({"instances": batches[batch]}))
                response = connection.getresponse()
                body = json.loads(response.read())
                assert response.status == 200, body
                if not record(client, i, _which(body["predictions"], {"old": old_values[batch],
                                                                      "new": new_values[batch]})):
                    break
            connection.close()
        except Exception as e:  # noqa: BLE001 - any failure of a client thread fails the test below
            with lock:
                failures.append(f"{client}: {type(e).__name__}: {e}")

    def grpc_client(client):
        try:
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                for i in range(most):
                    batch = i % len(batches)
                    response = stub.Predict(_predict_request(batches[batch], label="stable"), timeout=30)
                    values = tf.make_ndarray(response.outputs["predictions"])
                    if not record(client, i, _which(values, {"old": old_values[batch], "new": new_values[batch]}),
                                  response.model_spec.version.value):
                        break
        except Exception as e:  # noqa: BLE001
            with lock:
                failures.append(f"{client}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=rest_client, args=(f"rest{i}",)) for i in range(2)] + \
        [threading.Thread(target=grpc_client, args=(f"grpc{i}",)) for i in range(2)]
    [t.start() for t in threads]
    assert swapped_at.wait(timeout=120)
    new = int(push_version(shifted, serving_dir / NAME, NAME, [_tf_example(r).SerializeToString() for r in rows[:4]])
              .name)
    model_config.set_labels(config, NAME, {"stable": new})  # moved before the new version is loaded
    [t.join(timeout=600) for t in threads]
    assert failures == [] and sorted(answers) == ["grpc0", "grpc1", "rest0", "rest1"]
    for client, served in answers.items():
        assert before < len(served) < most, f"{client}: {len(served)} answers"
        versions = [version for version, _ in served]
        assert "" not in versions, f"{client}: an answer matching neither version (split or wrong)"
        assert versions[0] == "old" and versions[-1] == "new", client
        moves = sum(1 for a, b in zip(versions, versions[1:]) if a != b)
        assert moves == 1, f"{client}: {moves} moves between versions"
        if client.startswith("grpc"):
            assert all(named == {"old": old, "new": new}[version] for version, named in served), \
                f"{client}: an answer names another version than the one whose values it holds"
    assert server.core.manager.resolve(NAME, label="stable").version == new
    assert {s.version: s.state for s in server.core.manager.status(NAME)} == {new: "AVAILABLE", old: "AVAILABLE"}


def test_version_that_fails_to_load_never_takes_traffic(local_server, pushed, rows):
    server, serving_dir = local_server()
    broken = serving_dir / NAME / str(_version(pushed) + 10)
    shutil.copytree(pushed[1], broken)
    (broken / "saved_model.pb").write_bytes(b"not a saved model")
    _wait_for(lambda: broken.name in server.core.manager.models()[NAME]["errors"], "the broken version's error")
    status = {s.version: s for s in server.core.manager.status(NAME)}
    assert status[int(broken.name)].state == "END" and status[int(broken.name)].error_message
    assert status[_version(pushed)].state == "AVAILABLE"
    got, body = _request(server.rest_port, "POST", f"/v1/models/{NAME}:predict", {"instances": rows[:1]})
    assert got == 200
    assert _request(server.rest_port, "GET", "/healthz")[0] == 200


def test_batching_merges_concurrent_requests_and_logs_sampled_rows(local_server, pushed, rows, expected, tmp_path):
    logs = tmp_path / "request-logs"
    server, _ = local_server(enable_batching=True, max_batch_size=16, batch_timeout_ms=5.0,
                             request_log_dir=logs, request_log_rate=1.0)
    failures = []

    def client(offset):
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
        for i in range(25):
            k = (offset + i) % 12
            connection.request("POST", f"/v1/models/{NAME}:predict", body=json.dumps({"instances": [rows[k]]}))
            body = json.loads(connection.getresponse().read())
            if not np.allclose(body.get("predictions"), expected[k:k + 1], atol=1e-6):
                failures.append(body)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join(timeout=300) for t in threads]
    assert failures == []
    model = server.core.manager.resolve(NAME)
    assert model.batcher("serving_default").batches > 0
    server.stop()  # flushes the request log
    files = list((logs / NAME / str(_version(pushed))).glob("*.tfrecord"))
    assert len(files) == 1
    examples = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(files[0]))]
    assert len(examples) == 200
    assert examples[0].features.feature["amount"].WhichOneof("kind") == "float_list"
    # rows arrive from 8 threads in any order, and some rows have no segment (left out, as in training)
    with_segment = [e for e in examples if "segment" in e.features.feature]
    assert with_segment and with_segment[0].features.feature["segment"].WhichOneof("kind") == "bytes_list"
    with_age = [e for e in examples if "age_days" in e.features.feature]
    assert with_age and with_age[0].features.feature["age_days"].WhichOneof("kind") == "int64_list"
    assert len(with_age) < len(examples)  # missing values (NaN) are left out, as in the training data


# --- what grpcio gives operators: the health service and reflection --------------------------------

def test_grpc_health_per_model_and_reflection_with_grpcios_own_clients(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server['grpc']}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", NAME):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="tensorflow.serving.PredictionService")]
        answers = list(reflection.ServerReflectionInfo(iter(requests), timeout=10))
        services = {s.name for s in answers[0].list_services_response.service}
        assert {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
                "inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
        from google.protobuf import descriptor_pb2

        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in answers[1].file_descriptor_response.file_descriptor_proto]
        assert any(any(s.name == "PredictionService" for s in f.service) for f in files)
    finally:
        channel.close()


def test_a_model_without_a_version_is_not_serving_until_one_loads(local_server, pushed, tmp_path):
    """The health service follows the version manager: a model whose versions are all unloaded is
    NOT_SERVING (and so is the server as a whole), SERVING again once a version is back."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server, serving_dir = local_server()
    version_dir = serving_dir / NAME / str(_version(pushed))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    health = health_pb2_grpc.HealthStub(channel)

    def status(service):
        return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status

    try:
        assert status(NAME) == health_pb2.HealthCheckResponse.SERVING
        version_dir.rename(tmp_path / "away")
        _wait_for(lambda: status(NAME) == health_pb2.HealthCheckResponse.NOT_SERVING, "NOT_SERVING")
        assert status("") == health_pb2.HealthCheckResponse.NOT_SERVING
        (tmp_path / "away").rename(version_dir)
        _wait_for(lambda: status(NAME) == health_pb2.HealthCheckResponse.SERVING, "SERVING again")
    finally:
        channel.close()


# --- --workers: processes sharing the ports ------------------------------------------------------------

def _workers(pid: int):
    """The serving workers among a process's children (not multiprocessing's resource tracker)."""
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_two_workers_share_the_ports_add_up_their_metrics_and_both_swap(pushed, rows, expected, tmp_path):
    """`mlops serve --workers 2`: two processes behind the same ports (the kernel spreads connections);
    every answer is the model's; the request count any worker shows is the sum over both; a new
    version pushed to the base dir is served by both."""
    home = tmp_path / "home"
    serving_dir = _copy_serving_dir(pushed[0], home / "serving")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--home", str(home), "--rest-port", "0", "--grpc-port", "0",
         "--poll-seconds", "0.2", "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = next(line for line in process.stdout if READY.search(line) or process.poll() is not None)
        rest_port, grpc_port = map(int, READY.search(line).groups())
        assert "(2 workers)" in line
        workers = _workers(process.pid)
        assert len(workers) == 2
        calls = 40
        for _ in range(calls):  # a connection each: the kernel hands them to either worker
            status, body = _request(rest_port, "POST", f"/v1/models/{NAME}:predict", {"instances": rows})
            assert status == 200
            np.testing.assert_allclose(body["predictions"], expected, atol=1e-6)
        for _ in range(4):  # whichever worker answers the scrape shows both workers' counts
            text = _request(rest_port, "GET", "/monitoring/prometheus/metrics")[1]
            counted = sum(value for labels, value in metric_samples(text)[":tensorflow:serving:request_count"].items()
                          if dict(labels)["status"] == "OK")
            assert counted == calls
        newer = _version(pushed) + 1
        _shifted_copy(pushed[1], tmp_path / "shifted")
        shutil.copytree(tmp_path / "shifted", serving_dir / NAME / str(newer))
        shifted = _saved_model_predictions(tmp_path / "shifted", rows)

        def all_new() -> bool:
            answers = [_request(rest_port, "POST", f"/v1/models/{NAME}:predict", {"instances": rows})[1]
                       for _ in range(12)]
            return all(np.allclose(np.reshape(a["predictions"], -1), shifted, atol=1e-6) for a in answers)
        _wait_for(all_new, "both workers to serve the new version")
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(_predict_request(rows),
                                                                                      timeout=30)
        assert response.model_spec.version.value == newer
        channel.close()
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_port_in_use_is_one_clear_error_and_leaves_nothing_bound(pushed, tmp_path):
    """A taken gRPC port fails the start with a line naming it, and the REST port bound before it is
    free again (a second start on it succeeds)."""
    import socket

    serving_dir = _copy_serving_dir(pushed[0], tmp_path / "serving")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            rest_port = probe.getsockname()[1]
        with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{taken.getsockname()[1]} for gRPC"):
            start_server(serving_dir, rest_port=rest_port, grpc_port=taken.getsockname()[1],
                         options=ServerOptions(poll_seconds=0.2))
    server = start_server(serving_dir, rest_port=rest_port, grpc_port=0, options=ServerOptions(poll_seconds=0.2))
    try:
        assert server.rest_port == rest_port
    finally:
        server.stop()


class _SignatureDefOnly(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's own GetModelMetadata: signature_def alone; any other field is INVALID_ARGUMENT."""

    def __init__(self, inner):
        self.inner = inner

    def GetModelMetadata(self, request, context):
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Metadata field must be exactly signature_def")
        return self.inner.GetModelMetadata(request, context)


def test_grpc_metadata_carries_the_rest_fields_and_a_tf_serving_server_still_answers(local_server):
    """GetModelMetadata gives what REST's /metadata gives (the columns beside signature_def), so a
    client reached over gRPC alone reads a CSV as over REST; a server that knows signature_def alone
    (TF Serving's) is asked again for it; an unknown field is refused naming the ones there are."""
    from concurrent.futures import ThreadPoolExecutor

    from serving.api.tfserving_grpc import PredictionService
    from serving.client import Target, model_metadata

    server, _ = local_server()
    target = Target("127.0.0.1", NAME)
    over_rest = model_metadata(target, server.rest_port)
    assert model_metadata(target, server.rest_port, server.grpc_port) == over_rest and "columns" in over_rest
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def", "bogus"])
        request.model_spec.name = NAME
        with pytest.raises(grpc.RpcError) as refused:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must be among signature_def, columns, image, series" in refused.value.details()
    stock = grpc.server(ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _SignatureDefOnly(PredictionService(server.core)), stock)
    port = stock.add_insecure_port("127.0.0.1:0")
    stock.start()
    try:
        assert model_metadata(target, server.rest_port, port) == {"signature_def": over_rest["signature_def"]}
    finally:
        stock.stop(0)


_TGKILL = {"x86_64": 234, "aarch64": 131}  # the tgkill syscall's number: a signal to one thread of a process


def _signal_a_thread_other_than_main(pid: int, sig: int) -> int:
    """Sends ``sig`` to a thread of ``pid`` other than its main one that does not block it (as the
    kernel may choose for a process-directed signal); returns the thread's id."""
    import ctypes

    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        status = dict(line.split(":\t", 1) for line in task.joinpath("status").read_text().splitlines()
                      if ":\t" in line)
        if int(task.name) != pid and not int(status["SigBlk"], 16) & (1 << (sig - 1)):
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.syscall(_TGKILL[os.uname().machine], pid, int(task.name), sig) == 0, ctypes.get_errno()
            return int(task.name)
    raise AssertionError(f"no thread of {pid} but its main one takes signal {sig}")


def test_a_sigterm_any_thread_receives_stops_the_server(pushed, tmp_path):
    """The kernel hands a process's SIGTERM to any thread that does not block it; Python runs the
    handler only on its main thread, so the server must stop when another thread receives it."""
    import signal

    home = tmp_path / "home"
    _copy_serving_dir(pushed[0], home / "serving")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--home", str(home), "--rest-port", "0", "--grpc-port", "0",
         "--poll-seconds", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert any(READY.search(line) for line in process.stdout), "the server did not start"
        _signal_a_thread_other_than_main(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "stopping" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
