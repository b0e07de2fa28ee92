"""End to end: real TFX components on Beam, ML Metadata and MLflow in SQLite, on a tiny CSV with a
string column and missing values. One cold run and one rerun (``transactions_runs``) are shared by
the whole session."""
import csv
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from tests.helpers import DNN_ALONE, SEGMENTS, TRANSACTIONS, run_cli_config, write_transactions_csv

pytestmark = pytest.mark.pipeline
NAME = TRANSACTIONS


@pytest.fixture(scope="module")
def home(transactions_runs) -> Path:
    return transactions_runs[0]


@pytest.fixture(scope="module")
def runs(transactions_runs):
    return transactions_runs[1:]


def _versions(home: Path, name: str = NAME) -> list:
    base = home / "serving" / name
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def test_cold_run_is_blessed_and_pushed_in_tf_serving_layout(runs, home):
    config, first, _ = runs
    assert first.succeeded, first.error
    assert [c.state for c in first.components if c.node != "baseline_resolver"] == ["COMPLETE"] * 10
    assert first.blessed, first.blessing_reason
    assert first.metrics["overall"]["auc"] >= config.gate_thresholds["is_fraud"] == 0.7
    eval_rows = first.split_rows["eval"]  # the whole eval split (a sample only beyond MAX_EVAL_ROWS)
    assert first.eval_rows == {"rows": eval_rows, "used": eval_rows}
    assert first.metrics["overall"]["example_count"] == eval_rows
    assert "binary_accuracy" in first.metrics["overall"] and "loss" not in first.metrics["overall"]  # TFMA's, once
    versions = _versions(home)
    assert len(versions) == 1 and versions[0].isdigit()
    version_dir = home / "serving" / NAME / versions[0]
    assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
    assert first.pushed_now and Path(first.pushed_path) == version_dir


def test_rerun_is_served_from_cache_and_pushes_nothing(runs, home):
    _, first, second = runs
    assert second.succeeded, second.error
    assert second.fully_cached, [(c.node, c.state) for c in second.components]
    assert not second.pushed_now and second.pushed_path == first.pushed_path
    assert len(_versions(home)) == 1
    assert second.run_id != first.run_id


def test_the_cli_run_shows_a_line_per_component_and_keeps_the_libraries_output_in_its_log(
        runs, home, transactions_csv, capsys):
    """`mlops run` as a user starts it (a child process, output to a pipe): the unchanged rerun, so
    every component is CACHED. Stdout holds progress lines and the summary only; stderr is empty
    (TensorFlow's import chatter included); the log file the summary names holds the chatter."""
    _, first, _ = runs
    argv = ["run", "--data", str(transactions_csv), "--label", "is_fraud", "--task", "binary", "--name", NAME,
            "--hparam", "epochs=40", *DNN_ALONE, "--home", str(home), "--no-tracking"]
    done = subprocess.run([sys.executable, "-m", "cli.main", *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    out = done.stdout.splitlines()
    shown = [c.node for c in first.components if not c.node.endswith("_resolver")]
    progress = [line for line in out if line.startswith("[")]
    assert [line.split()[1] for line in progress] == shown
    assert all(line.split()[2] == "CACHED" for line in progress)
    assert progress[0].startswith(f"[1/{len(shown)}]")
    assert any("Trainer" in line and "epochs, best val_loss" in line for line in progress)
    log_line = next(line for line in out if line.startswith("log: "))
    chatter_lines = [line for line in out if line != log_line
                     and any(marker in line for marker in ("INFO:", "WARNING:", "absl", "tensorflow/"))]
    assert chatter_lines == []
    log = Path(log_line.split()[1])
    assert log.parent == home / "logs" / NAME
    chatter = log.read_text()
    assert "Component Trainer is running." in chatter and "INFO:absl" in chatter
    # `mlops status` shows this untracked rerun (from the timings file beside its log), not the tracked run before
    from cli.main import main

    assert main(["status", "--home", str(home), "--rest-port", "1"]) == 0
    shown = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{NAME}: "))
    assert re.fullmatch(rf"{NAME}: last run \S+ \S+ UTC \(not tracked\): succeeded, blessed true, "
                        rf"pushed \d+ \(earlier\)", shown), shown


def _raw_rows(path: Path, count: int) -> list:
    with path.open() as f:
        return list(csv.DictReader(f))[:count]


def _serialized(rows, raw_spec) -> tf.Tensor:
    examples = []
    for row in rows:
        example = tf.train.Example()
        for name, feature in raw_spec.items():
            if row[name] == "":
                continue  # missing, as CsvExampleGen writes it
            if feature.dtype == tf.string:
                example.features.feature[name].bytes_list.value.append(row[name].encode())
            elif feature.dtype.is_integer:
                example.features.feature[name].int64_list.value.append(int(row[name]))
            else:
                example.features.feature[name].float_list.value.append(float(row[name]))
        examples.append(example.SerializeToString())
    return tf.constant(examples)


def _raw_inputs(rows, raw_spec, label) -> dict:
    inputs = {}
    for name, feature in raw_spec.items():
        if name == label:
            continue
        if feature.dtype == tf.string:
            inputs[name] = tf.constant([row[name] for row in rows])
        else:  # integer columns are float64 at the raw signature, NaN = missing
            dtype = tf.float64 if feature.dtype.is_integer else feature.dtype
            inputs[name] = tf.constant([float(row[name]) if row[name] else math.nan for row in rows], dtype)
    return inputs


def test_raw_signature_matches_keras_model_on_transformed_rows(runs, transactions_csv):
    import tf_keras

    config, first, _ = runs
    rows = _raw_rows(transactions_csv, 24)
    assert any(r["age_days"] == "" for r in rows) and any(r["segment"] == "" for r in rows)
    tft_output = tft.TFTransformOutput(first.artifact_uris["Transform"]["TransformGraph"])
    raw_spec = tft_output.raw_feature_spec()

    served = tf.saved_model.load(first.pushed_path)
    assert {"serving_default", "serving_tf_example", "transform_features"} <= set(served.signatures)
    raw_predictions = served.signatures["serving_default"](**_raw_inputs(rows, raw_spec, "is_fraud"))["predictions"]
    example_predictions = served.signatures["serving_tf_example"](
        examples=_serialized(rows, raw_spec))["predictions"]

    transformed = tft_output.transform_raw_features(tf.io.parse_example(_serialized(rows, raw_spec), raw_spec))
    keras_model = tf_keras.models.load_model(first.pushed_path)
    expected = keras_model({name: transformed[name] for name in keras_model.input_names})

    np.testing.assert_allclose(raw_predictions.numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(example_predictions.numpy(), expected.numpy(), atol=1e-5)


def test_mlflow_run_holds_params_epoch_metrics_and_tags(runs, home):
    from mlflow.tracking import MlflowClient

    config, first, second = runs
    client = MlflowClient(tracking_uri=config.home.mlflow_uri)
    experiment = client.get_experiment_by_name(NAME)
    assert Path(experiment.artifact_location.removeprefix("file://")).is_relative_to(home)
    run = client.get_run(first.mlflow_run_id)
    assert run.data.params["task"] == "binary" and run.data.params["hparam.epochs"] == "40"
    assert run.data.params["meta.width"] == "64"  # the family's meta-parameter
    epochs = client.get_metric_history(first.mlflow_run_id, "epoch_val_loss")
    assert [m.step for m in epochs] == list(range(1, len(epochs) + 1)) and len(epochs) >= 2
    assert run.data.metrics["eval_auc"] == pytest.approx(first.metrics["overall"]["auc"])
    assert run.data.tags["blessed"] == "true" and run.data.tags["pushed_version"] == first.pushed_path
    assert run.data.tags["pipeline_run_id"] == first.run_id
    assert run.data.tags["eval_rows"] == run.data.tags["eval_rows_used"] == str(first.split_rows["eval"])
    rerun = client.get_run(second.mlflow_run_id)
    assert rerun.data.tags["fully_cached"] == "true" and rerun.data.tags["pushed_this_run"] == "false"


def test_mlflow_run_holds_data_facts_slices_files_model_and_lineage(runs, home):
    """Tracking in depth (SQLite store): what a person reviewing the run needs, in one place."""
    import json

    from mlflow.tracking import MlflowClient

    config, first, second = runs
    client = MlflowClient(tracking_uri=config.home.mlflow_uri)
    run = client.get_run(first.mlflow_run_id)
    params, metrics = run.data.params, run.data.metrics
    assert params["meta.width"] == "64" and params["hparam.learning_rate"] and "meta.learning_rate" not in params
    assert params["data.span"] == "0" and len(params["data.schema_sha256"]) == 64
    assert metrics["data.rows_train"] + metrics["data.rows_eval"] == 240 and metrics["data.anomalies_eval"] == 0
    from sklearn.metrics import roc_auc_score

    from tests.helpers import split_frame

    serialized, evaluation = split_frame(first, "eval")
    served = tf.saved_model.load(first.pushed_path)
    scores = served.signatures["serving_tf_example"](examples=tf.constant(serialized))["predictions"].numpy()
    for segment in SEGMENTS:  # TFMA per slice, against the AUC of the served scores computed here
        rows = (evaluation["segment"] == segment).to_numpy()
        assert rows.sum() >= 5 and len(set(evaluation["is_fraud"][rows])) == 2, segment
        expected = roc_auc_score(evaluation["is_fraud"][rows], scores.reshape(-1)[rows])
        assert metrics[f"eval/segment:{segment}/auc"] == pytest.approx(expected, abs=0.01), segment
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    for name in ("data/schema.pbtxt", "data/statistics.html", "data/anomalies.json", "plots/learning_curve.png",
                 "plots/evaluation.png", "evaluation/metrics_by_slice.json", "lineage.json", "model/MLmodel",
                 "model/artifacts/saved_model/saved_model.pb", "tflite/edge.json", "tflite/float32.tflite"):
        assert (artifacts / name).is_file(), name
    assert (artifacts / "plots/learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    html = (artifacts / "data/statistics.html").read_text()
    assert "facets" in html and len(html) > 2000  # TFDV's Facets view with the statistics embedded
    lineage = json.loads((artifacts / "lineage.json").read_text())
    assert lineage["executions"]["Trainer"]["id"] == next(c.execution_id for c in first.components
                                                           if c.node == "Trainer")
    # registered once as the challenger; the cached rerun points at the run that holds the model
    assert first.model_version == 1 and second.model_version == 1
    assert {k: int(v) for k, v in client.get_registered_model(NAME).aliases.items()} == {"challenger": 1}
    version = client.get_model_version(NAME, "1")
    assert version.run_id == first.mlflow_run_id and version.tags["serving_path"] == first.pushed_path
    assert json.loads(version.tags["targets"]) == [["is_fraud", "binary"]]
    rerun = client.get_run(second.mlflow_run_id)
    assert rerun.data.tags["model_logged_in"] == first.mlflow_run_id
    assert rerun.data.tags["files_logged_in"] == first.mlflow_run_id  # a fully cached rerun copies nothing
    assert rerun.data.metrics["data.rows_train"] == metrics["data.rows_train"]
    assert client.list_artifacts(second.mlflow_run_id) == []


def test_the_blessed_model_has_a_card_with_the_runs_own_numbers(runs, home, capsys):
    """The card (assets.extra/ of the pushed model, and the MLflow run's model_card/) holds every
    section with the numbers MLflow recorded; `mlops card` prints it."""
    import json

    from mlflow.tracking import MlflowClient

    from cli.main import main
    from release.model_card import SECTIONS

    config, first, second = runs
    assert first.card_path and second.card_path is None  # the cached rerun pushed nothing new
    card_html = Path(first.card_path)
    assert card_html == Path(first.pushed_path) / "assets.extra" / "model_card.html"
    card = json.loads((card_html.parent / "model_card.json").read_text())
    page = card_html.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    run = MlflowClient(tracking_uri=config.home.mlflow_uri).get_run(first.mlflow_run_id)
    metrics = run.data.metrics
    overall = next(s for s in card["evaluation"]["slices"] if s["slice"] == "overall")
    assert overall["metric"] == "auc" and overall["value"] == pytest.approx(metrics["eval_auc"])
    assert f"{metrics['eval_auc']:.4f}" in page
    segments = {s["slice"]: s["value"] for s in card["evaluation"]["slices"]}
    for segment in SEGMENTS:
        assert segments[f"segment={segment}"] == pytest.approx(metrics[f"eval/segment:{segment}/auc"])
    assert card["data"]["rows"]["train"] == metrics["data.rows_train"]
    assert card["model"]["parameters"] == first.model_info["parameters"] and card["model"]["family"] == "dnn"
    assert card["model"]["history"]["val_loss"] == first.history["val_loss"]
    assert card["lineage"]["mlflow_run"] == first.mlflow_run_id and card["lineage"]["registry_version"] == 1
    assert card["lineage"]["mlmd_executions"]["Trainer"] == next(c.execution_id for c in first.components
                                                                 if c.node == "Trainer")
    shipped = [v for v in card["edge"] if v["shipped"]]
    assert shipped and all(v["p50_us"] > 0 and v["size_bytes"] > 0 for v in shipped)
    assert run.data.tags["model_card"] == "model_card/model_card.html"
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "model_card" / "model_card.html").read_text() == page
    assert any("small data" in caveat for caveat in card["caveats"])  # 240 rows

    capsys.readouterr()
    assert main(["card", NAME, "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert f"card: {card_html}" in out and "blessed" in out and "registry version 1" in out
    assert main(["card", NAME, "--home", str(home), "--version", "1"]) == 0
    assert main(["card", "nope", "--home", str(home)]) == 2


def _browser():
    import shutil as which

    return next((which.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if which.which(name)), None)


def test_the_card_renders_in_a_real_headless_browser(runs, tmp_path):
    """Chromium from the OS packages (`apt-get install chromium`): the page's DOM after rendering holds
    every section's heading and both plots, and the screenshot is a page, not a blank."""
    from PIL import Image

    from release.model_card import SECTIONS, TITLES

    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium): the card's HTML is still checked "
                    "by test_the_blessed_model_has_a_card_with_the_runs_own_numbers")
    card = Path(runs[1].card_path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", card.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-1000:]
    for section in SECTIONS:
        assert f'<section id="{section}"><h2>{TITLES[section]}</h2>' in dom.stdout
    assert 'id="training-curve"' in dom.stdout and 'id="slice-metrics"' in dom.stdout
    shot = tmp_path / "model_card.png"
    done = subprocess.run([browser, *flags, "--window-size=1000,2600", f"--screenshot={shot}", card.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-1000:]
    image = Image.open(shot).convert("L")
    assert image.size == (1000, 2600)
    dark = sum(1 for value in image.getdata() if value < 128)
    assert dark > 5000, "the screenshot is blank"


def test_bad_inputs_change_nothing_stored(runs, home, tmp_path):
    from cli.main import main

    before = _versions(home)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["run", "--home", str(home), "--data", str(empty), "--label", "is_fraud", "--task", "binary",
                 "--name", NAME]) == 2
    assert _versions(home) == before


def test_anomalies_stop_the_run_before_transform(runs, home, tmp_path):
    """A curated schema (the one SchemaGen inferred) and new data with an unknown segment value."""
    from pipelines.runners.local import run_pipeline
    from pipelines.summary import format_summary

    _, first, _ = runs
    schemas = tmp_path / "schemas"
    (schemas / "drifted").mkdir(parents=True)
    shutil.copy(Path(first.artifact_uris["SchemaGen"]["Schema"]) / "schema.pbtxt",
                schemas / "drifted" / "schema.pbtxt")
    data = write_transactions_csv(tmp_path / "drifted.csv", seed=1, segments=SEGMENTS + ("crypto",))
    config = run_cli_config("--data", str(data), "--label", "is_fraud", "--task", "binary", "--name", "drifted",
                            "--schemas-dir", str(schemas), home=home)
    # the curated schema, imported as a content-addressed copy (ImportSchemaGen caches by path)
    assert config.schema_path.parent.parent == home / "schemas" / "drifted"
    assert config.schema_path.read_text() == (schemas / "drifted" / "schema.pbtxt").read_text()
    report = run_pipeline(config, track=False)
    assert not report.succeeded
    assert report.state_of("ImportSchemaGen") == "COMPLETE"
    assert report.state_of("AnomaliesGate") == "FAILED"
    assert report.state_of("Transform") is None and report.state_of("Trainer") is None
    assert "segment" in report.anomalies and "crypto" in report.anomalies
    assert report.artifact_uris["ExampleValidator"]["ExampleAnomalies"] in report.anomalies
    summary = format_summary(config, report)
    assert "the run stopped before Transform" in summary
    assert _versions(home, "drifted") == []
