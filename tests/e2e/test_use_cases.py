"""Ready use cases through the full pipeline, each held to its quality bar; where the bar is a
scikit-learn baseline, it is trained on the same train split and scored on the same eval rows."""
import glob
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipelines.inputs.datasets import AGE_GROUPS
from tests.helpers import run_cli_config

pytestmark = pytest.mark.pipeline
SPREAD_ACROSS_WORKERS = True  # no module fixture: each test runs its own pipeline (tests/conftest.py)


def _run(tmp_path_factory, usecase: str, *args: str):
    from pipelines.runners.local import run_pipeline

    home = tmp_path_factory.mktemp(usecase)
    config = run_cli_config(usecase, *args, home=home)
    report = run_pipeline(config, track=False)
    assert report.succeeded, report.error
    return config, report


def _split(report, split: str):
    """The rows ExampleGen wrote for a split, as (serialized examples, {feature: values})."""
    uri = next(outputs["Examples"] for node, outputs in report.artifact_uris.items() if node.endswith("ExampleGen"))
    files = glob.glob(os.path.join(uri, f"Split-{split}", "*"))
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    columns = {}
    for record in serialized:
        example = tf.train.Example.FromString(record)
        for key, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value)
            columns.setdefault(key, []).append(values[0] if len(values) == 1 else values)
    return serialized, {k: np.array(v) for k, v in columns.items()}


def _matrix(columns, label_names):
    return np.column_stack([columns[k].astype(float) for k in sorted(columns) if k not in label_names])


def test_fraud_auc(tmp_path_factory):
    _, report = _run(tmp_path_factory, "fraud")
    assert report.metrics["overall"]["auc"] >= 0.98
    assert report.blessed and report.pushed_now


def test_housing_r2_close_to_ridge(tmp_path_factory):
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    config, report = _run(tmp_path_factory, "housing")
    label = "progression"
    # regression is gated on RMSE: better than predicting the mean (the label's standard deviation)
    assert report.metrics["overall"]["root_mean_squared_error"] < config.gate_thresholds[label]
    _, train = _split(report, "train")
    serialized, evaluation = _split(report, "eval")
    ridge = Ridge(alpha=0.1).fit(_matrix(train, {label}), train[label])
    ridge_r2 = r2_score(evaluation[label], ridge.predict(_matrix(evaluation, {label})))
    model = tf.saved_model.load(report.pushed_path)
    predictions = model.signatures["serving_tf_example"](examples=tf.constant(serialized))["predictions"]
    model_r2 = r2_score(evaluation[label], predictions.numpy().reshape(-1))
    assert model_r2 >= ridge_r2 - 0.02, (model_r2, ridge_r2)


def test_age_accuracy_at_least_the_baseline(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config, report = _run(tmp_path_factory, "age")
    label = "age_group"
    # multiclass is gated on accuracy above the majority class share
    assert report.metrics["overall"]["sparse_categorical_accuracy"] > config.gate_thresholds[label] > 0.2
    # class index = rank in the Transform's label vocabulary (by frequency in the train split)
    vocabulary = (Path(report.artifact_uris["Transform"]["TransformGraph"]) / "transform_fn" / "assets"
                  / f"label_{label}")
    assert report.model_info["class_names"][label] == vocabulary.read_text().split()
    assert set(report.model_info["class_names"][label]) == {group for _, group in AGE_GROUPS}
    _, train = _split(report, "train")
    _, evaluation = _split(report, "eval")
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    baseline.fit(_matrix(train, {"age_group"}), train["age_group"])
    baseline_accuracy = baseline.score(_matrix(evaluation, {"age_group"}), evaluation["age_group"])
    assert report.metrics["overall"]["sparse_categorical_accuracy"] >= baseline_accuracy, baseline_accuracy


def test_age_gender_heads_beat_their_majority_class(tmp_path_factory):
    _, report = _run(tmp_path_factory, "age_gender")
    _, evaluation = _split(report, "eval")
    overall = report.metrics["overall"]
    for head, metric in (("age_group", "sparse_categorical_accuracy"), ("gender", "binary_accuracy")):
        _, counts = np.unique(evaluation[head], return_counts=True)
        majority = counts.max() / counts.sum()
        assert overall[f"{head}/{metric}"] >= majority + 0.20, (head, overall[f"{head}/{metric}"], majority)
    assert report.blessed


def test_digits_cnn_accuracy(tmp_path_factory):
    config, report = _run(tmp_path_factory, "digits", "--family", "cnn", "--hparam", "epochs=20")
    assert config.input_format == "tfrecord" and "ImportExampleGen" in report.artifact_uris
    assert report.metrics["overall"]["sparse_categorical_accuracy"] >= 0.97
    served = tf.saved_model.load(report.pushed_path)
    serialized, evaluation = _split(report, "eval")
    raw = served.signatures["serving_default"](pixels=tf.constant(evaluation["pixels"][:32], tf.float32))
    assert raw["predictions"].shape == (32, 10)
    by_example = served.signatures["serving_tf_example"](examples=tf.constant(serialized[:32]))["predictions"]
    np.testing.assert_allclose(raw["predictions"].numpy(), by_example.numpy(), atol=1e-5)
    # the image family on the edge: raw pixels in, int8 within a point of the SavedModel, ~4x smaller
    edge = report.edge["variants"]
    assert edge["float32"]["accepted"] and edge["int8"]["accepted"], edge
    assert edge["int8"]["metric_drop"] <= 0.01 and edge["float32"]["size_bytes"] >= 3.5 * edge["int8"]["size_bytes"]
    from serving.edge_runtime import EdgeModel
    tflite = EdgeModel(Path(report.pushed_path) / "tflite" / "float32.tflite")
    edge_out = tflite.predict({"pixels": evaluation["pixels"][:32].astype(np.float32)})["predictions"]
    np.testing.assert_allclose(edge_out, raw["predictions"].numpy(), atol=1e-4)


def _edge_gate(report, smaller: float = 3.5):
    """int8 within a point of the SavedModel and ``smaller`` times smaller than float32 (both shipped)."""
    edge = report.edge["variants"]
    assert edge["float32"]["accepted"] and edge["int8"]["accepted"], edge
    assert edge["int8"]["metric_drop"] <= 0.01, edge["int8"]
    assert edge["float32"]["size_bytes"] >= smaller * edge["int8"]["size_bytes"], (edge["float32"], edge["int8"])


def test_photos_cnn_accuracy_and_edge(tmp_path_factory):
    """The photo patches as shipped (class folders, JPEG and PNG of varied sizes, the default size)."""
    config, report = _run(tmp_path_factory, "photos")
    assert config.images.size == 48 and config.images.classes == {c: 60 for c in
                                                                  ("leaves", "pagoda", "petals", "sky", "trees")}
    assert report.metrics["overall"]["sparse_categorical_accuracy"] >= 0.9 and report.blessed
    _edge_gate(report)


# MobileNet's int8 is 2.9x smaller, not 3.5x (measured at 32 and 48 px): a depthwise 3x3 kernel has 9
# weights per channel beside a per-channel scale, zero point and int32 bias, all kept at full width.
@pytest.mark.parametrize("family, bar, smaller", [("resnet", 0.8, 3.5), ("mobilenet", 0.7, 2.7)])
def test_photos_other_image_families_and_edge(tmp_path_factory, family, bar, smaller):
    """Small (32 px) and short (15 epochs) to keep the suite's time; 5 classes, so chance is 0.2.
    bench/images_bench.py trains them at the use case's own size."""
    _, report = _run(tmp_path_factory, "photos", "--family", family, "--image-size", "32", "--hparam", "epochs=15")
    assert report.metrics["overall"]["sparse_categorical_accuracy"] >= bar, report.metrics["overall"]
    _edge_gate(report, smaller)


def test_digits_as_png_files_match_the_tfrecord_path(tmp_path_factory):
    """The same labels as the 8x8 TFRecord use case, through folders of 32x32 RGB PNG files."""
    config, report = _run(tmp_path_factory, "digits_png")
    assert config.images.images == 1797 and sorted(config.images.classes) == [str(d) for d in range(10)]
    assert report.metrics["overall"]["sparse_categorical_accuracy"] >= 0.95 and report.blessed


def test_anomaly_autoencoder_auc_and_served_verdict(tmp_path_factory):
    _, report = _run(tmp_path_factory, "anomaly")
    assert report.model_info["family"] == "autoencoder" and report.model_info["anomaly_threshold"] > 0
    assert report.metrics["overall"]["auc"] >= 0.90
    served = tf.saved_model.load(report.pushed_path)
    serialized, evaluation = _split(report, "eval")
    outputs = served.signatures["serving_tf_example"](examples=tf.constant(serialized))
    assert {"score", "anomaly_probability", "is_anomaly"} <= set(outputs)
    flagged = outputs["is_anomaly"].numpy().reshape(-1).astype(bool)
    truth = evaluation["is_anomaly"].astype(bool)
    assert (flagged & truth).sum() / truth.sum() >= 0.6  # recall of the exported verdict
    for variant, entry in report.edge["variants"].items():  # shipped, or left out with a reason
        assert entry["accepted"] or entry["reason"], variant
    assert report.edge["variants"]["float32"]["accepted"]


def test_sunspots_rnn_beats_the_naive_forecast(tmp_path_factory):
    config, report = _run(tmp_path_factory, "sunspots", "--family", "rnn", "--hparam", "cell=lstm")
    assert "SeriesExampleGen" in report.artifact_uris  # windows were built in the pipeline
    serialized, evaluation = _split(report, "eval")
    windows, targets = evaluation["window"], evaluation["target"]
    assert windows.shape[1] == config.series["lookback"] and targets.shape[1] == config.series["horizon"]
    naive_mae = np.abs(targets - windows[:, -1:]).mean()
    served = tf.saved_model.load(report.pushed_path)
    forecast = served.signatures["serving_tf_example"](examples=tf.constant(serialized))["forecast"].numpy()
    model_mae = np.abs(targets - forecast).mean()
    assert model_mae <= 0.85 * naive_mae, (model_mae, naive_mae)
    raw = served.signatures["serving_default"](window=tf.constant(windows, tf.float32))["forecast"].numpy()
    np.testing.assert_allclose(raw, forecast, rtol=1e-4, atol=1e-3)
    # TFMA's scaled MAE sits under the same bar, which the Evaluator gated on
    assert report.metrics["overall"]["mean_absolute_error"] < config.gate_thresholds["target"]
    # Keras' LSTM (dynamic batch) lowers to TensorList ops that need Flex: said, and nothing shipped
    for entry in report.edge["variants"].values():
        assert entry["accepted"] or "builtin" in entry["reason"], entry
