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
    _check_served_task_api(config, report, data, label, task)


def _check_served_task_api(config, report, data: Path, label: str, task: str) -> None:
    """The pushed model answers TF Serving's Classify (multiclass) or Regress (regression) API, in
    agreement with its raw-feature predictions."""
    import numpy as np
    import tensorflow as tf

    from serving.core import ModelSpec, ServingCore

    with data.open() as f:
        rows = list(csv.DictReader(f))[:6]
    features = [name for name in rows[0] if name != label]
    examples = [tf.train.Example(features=tf.train.Features(feature={
        name: tf.train.Feature(float_list=tf.train.FloatList(value=[float(row[name])])) for name in features}))
        .SerializeToString() for row in rows]
    core = ServingCore(config.home.serving_dir)
    core.manager.poll()
    try:
        spec = ModelSpec(config.name)
        _, _, outputs = core.predict(spec, lambda signature: {
            name: np.array([float(row[name]) for row in rows], signature.inputs[name].dtype.as_numpy_dtype)
            for name in features})
        if task == "multiclass":
            _, key, results = core.classify(ModelSpec(config.name, signature_name="classification"), examples)
            assert key == "classification"
            assert [[c for c, _ in row] for row in results] == [report.model_info["class_names"][label]] * len(rows)
            np.testing.assert_allclose([[s for _, s in row] for row in results], outputs["predictions"], atol=1e-5)
        else:
            _, key, values = core.regress(ModelSpec(config.name, signature_name="regression"), examples)
            np.testing.assert_allclose(values, outputs["predictions"][:, 0], rtol=1e-5)
    finally:
        core.stop()


def test_multilabel_pipeline_gates_each_label(tmp_path):
    """Three 0/1 label columns, one sigmoid each; TFMA evaluates and gates every label."""
    import random

    import numpy as np
    import tensorflow as tf

    from pipelines.local_runner import run_pipeline

    rng = random.Random(3)
    rows = []
    for _ in range(400):
        x = [rng.gauss(0, 1) for _ in range(4)]
        rows.append([*(round(v, 4) for v in x), int(x[0] > 0), int(x[1] + x[2] > 0), int(x[3] > 0.5)])
    data = _write(tmp_path / "tags.csv", ["x0", "x1", "x2", "x3", "tag_a", "tag_b", "tag_c"], rows)
    config = run_cli_config("--data", str(data), "--label", "tag_a,tag_b,tag_c", "--task", "multilabel",
                            "--hparam", "epochs=40", home=tmp_path / "home")
    assert config.targets == (("tag_a", "binary"), ("tag_b", "binary"), ("tag_c", "binary"))
    report = run_pipeline(config, track=False)
    assert report.succeeded, report.error
    for label in ("tag_a", "tag_b", "tag_c"):
        assert report.metrics["overall"][f"{label}/auc"] >= 0.9
    assert report.blessed and report.pushed_now, report.blessing_reason
    served = tf.saved_model.load(report.pushed_path)
    outputs = served.signatures["serving_default"](**{f"x{i}": tf.constant([0.5, -0.5]) for i in range(4)})
    assert outputs["predictions"].shape == (2, 3)
    np.testing.assert_allclose(outputs["tag_b"].numpy()[:, 0], outputs["predictions"].numpy()[:, 1])
