"""Scheduled runs on spans arriving one by one (span-N/*.csv): each run takes the newest span,
checks it against the schema and against the previous accepted span (drift), and trains on the
window of accepted spans, warm-starting from the last blessed model. The tests run in order and
share one home, as a daily schedule would."""
import csv
from pathlib import Path

import pytest

from cli.main import main
from tests.helpers import DNN_ALONE, write_transactions_csv

pytestmark = pytest.mark.pipeline

NAME = "daily"
ROWS = 300
DRIFT_THRESHOLD = 0.2  # same-distribution spans of 300 rows stay under 0.1 here


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("spans")
    return {"data": root / "data", "home": root / "home", "schemas": root / "schemas"}


def _span(place, span: int, edit=None) -> Path:
    path = write_transactions_csv(place["data"] / f"span-{span}" / "part-0.csv", rows=ROWS, seed=span)
    if edit:
        rows = list(csv.reader(path.open()))
        for row in rows[1:]:
            edit(row)
        with path.open("w", newline="") as f:
            csv.writer(f).writerows(rows)
    return path


def _run(place):
    from pipelines.runners.local import run_pipeline
    from tests.helpers import run_cli_config

    config = run_cli_config("--data", str(place["data"]), "--label", "is_fraud", "--task", "binary", "--name", NAME,
                            "--schemas-dir", str(place["schemas"]), "--window", "2", "--warm-start", "--no-edge",
                            "--hparam", "epochs=15", *DNN_ALONE, home=place["home"])
    return config, run_pipeline(config)


def _served(place):
    base = place["home"] / "serving"
    return sorted(p.name for p in (base / NAME).iterdir()), (base / "models.config").read_text()


def test_first_span_is_trained_then_its_schema_curated_with_drift_comparators(place, capsys):
    _span(place, 1)
    _, report = _run(place)
    assert report.succeeded, report.error
    assert report.input_properties["span"] == 1 and report.training_spans == [1]
    assert report.drift == {"span": 1, "previous_span": None, "features": [], "drifted": []}
    assert report.pushed_path and "warm_start" not in report.model_info
    place["first_val_loss"] = report.history["val_loss"]

    threshold = str(DRIFT_THRESHOLD)
    args = ["schema", NAME, "--home", str(place["home"]), "--schemas-dir", str(place["schemas"]),
            "--categorical-drift", threshold, "--numeric-drift", threshold]
    assert main(args) == 0
    curated = (place["schemas"] / NAME / "schema.pbtxt").read_text()
    assert curated.count("drift_comparator") == 5  # every column, the label too
    assert curated.count("infinity_norm") == 1 and curated.count("jensen_shannon_divergence") == 4
    assert main(args) == 2 and "already there" in capsys.readouterr().err  # never overwritten silently


def test_second_span_is_compared_with_the_first_and_warm_starts_on_the_window(place):
    _span(place, 2)
    config, report = _run(place)
    assert report.succeeded, report.error
    assert report.state_of("ImportSchemaGen") == "COMPLETE"  # the curated schema
    assert report.input_properties["span"] == 2 and report.training_spans == [1, 2]
    assert report.drift["previous_span"] == 1 and report.drift["drifted"] == []
    distances = {row["feature"]: row["distance"] for row in report.drift["features"]}
    assert set(distances) == {"amount", "age_days", "risk_score", "segment", "is_fraud"}
    assert all(0 <= d < DRIFT_THRESHOLD for d in distances.values()), distances
    assert report.model_info["warm_start"]["loaded"], report.model_info["warm_start"]
    assert report.model_info["warm_start"]["from"].startswith(str(place["home"]))
    # from trained weights: its first epoch already beats the cold start's first epoch
    assert report.history["val_loss"][0] < place["first_val_loss"][0], report.history["val_loss"]

    from mlflow.tracking import MlflowClient

    run = MlflowClient(config.mlflow_uri).get_run(report.mlflow_run_id)
    assert run.data.params["data.training_spans"] == "1,2" and run.data.params["data.drift_reference_span"] == "1"
    assert run.data.metrics["data.drift_amount"] == pytest.approx(distances["amount"])


def test_a_drifted_span_is_refused_with_the_report_and_nothing_is_pushed(place):
    from pipelines.summary import format_summary

    served = _served(place)
    _span(place, 3, edit=lambda row: row.__setitem__(0, f"{float(row[0]) * 10:.2f}"))  # amounts x10
    config, report = _run(place)
    assert not report.succeeded and report.state_of("DriftGate") == "FAILED"
    assert report.state_of("Transform") is None and report.state_of("Trainer") is None
    summary = format_summary(config, report)
    assert "data drift: span 3 vs span 2" in summary
    amount = next(line for line in summary.splitlines() if line.strip().startswith("amount "))
    assert "JENSEN_SHANNON_DIVERGENCE" in amount and "DRIFTED" in amount and f"{DRIFT_THRESHOLD:g}" in amount
    assert float(amount.split()[2]) > DRIFT_THRESHOLD
    assert _served(place) == served  # the serving model stays the previous one


def test_a_span_that_breaks_the_schema_is_refused(place):
    served = _served(place)
    _span(place, 4, edit=lambda row: row.__setitem__(3, "crypto") if row[3] else None)  # unknown segment
    config, report = _run(place)
    assert not report.succeeded and report.state_of("AnomaliesGate") == "FAILED"
    assert report.state_of("DriftGate") is None and report.state_of("Transform") is None
    assert "segment" in report.anomalies and "stopped before Transform" in report.anomalies
    assert _served(place) == served


def test_the_next_span_is_compared_with_the_last_accepted_one_and_trains_without_refused_spans(place):
    from pipelines.summary import format_summary

    _span(place, 5)
    config, report = _run(place)
    assert report.succeeded, report.error
    summary = format_summary(config, report)
    assert f"input: {place['data']}/span-5; training window: span-2, span-5" in summary
    assert "drift vs span-2: 5 features within their thresholds (closest: " in summary
    assert report.input_properties["span"] == 5
    assert report.drift["previous_span"] == 2  # not 3 (drifted) nor 4 (broke the schema)
    assert report.training_spans == [2, 5]  # the window of accepted spans
    assert report.model_info["warm_start"]["loaded"]
