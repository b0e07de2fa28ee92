"""The digits use case as an image task: the 8x8 TFRecord path with the CNN family (graph, both
signatures and the edge model agree) and the same labels through folders of PNG files."""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import int8_shrink, run_use_case, split_rows

pytestmark = pytest.mark.pipeline


def test_digits_cnn_accuracy(tmp_path_factory):
    config, report = run_use_case(tmp_path_factory, "digits", "--family", "cnn", "--hparam", "epochs=20")
    assert config.input_format == "tfrecord" and "ImportExampleGen" in report.artifact_uris
    assert report.metrics["overall"]["sparse_categorical_accuracy"] >= 0.97
    served = tf.saved_model.load(report.pushed_path)
    serialized, evaluation = split_rows(report, "eval")
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
    16 px: the drawings are 8x8, so 16 px loses nothing (accuracy 0.984 vs 0.977 at 32 px) and the
    Trainer takes 54 s instead of 181 s."""
    config, report = run_use_case(tmp_path_factory, "digits_png", "--image-size", "16")
    assert config.images.images == 1797 and sorted(config.images.classes) == [str(d) for d in range(10)]
    assert config.images.size == 16
    assert report.metrics["overall"]["sparse_categorical_accuracy"] >= 0.95 and report.blessed
