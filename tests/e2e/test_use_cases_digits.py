"""The digits use case as an image task: the 8x8 TFRecord path with the CNN family (graph, both
signatures and the edge model agree) and the same labels through folders of PNG files."""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

from tests.helpers import int8_shrink, pixel_baseline_accuracy, run_use_case, served_accuracy, split_rows

pytestmark = pytest.mark.pipeline


def test_digits_cnn_accuracy(tmp_path_factory):
    config, report = run_use_case(tmp_path_factory, "digits", "--family", "cnn", "--hparam", "epochs=20")
    assert config.input_format == "tfrecord" and "ImportExampleGen" in report.artifact_uris
    served = tf.saved_model.load(report.pushed_path)
    serialized, evaluation = split_rows(report, "eval")
    _, train = split_rows(report, "train")
    # the test's own yardstick: logistic regression on the same train split's 64 pixels
    baseline = LogisticRegression(max_iter=5000).fit(train["pixels"], train["digit"])
    baseline_accuracy = baseline.score(evaluation["pixels"], evaluation["digit"])
    predicted = served.signatures["serving_tf_example"](examples=tf.constant(serialized))["predictions"]
    names = np.asarray(report.model_info["class_names"]["digit"])  # class index = the vocabulary's rank
    model_accuracy = float(np.mean(names[predicted.numpy().argmax(-1)] == evaluation["digit"].astype(str)))
    assert model_accuracy >= baseline_accuracy, (model_accuracy, baseline_accuracy)
    assert model_accuracy == pytest.approx(report.metrics["overall"]["sparse_categorical_accuracy"], abs=1e-6)
    raw = served.signatures["serving_default"](pixels=tf.constant(evaluation["pixels"][:32], tf.float32))
    assert raw["predictions"].shape == (32, 10)
    by_example = served.signatures["serving_tf_example"](examples=tf.constant(serialized[:32]))["predictions"]
    np.testing.assert_allclose(raw["predictions"].numpy(), by_example.numpy(), atol=1e-5)
    # the image family on the edge: raw pixels in, int8 within a point of the SavedModel, ~4x smaller
    edge = report.edge["variants"]
    assert edge["float32"]["accepted"] and edge["int8"]["accepted"], edge
    assert edge["int8"]["metric_drop"] <= 0.01 and int8_shrink(edge) >= 3.5, edge
    from serving.edge_runtime import EdgeModel
    tflite = EdgeModel(Path(report.pushed_path) / "tflite" / "float32.tflite")
    edge_out = tflite.predict({"pixels": evaluation["pixels"][:32].astype(np.float32)})["predictions"]
    np.testing.assert_allclose(edge_out, raw["predictions"].numpy(), atol=1e-4)


def test_digits_as_png_files_match_the_tfrecord_path(tmp_path_factory):
    """The same labels as the 8x8 TFRecord use case, through folders of 32x32 RGB PNG files, read at
    8 px, the drawings' own size (accuracy 0.963 against the pixels' logistic regression 0.949; 0.984
    at 16 px, in twice the time: docs/suite-times.md)."""
    config, report = run_use_case(tmp_path_factory, "digits_png", "--image-size", "8")
    assert config.images.images == 1797 and sorted(config.images.classes) == [str(d) for d in range(10)]
    assert config.images.size == 8
    assert report.blessed
    model_accuracy, baseline_accuracy = served_accuracy(report), pixel_baseline_accuracy(report, 8)
    assert model_accuracy >= baseline_accuracy, (model_accuracy, baseline_accuracy)  # the test's own, same split
