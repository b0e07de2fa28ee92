"""Promotion through CI, against a real `mlflow server` (SQLite backend, proxied artifacts) on
loopback: real pipeline runs register challengers; `mlops promote` gates them on the same rows;
`mlops rollback` goes back; serving labels in models.config follow.

The models: a weak one (1 epoch at a tiny learning rate), a strong one (40 epochs) and a second
weak one, all on the session's transactions CSV, in this module's own home (the pipeline's own
gate is opened wide so that the promotion gate is what refuses). Between the strong and the second
weak one, the weak hyperparameters run once with the pipeline's default change threshold: the
Evaluator refuses them against the strong model, the last blessed one."""
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from components.ports import free_port
from core.home import Home
from serving.runtime import model_config
from tests.helpers import DNN_ALONE, metric_samples, run_cli_config

pytestmark = [pytest.mark.pipeline, pytest.mark.mlflow_server]
NAME = "promo"
WEAK = ("epochs=1", "learning_rate=0.00001")
WEAK_AGAIN = ("epochs=1", "learning_rate=0.00002")
STRONG = ("epochs=40",)
# weak again, trained anew: hyperparameters a run already used would reuse its cached model, which
# is older than the strong one and so is judged against no baseline (components/resolver.py)
WEAKER = ("epochs=1", "learning_rate=0.00003")
OPEN_GATE = ("--threshold", "0.0", "--max-drop", "1.0")  # the promotion gate is what refuses
SLOW_SHADOW_S = 0.025  # the delay put in the shadow model: its own latency is at least this
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


class MlflowServer:
    """`mlflow server` with a SQLite backend store and proxied artifacts, on a free loopback port.
    It boots (~20-40 s) while the first pipeline run trains."""

    def __init__(self, root: Path):
        self.root, port = root, free_port()
        self.uri = f"http://127.0.0.1:{port}"
        self._log = open(root / "server.log", "w")
        self.process = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
             str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=root)

    def wait_ready(self, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s  # a wait for the server, not a measurement
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.root / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.uri
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"mlflow server did not come up in {timeout_s} s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(mlflow_server) -> str:
    return mlflow_server.wait_ready()


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("promo-home")


@pytest.fixture(scope="module")
def pipeline(mlflow_server, home, transactions_csv):
    """Runs the pipeline with the given hyperparameters in this module's home, then tracks it (the
    same step `mlops run` takes) once the tracking server answers."""
    from pipelines.runners.local import run_pipeline, track_run

    def run(hparams, tracking_uri=None, gate=OPEN_GATE, with_config=False):
        args = ["--data", str(transactions_csv), "--label", "is_fraud", "--task", "binary", "--name", NAME,
                "--no-edge", *gate, *DNN_ALONE, "--tracking-uri", tracking_uri or mlflow_server.uri]
        for hparam in hparams:
            args += ["--hparam", hparam]
        config = run_cli_config(*args, home=home)
        report = run_pipeline(config, track=False)
        if tracking_uri is None:
            mlflow_server.wait_ready()
        track_run(config, report)
        return (config, report) if with_config else report
    return run


@pytest.fixture(scope="module")
def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server, registry_uri=server)


def _aliases(client) -> dict:
    return {k: int(v) for k, v in client.get_registered_model(NAME).aliases.items()}


def _labels(home: Path) -> dict:
    config = model_config.read(model_config.config_path(home / "serving"))
    return dict(model_config.find_model(config, NAME).version_labels)


def _served_versions(home: Path) -> list:
    config = model_config.read(model_config.config_path(home / "serving"))
    return list(model_config.find_model(config, NAME).model_version_policy.specific.versions)


def _serving_version(client, version: int) -> int:
    return int(client.get_model_version(NAME, str(version)).tags["serving_version"])


def _history(client) -> list:
    tags = client.get_registered_model(NAME).tags
    return [json.loads(tags[k]) for k in sorted(tags) if k.startswith("promotion.")]


def _promote(capsys, server, home, *extra) -> tuple:
    code = main(["promote", NAME, "--home", str(home), "--tracking-uri", server, "--by", "ci-test", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_pushed_model_is_tracked_and_registered_as_challenger(pipeline, home, request):
    report = pipeline(WEAK)  # the server boots meanwhile
    client = request.getfixturevalue("client")
    assert report.succeeded and report.blessed, (report.error, report.blessing_reason)
    assert report.tracking_error is None and report.model_version == 1
    assert _aliases(client) == {"challenger": 1}
    version = client.get_model_version(NAME, "1")
    assert version.tags["serving_path"] == report.pushed_path and version.run_id == report.mlflow_run_id
    assert version.tags["pipeline_run_id"] == report.run_id and Path(version.tags["eval_examples"]).is_dir()
    run = client.get_run(report.mlflow_run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # through the server's artifact proxy
    assert run.data.metrics["data.rows_train"] + run.data.metrics["data.rows_eval"] == 240
    listed = {a.path for a in client.list_artifacts(report.mlflow_run_id)} | \
        {a.path for a in client.list_artifacts(report.mlflow_run_id, "plots")}
    assert {"model", "data", "plots/learning_curve.png", "plots/evaluation.png", "lineage.json"} <= listed


def _examples(rows, signature) -> list:
    """Serialized tf.Examples of raw CSV rows, each value typed as the CSV reader infers it (whole
    numbers int64, other numbers float, text bytes), for the raw signature's columns."""
    import tensorflow as tf

    def feature(text: str, spec) -> tf.train.Feature:
        if spec.dtype == tf.string:
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))
        if text.lstrip("-").isdigit():
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(text)]))
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(text)]))
    inputs = signature.structured_input_signature[1]
    return [tf.train.Example(features=tf.train.Features(feature={
        name: feature(row[name], spec) for name, spec in inputs.items()})).SerializeToString() for row in rows]


def test_registered_model_loads_by_alias(server, client, transactions_csv, monkeypatch):
    """`models:/NAME@challenger` through the server: the pyfunc model runs its own code
    (serving/pyfunc_model.py, which imports nothing of this project) and answers what the pushed
    SavedModel answers on the same rows through its other signature (serialized tf.Examples)."""
    import csv

    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    import tensorflow as tf

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@challenger")
    with open(transactions_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if all(r.values())][:40]  # rows with every value present
    assert len(rows) == 40
    saved = tf.saved_model.load(client.get_model_version(NAME, "1").tags["serving_path"])
    raw = saved.signatures["serving_default"]
    frame = pd.DataFrame({name: [row[name] for row in rows] if spec.dtype == tf.string else
                          np.array([float(row[name]) for row in rows], dtype=spec.dtype.as_numpy_dtype)
                          for name, spec in raw.structured_input_signature[1].items()})
    predictions = np.asarray(model.predict(frame)).reshape(-1)
    expected = saved.signatures["serving_tf_example"](examples=tf.constant(_examples(rows, raw)))["predictions"]
    np.testing.assert_allclose(predictions, expected.numpy().reshape(-1), rtol=1e-5, atol=1e-6)
    assert np.ptp(predictions) > 0  # the rows are told apart: a constant answer would not pass above


def test_first_promotion_needs_only_the_absolute_rules(capsys, server, home, client):
    config_file = model_config.config_path(home / "serving")
    before = config_file.read_bytes()
    code, out = _promote(capsys, server, home, "--min-metric", "0.999")
    assert code == 1 and "verdict: refused" in out and ">= 0.999" in out
    assert _aliases(client) == {"challenger": 1} and config_file.read_bytes() == before and _history(client) == []

    code, out = _promote(capsys, server, home)
    assert code == 0 and "verdict: promoted" in out, out
    assert _aliases(client) == {"champion": 1}
    assert _labels(home) == {"stable": _serving_version(client, 1)}
    (event,) = _history(client)
    assert event["kind"] == "promoted" and event["from"] is None and event["to"]["version"] == 1
    assert event["by"] == "ci-test" and event["to"]["metrics"]["is_fraud"] > 0
    mirrored = [json.loads(x) for x in (home / "promotions" / f"{NAME}.jsonl").read_text().splitlines()]
    assert mirrored == [event]


def test_a_better_challenger_is_promoted_and_served_as_stable(pipeline, capsys, server, home, client):
    report = pipeline(STRONG)
    assert report.model_version == 2, (report.error, report.tracking_error)
    code, out = _promote(capsys, server, home)
    assert code == 0 and "challenger v2 vs champion v1" in out and "verdict: promoted" in out, out
    assert "segment=online" in out  # per-slice rows in the table
    assert _aliases(client) == {"champion": 2}
    old, new = _serving_version(client, 1), _serving_version(client, 2)
    assert _labels(home) == {"stable": new}
    assert {old, new} <= set(_served_versions(home))  # the previous champion stays loaded for a rollback
    event = _history(client)[-1]
    assert event["to"]["metrics"]["is_fraud"] > event["from"]["metrics"]["is_fraud"]


def test_a_weaker_run_is_not_blessed_against_the_last_blessed_model(pipeline, home, client):
    """The pipeline's own change threshold (default `--max-drop`, absolute bound opened): weak
    hyperparameters after the strong model was blessed lose far more than 0.01 AUC against it,
    so the Evaluator refuses them, nothing is pushed or registered, and the summary says why."""
    from core.config import DEFAULT_MAX_METRIC_DROP
    from pipelines.summary import format_summary

    served_before, aliases_before = _served_versions(home), _aliases(client)
    config, report = pipeline(WEAKER, gate=("--threshold", "0.0"), with_config=True)
    assert config.max_metric_drop == DEFAULT_MAX_METRIC_DROP == 0.01
    assert report.succeeded and report.blessed is False, (report.error, report.blessing_reason)
    assert report.metrics["overall"]["auc_change"] < -DEFAULT_MAX_METRIC_DROP, report.metrics["overall"]
    overall = re.search(r"(?:^|; )overall \(\d+ rows\): auc change vs baseline = (-\d\.\d{4}), needs >= -0\.01(?:;|$)",
                        report.blessing_reason)
    assert overall, report.blessing_reason
    assert float(overall.group(1)) == pytest.approx(report.metrics["overall"]["auc_change"], abs=1e-4)
    assert "auc = " not in report.blessing_reason  # the absolute bound (>= 0) passed: the change refused it
    assert not report.pushed_path and report.model_version is None
    assert _served_versions(home) == served_before and _aliases(client) == aliases_before
    text = format_summary(config, report)
    assert f"blessed: no ({report.blessing_reason})" in text
    assert "serving version: nothing pushed (not blessed)" in text


def test_a_worse_challenger_is_refused_and_nothing_changes(pipeline, capsys, server, home, client):
    report = pipeline(WEAK_AGAIN)
    assert report.model_version == 3, (report.error, report.tracking_error)
    assert _serving_version(client, 3) in _served_versions(home)  # a new push is served (by its number)
    config_file = model_config.config_path(home / "serving")
    before, history_before = config_file.read_bytes(), _history(client)
    summary = home / "summary.md"
    code = main(["promote", NAME, "--home", str(home), "--tracking-uri", server, "--summary-md", str(summary)])
    out = capsys.readouterr().out
    assert code == 1, out
    row = re.search(r"^  is_fraud +overall +auc +(\d\.\d{4}) +(\d\.\d{4}) +\d+ +improves by >= 0 +NO *$", out, re.M)
    assert row and float(row.group(2)) < float(row.group(1)), out  # the challenger's AUC under the champion's
    assert re.search(r"^verdict: refused \(.*is_fraud overall auc %s fails 'improves by >= 0'" % row.group(2),
                     out, re.M), out
    assert _aliases(client) == {"champion": 2, "challenger": 3}
    assert config_file.read_bytes() == before and _history(client) == history_before
    assert "| is_fraud | overall | auc |" in summary.read_text() and "**verdict: refused" in summary.read_text()


def test_rollback_restores_the_previous_champion_and_its_label(capsys, server, home, client):
    assert main(["rollback", NAME, "--home", str(home), "--tracking-uri", server, "--by", "oncall"]) == 0
    assert "champion v2 -> v1" in capsys.readouterr().out
    assert _aliases(client)["champion"] == 1 and _labels(home) == {"stable": _serving_version(client, 1)}
    event = _history(client)[-1]
    assert (event["kind"], event["from"]["version"], event["to"]["version"], event["by"]) == \
        ("rollback", 2, 1, "oncall")
    assert main(["rollback", NAME, "--home", str(home), "--tracking-uri", server, "--to", "2"]) == 0
    assert _aliases(client)["champion"] == 2 and _labels(home) == {"stable": _serving_version(client, 2)}
    assert main(["history", NAME, "--home", str(home), "--tracking-uri", server]) == 0
    assert capsys.readouterr().out.count("rollback") == 2


def test_a_canary_is_served_beside_stable_and_the_champion_stays(capsys, server, home, client):
    code, out = _promote(capsys, server, home, "--canary", "--min-improvement", "-1", "--max-slice-drop", "1")
    assert code == 0 and "verdict: canary" in out, out
    assert _aliases(client) == {"champion": 2, "challenger": 3, "canary": 3}
    assert _labels(home) == {"stable": _serving_version(client, 2), "canary": _serving_version(client, 3)}
    assert _history(client)[-1]["kind"] == "canary"


def _v2_row(risk_score: float = 0.3) -> bytes:
    return json.dumps({"inputs": [
        {"name": "amount", "datatype": "FP32", "shape": [1], "data": [42.0]},
        {"name": "age_days", "datatype": "FP64", "shape": [1], "data": [300.0]},
        {"name": "risk_score", "datatype": "FP32", "shape": [1], "data": [risk_score]},
        {"name": "segment", "datatype": "BYTES", "shape": [1], "data": ["online"]}]}).encode()


V2_ROW = _v2_row()
SHADOWED = 150  # requests mirrored to a held shadow: fewer than its queue holds (serving/runtime/shadow.py)


def _v2_version(connection, key=None, body=V2_ROW) -> str:
    """One V2 inference naming no version; the version that answered."""
    headers = {"Content-Type": "application/json", **({"X-Client-Key": key} if key else {})}
    connection.request("POST", f"/v2/models/{NAME}/infer", body=body, headers=headers)
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 200, body
    return body["model_version"]


def test_a_canary_takes_its_share_sticky_per_client_and_a_shadow_is_judged(capsys, server, home, client):
    """`--canary 20`: 2,000 requests naming no version split 20% +/- 3 points; a client key always
    lands on one side; `--canary 0` ends it. `--shadow`: every request also runs on the challenger,
    the caller never waits for a slow shadow, `mlops shadow` counts what was sent, and a
    shadow that fails never fails a request. The server is ours, in this process, on loopback."""
    import http.client

    from serving.options import ServerOptions
    from serving.runtime.traffic import read, traffic_path
    from serving.server import start_server

    code, out = _promote(capsys, server, home, "--canary", "20", "--min-improvement", "-1", "--max-slice-drop", "1")
    assert code == 0 and "verdict: canary" in out and "20% of the requests" in out, out
    serving = home / "serving"
    assert read(traffic_path(serving))[NAME].canary_percent == 20
    stable, canary = str(_serving_version(client, 2)), str(_serving_version(client, 3))
    running = start_server(serving, "127.0.0.1", 0, 0, ServerOptions(poll_seconds=0.2))
    connection = http.client.HTTPConnection("127.0.0.1", running.rest_port, timeout=30)
    try:
        answered = [_v2_version(connection) for _ in range(2000)]
        assert set(answered) == {stable, canary}
        share = answered.count(canary) / len(answered)
        assert 0.17 <= share <= 0.23, share
        routes = {dict(labels)["route"]: value for labels, value
                  in metric_samples(running.core.render_metrics())["mlops_serving_route_requests_total"].items()}
        assert routes["canary"] == answered.count(canary)
        sides = {key: {_v2_version(connection, key) for _ in range(5)} for key in (f"client-{i}" for i in range(60))}
        assert all(len(side) == 1 for side in sides.values())  # sticky
        assert 0 < sum(side == {canary} for side in sides.values()) < 60
        capsys.readouterr()
        assert main(["status", "--home", str(home), "--tracking-uri", server, "--rest-port", "1"]) == 0
        assert "traffic: canary 20% of unaddressed requests" in capsys.readouterr().out

        code, out = _promote(capsys, server, home, "--canary", "0")
        assert code == 0 and "canary ended" in out
        assert read(traffic_path(serving))[NAME].canary_percent == 0 and "canary" not in _labels(home)
        time.sleep(1.0)  # the server re-reads traffic.json and models.config
        assert {_v2_version(connection) for _ in range(200)} == {stable}  # not the newest push: it is unpromoted
        connection.request("GET", f"/v1/models/{NAME}/metadata")  # what `mlops predict` reads its columns from
        assert json.loads(connection.getresponse().read())["model_spec"]["version"] == stable

        code, out = _promote(capsys, server, home, "--shadow")
        assert code == 0 and "shadow on" in out and _labels(home)["shadow"] == int(canary)
        assert read(traffic_path(serving))[NAME].shadow
        deadline = time.monotonic() + 10
        while "shadow" not in running.core.manager.routing(NAME)[1] and time.monotonic() < deadline:
            time.sleep(0.1)  # the server re-reads models.config on its own
        servables, labels = running.core.manager.routing(NAME)
        shadow_model = servables[labels["shadow"]].servable
        shadow, probes = running.core._shadow, 0
        while (shadow is None or shadow.queued == 0) and probes < 100:  # until the server re-read traffic.json
            time.sleep(0.1)
            assert _v2_version(connection) == stable
            probes, shadow = probes + 1, running.core._shadow
        assert shadow is not None and shadow.queued > 0, probes
        shadow.drain(timeout_s=60)
        real_run, release = shadow_model.run, threading.Event()

        def held(*args, **kwargs):  # the shadow cannot finish a request until the test releases it
            release.wait(120)
            time.sleep(SLOW_SHADOW_S)
            return real_run(*args, **kwargs)
        shadow_model.run = held
        queued, done = shadow.queued, shadow.done
        # no clock: while the shadow is held, every request is answered (a caller that waited for its
        # shadow would time out on the connection's 30 s); 150 copies fit the shadow's queue
        rows = [_v2_row(risk) for risk in np.linspace(-3, 3, SHADOWED)]
        assert {_v2_version(connection, body=row) for row in rows} == {stable}
        assert shadow.queued - queued == SHADOWED and shadow.done == done, (shadow.queued, shadow.done)
        release.set()
        shadow.drain(timeout_s=60)
        sent = shadow.queued
        capsys.readouterr()
        assert main(["shadow", NAME, "--home", str(home), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["requests"] == report["compared"] == sent and report["shadow_errors"] == 0
        assert report["versions"] == [[int(stable), int(canary)]]
        logged = [json.loads(line) for line in (home / "shadow-logs" / f"{NAME}.jsonl").read_text().splitlines()]
        assert len(logged) == sent
        pairs = [(np.asarray(r["primary"]).reshape(-1)[-1] >= 0.5, np.asarray(r["shadow"]).reshape(-1)[-1] >= 0.5)
                 for r in logged]
        assert report["agreement"] == sum(a == b for a, b in pairs) / sent
        confusion = {}
        for a, b in pairs:
            confusion.setdefault(str(int(a)), {}).setdefault(str(int(b)), 0)
            confusion[str(int(a))][str(int(b))] += 1
        assert report["confusion"] == confusion
        # the shadow's latency is its own: at least the delay the test put in it (a sleep never ends early)
        assert report["shadow_ms_p50"] >= SLOW_SHADOW_S * 1000

        def broken(*_, **__):
            raise RuntimeError("the shadow model fails")
        shadow_model.run = broken
        assert {_v2_version(connection) for _ in range(40)} == {stable}  # every request still answered
        running.core._shadow.drain()
        assert main(["shadow", NAME, "--home", str(home), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["shadow_errors"] == 40 and report["requests"] == sent + 40
        assert main(["shadow", NAME, "--home", str(home)]) == 0
        assert f"{sent + 40} requests mirrored" in capsys.readouterr().out

        code, out = _promote(capsys, server, home, "--shadow", "off")
        assert code == 0 and "shadow" not in _labels(home) and not read(traffic_path(serving))[NAME].shadow
        kinds = [e["kind"] for e in _history(client)[-4:]]
        assert kinds == ["canary", "canary_end", "shadow", "shadow_end"]
    finally:
        connection.close()
        running.stop()


def test_concurrent_promotions_one_wins_the_other_fails_clearly(server, home, client):
    """Two CI jobs promote at once (rules opened so the challenger passes): one promotes, the other
    stops on the lock; the history gains exactly one event, in both stores."""
    history_before = _history(client)
    command = [sys.executable, "-m", "cli.main", "promote", NAME, "--home", str(home), "--tracking-uri", server,
               "--min-improvement", "-1", "--max-slice-drop", "1"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]  # read while waiting: a full pipe would block
    results = [(p.returncode, output) for p, output in zip(processes, outputs)]
    assert sorted(code for code, _ in results) == [0, 1], results
    loser = next(out for code, out in results if code == 1)
    assert "is in progress" in loser and "nothing changed" in loser
    history = _history(client)
    assert len(history) == len(history_before) + 1 and history[-1]["to"]["version"] == 3
    mirrored = [json.loads(x) for x in (home / "promotions" / f"{NAME}.jsonl").read_text().splitlines()]
    assert mirrored == history
    assert _aliases(client) == {"champion": 3}  # the challenger (a canary before) became the champion
    assert _labels(home) == {"stable": _serving_version(client, 3)}


def test_tracking_server_down_is_a_clear_error_and_the_pipeline_artifacts_stay(pipeline, capsys, home):
    dead = f"http://127.0.0.1:{free_port()}"
    report = pipeline(STRONG, tracking_uri=dead)  # a cached rerun: the pipeline itself succeeds
    assert report.succeeded and report.pushed_path and Path(report.pushed_path).is_dir()
    assert report.mlflow_run_id is None and "unreachable" in report.tracking_error and dead in report.tracking_error
    config_file = model_config.config_path(home / "serving")
    before = config_file.read_bytes()
    code = main(["promote", NAME, "--home", str(home), "--tracking-uri", dead])
    assert code == 1 and f"MLflow tracking server {dead} is unreachable" in capsys.readouterr().err
    assert config_file.read_bytes() == before
    assert Home(home).metadata_path.exists()
