"""Users' own tables, run with only --data and --label: a spreadsheet export (BOM, `;`, CRLF, `NA`,
an ID and a date column, a yes/no label missing on some rows), pandas' Parquet (a regression label
named `Disease-Progression`) and R's gzipped iris (dotted names, a row-number column). Each trains,
is blessed and pushed, and reaches a scikit-learn baseline on the same split (minus 0.01); the
served model answers rows keyed by the original header over REST, gRPC, `mlops predict`, the edge
runtime and batch scoring, all alike."""
import csv
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli_config
from tests.messy_tables import clinic_visits_csv, diabetes_parquet, r_iris_csv_gz

pytestmark = pytest.mark.pipeline

FIXTURES = {"clinic_visits": clinic_visits_csv, "diabetes": diabetes_parquet, "iris": r_iris_csv_gz}
SUFFIX = {"clinic_visits": ".csv", "diabetes": ".parquet", "iris": ".csv.gz"}
EDGE_TABLE = "clinic_visits"  # the table whose rows the edge runtime answers too


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """name -> (config, report, data path, label) of one run per fixture, in one home."""
    from pipelines.runners.local import run_pipeline

    home, data = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("tables")
    runs = {}
    for name, write in FIXTURES.items():
        path, label = write(data / f"{name}{SUFFIX[name]}")
        edge = () if name == EDGE_TABLE else ("--no-edge",)  # the TF Lite variants: only where they are checked
        config = run_cli_config("--data", str(path), "--label", label, *edge, home=home)
        runs[name] = (config, run_pipeline(config, track=False), path, label)  # nothing here reads MLflow
    return runs


TRUE_TEXT = {"1", "yes", "y", "true", "t"}  # a yes/no label's positive class (docs/data.md)


def _scores(task, label_values, scores, class_names):
    """The task's gate metric by scikit-learn: AUC of the positive class, accuracy, or RMSE."""
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    if task == "binary":
        return roc_auc_score([str(v).lower() in TRUE_TEXT for v in label_values], scores)
    if task == "multiclass":
        return accuracy_score([str(v) for v in label_values], np.asarray(class_names)[scores])
    return float(np.sqrt(mean_squared_error(label_values, scores)))


@pytest.mark.parametrize("name, task", [("clinic_visits", "binary"), ("diabetes", "regression"),
                                        ("iris", "multiclass")])
def test_only_data_and_label_train_bless_push_and_reach_the_baseline(tables, name, task):
    """The yardstick is the test's own: scikit-learn fitted here on the split ExampleGen wrote
    (train), both models scored here on its eval rows."""
    import tensorflow as tf

    from tests.helpers import fit_table_baseline, split_frame

    config, report, _, _ = tables[name]
    assert config.task_name == task and report.succeeded, report.error
    assert report.blessed and report.pushed_path, report.blessing_reason
    label = config.targets[0][0]
    _, train = split_frame(report, "train")
    serialized, evaluation = split_frame(report, "eval")
    assert evaluation[label].notna().all() and len(evaluation) >= 30  # rows with no label were left out
    baseline, x_eval, y_eval = fit_table_baseline(train, evaluation, label, task)
    served = tf.saved_model.load(report.pushed_path)
    predictions = served.signatures["serving_tf_example"](examples=tf.constant(serialized))["predictions"].numpy()
    class_names = report.model_info.get("class_names", {}).get(label)
    if task == "binary":
        positive = [str(c).lower() in TRUE_TEXT for c in baseline.classes_].index(True)
        mine, theirs = predictions.reshape(-1), baseline.predict_proba(x_eval)[:, positive]
    elif task == "multiclass":
        mine, theirs = predictions.argmax(-1), [class_names.index(str(c)) for c in baseline.predict(x_eval)]
    else:
        mine, theirs = predictions.reshape(-1), baseline.predict(x_eval)
    model_value = _scores(task, y_eval, mine, class_names)
    baseline_value = _scores(task, y_eval, theirs, class_names)
    if task == "regression":  # an error: at most 1% above the baseline's
        assert model_value <= baseline_value * 1.01, (model_value, baseline_value)
    else:  # a score: at most a point under the baseline's
        assert model_value >= baseline_value - 0.01, (model_value, baseline_value)


def test_the_summary_says_what_was_read_renamed_left_out_and_inferred(tables):
    from pipelines.summary import format_summary

    config, report, _, _ = tables["clinic_visits"]
    text = format_summary(config, report)
    assert "CSV, ';'-delimited" in text and "task: binary (2 distinct label values in 'Malignant?')" in text
    renamed = next(line for line in text.splitlines() if line.startswith("columns renamed to feature keys:"))
    assert "'Visit Date' -> visit_date" in renamed and "Patient ID" not in renamed  # only what the model reads
    assert "column left out: Patient ID (identifier-like" in text
    assert f"rows left out: {config.table.label_missing} with no label" in text and config.table.label_missing > 0
    assert "Visit Date: datetime iso" in text and "baseline on the same split, logistic regression: auc" in text
    iris_config = tables["iris"][0]
    assert iris_config.table.left_out == {"column": "identifier-like (a distinct value on nearly every row)"}


def _rows(path: Path, count: int = 6):
    lines = path.read_bytes().decode("utf-8-sig").splitlines()[:count + 1]
    header = lines[0].split(";")
    return [dict(zip(header, line.split(";"))) for line in lines[1:]], lines


def test_the_served_model_answers_rows_keyed_by_the_original_header(tables, tmp_path):
    """REST instances and columnar inputs, gRPC, `mlops predict` (CSV with the original header),
    the edge runtime and batch scoring give the same predictions for the same raw rows."""
    from serving.client import (
        ClientError,
        Target,
        model_inputs,
        model_metadata,
        predict_grpc,
        predict_rest,
        request_from_file,
    )
    from serving.edge_runtime import EdgeModel, read_rows, read_sidecar, rows_to_inputs
    from serving.options import ServerOptions
    from serving.server import start_server

    config, report, path, _ = tables[EDGE_TABLE]
    _, lines = _rows(path)
    sample = tmp_path / "rows.csv"
    sample.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    server = start_server(config.home.serving_dir, "127.0.0.1", 0, 0, ServerOptions(poll_seconds=0.2))
    try:
        target = Target("127.0.0.1", config.name)
        metadata = model_metadata(target, server.rest_port)
        assert model_metadata(target, server.rest_port, server.grpc_port) == metadata  # GetModelMetadata's
        inputs, names = model_inputs(metadata, target)
        assert names.key("Mean Radius") == "mean_radius" and "mean_radius" in inputs
        body, dropped = request_from_file(sample, lambda: (inputs, names))  # mlops predict's CSV reading
        assert dropped == ["Malignant?", "Patient ID"]
        by_csv = predict_rest("127.0.0.1", server.rest_port, target, body)["predictions"]
        original = {key: name for name, key in names.keys.items()}
        rows = [{original[k]: v for k, v in row.items()} for row in body["instances"]]  # JSON numbers, original names
        rows[0]["Patient ID"] = "P99999"  # a column the model left out: dropped, not refused
        rest = predict_rest("127.0.0.1", server.rest_port, target, {"instances": rows})["predictions"]
        columnar = predict_rest("127.0.0.1", server.rest_port, target,
                                {"inputs": {k: [r[k] for r in rows[1:]] for k in rows[1]}})["outputs"]
        grpc = predict_grpc("127.0.0.1", server.grpc_port, target, {"instances": rows[1:]}, inputs,
                            names)["predictions"]
        with urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}/v1/models/{config.name}/metadata") as r:
            columns = json.load(r)["metadata"]["columns"]["columns"]
        assert {"name": "Visit Date", "key": "visit_date", "kind": "datetime", "format": "iso"} in columns
        with pytest.raises(ClientError) as refused:  # it was read as a missing date, answered 200
            predict_rest("127.0.0.1", server.rest_port, target,
                         {"instances": [rows[1], dict(rows[1], **{"Visit Date": "2014-13-45"})]})
        assert "HTTP 400" in str(refused.value)
        assert "Visit Date: '2014-13-45' at row 1 is not a date as YYYY-MM-DD" in str(refused.value), refused.value
    finally:
        server.stop()
    np.testing.assert_allclose(np.reshape(rest, -1), np.reshape(by_csv, -1), rtol=1e-6)
    np.testing.assert_allclose(np.reshape(rest, -1)[1:], np.reshape(columnar, -1), rtol=1e-6)
    np.testing.assert_allclose(np.reshape(rest, -1)[1:], np.reshape(grpc, -1), rtol=1e-6)

    model = Path(report.pushed_path) / "tflite" / "float32.tflite"
    sidecar = read_sidecar(model)
    edge = EdgeModel(model).predict(rows_to_inputs(sidecar, read_rows(sample, sidecar)))["predictions"]
    np.testing.assert_allclose(np.reshape(edge, -1), np.reshape(rest, -1), atol=1e-3)

    from ops.scoring import ScoringModel, score

    written = score(ScoringModel(config.name, "", Path(report.pushed_path).name, report.pushed_path), str(sample),
                    tmp_path / "scored")
    with open(written["csv"][0], newline="", encoding="utf-8") as f:
        scored = list(csv.DictReader(f))
    assert scored[0]["Patient ID"] == "P00000"
    np.testing.assert_allclose([float(r["predictions"]) for r in scored], np.reshape(rest, -1), rtol=1e-5)


def test_regression_is_served_in_the_labels_own_units(tables):
    from serving.runtime.servable import Servable

    config, report, path, label = tables["diabetes"]
    import pandas as pd

    frame = pd.read_parquet(path).head(20)
    servable = Servable(config.name, 1, Path(report.pushed_path))
    signature = servable.signature("serving_default")
    feed = {}
    for name, key in servable.columns.keys.items():
        spec = signature.inputs.get(key)
        if spec is not None:
            column = frame[name].astype(str) if spec.kind == "string" else frame[name]
            feed[key] = np.asarray(column, dtype=spec.numpy_dtype)
    predictions = np.reshape(servable.run("serving_default", feed)["predictions"], -1)
    servable.close()
    truth = frame[label].to_numpy()
    assert 25 < predictions.mean() < 350 and np.sqrt(np.mean((predictions - truth) ** 2)) < truth.std() * 1.2
    # the Trainer scores its two candidates in the label's units too: the kept one's RMSE is TFMA's
    candidates = report.model_info["candidates"]
    assert candidates[candidates["chosen"]] == pytest.approx(report.metrics["overall"]["root_mean_squared_error"],
                                                             rel=1e-4), candidates
