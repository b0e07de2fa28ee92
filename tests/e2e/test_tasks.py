"""Multiclass and regression pipelines on scikit-learn's wine and diabetes data: metrics and
blessing thresholds follow the task."""
import csv
from pathlib import Path

import pytest

from tests.helpers import run_cli_config

pytestmark = pytest.mark.pipeline


def _write(path: Path, header, rows) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _wine(path: Path) -> Path:
    from sklearn.datasets import load_wine

    data = load_wine()
    names = ["class_a", "class_b", "class_c"]
    features = [name.replace("/", "_") for name in data.feature_names]
    return _write(path, [*features, "cultivar"],
                  [[*x, names[y]] for x, y in zip(data.data, data.target)])


def _diabetes(path: Path) -> Path:
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    return _write(path, [*data.feature_names, "progression"], [[*x, y] for x, y in zip(data.data, data.target)])


@pytest.mark.parametrize("task, label, make, gate_metric", [
    ("multiclass", "cultivar", _wine, "sparse_categorical_accuracy"),
    ("regression", "progression", _diabetes, "root_mean_squared_error"),
])
def test_task_pipeline_is_gated_on_its_metric(tmp_path, task, label, make, gate_metric):
    from pipelines.local_runner import run_pipeline

    data = make(tmp_path / f"{task}.csv")
    config = run_cli_config("--data", str(data), "--label", label, "--task", task, "--hparam", "epochs=40",
                            home=tmp_path / "home")
    report = run_pipeline(config, track=False)
    assert report.succeeded, report.error
    overall = report.metrics["overall"]
    assert gate_metric in overall
    if task == "multiclass":
        assert overall[gate_metric] > config.gate_thresholds[label] > 0.3  # beats the majority class share
        # class index = rank in the Transform's label vocabulary (by frequency in the train split)
        vocabulary = (Path(report.artifact_uris["Transform"]["TransformGraph"]) / "transform_fn" / "assets"
                      / f"label_{label}")
        assert report.model_info["class_names"][label] == vocabulary.read_text().split()
        assert set(report.model_info["class_names"][label]) == {"class_a", "class_b", "class_c"}
    else:
        assert overall[gate_metric] < config.gate_thresholds[label]  # better than predicting the mean
    assert report.blessed and report.pushed_now, report.blessing_reason
    assert (Path(report.pushed_path) / "saved_model.pb").is_file()
