"""Every image and sequence family exported with the Transform graph and both serving signatures
(raw features and serialized tf.Example), which must agree."""
import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from components.export import serving_signatures
from components.models.base import HeadSpec
from components.models.builder import build_model
from components.trainer import feature_spec_from_transform
from components.transform import preprocessing_fn

SMALL = {"vgg": {"width": 0.0625, "top_units": 16}, "resnet": {"width": 0.125},
         "mobilenet": {"alpha": 0.35, "last_filters": 64, "groups": 3}, "cnn": {"filters": 8}}


def _transform_output(tmp_path, spec, rows, config) -> tft.TFTransformOutput:
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp"), force_tf_compat_v1=False):
        transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, custom_config=config))
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "transform"))
    metadata_io.write_metadata(metadata, str(tmp_path / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(str(tmp_path / "transform"))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = [{"pixels": rng.uniform(0, 16, 64).astype("float32").tolist(), "digit": [int(i % 10)]} for i in range(40)]
    spec = {"pixels": tf.io.FixedLenFeature([64], tf.float32), "digit": tf.io.FixedLenFeature([1], tf.int64)}
    config = {"task": "multiclass", "targets": [["digit", "multiclass"]], "tensors": {"pixels": [8, 8, 1]}}
    return _transform_output(tmp_path_factory.mktemp("images"), spec, rows, config), rows


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = [{"window": rng.uniform(0, 200, 12).astype("float32").tolist(),
             "target": rng.uniform(0, 200, 3).astype("float32").tolist()} for _ in range(40)]
    spec = {"window": tf.io.FixedLenFeature([12], tf.float32), "target": tf.io.FixedLenFeature([3], tf.float32)}
    config = {"task": "forecast", "targets": [["target", "forecast"]], "tensors": {"window": [12, 1]}}
    return _transform_output(tmp_path_factory.mktemp("windows"), spec, rows, config), rows


def _serialized(rows, spec):
    out = []
    for row in rows:
        features = {k: (tf.train.Feature(float_list=tf.train.FloatList(value=v)) if spec[k].dtype == tf.float32
                        else tf.train.Feature(int64_list=tf.train.Int64List(value=v))) for k, v in row.items()}
        out.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return tf.constant(out)


def _export_and_compare(tmp_path, family, head, tft_output, rows, label, raw_input):
    spec = feature_spec_from_transform(tft_output, (label,))
    model = build_model(family, head, spec, SMALL.get(family, {}))
    model.save(tmp_path / family, save_format="tf", signatures=serving_signatures(model, tft_output, (label,)))
    served = tf.saved_model.load(str(tmp_path / family))
    raw = served.signatures["serving_default"](**{raw_input: tf.constant([r[raw_input] for r in rows[:8]])})
    by_example = served.signatures["serving_tf_example"](
        examples=_serialized(rows[:8], tft_output.raw_feature_spec()))
    assert set(raw) == set(by_example)
    for key in raw:
        np.testing.assert_allclose(raw[key].numpy(), by_example[key].numpy(), atol=1e-5)
    return raw


@pytest.mark.parametrize("family", ["cnn", "vgg", "resnet", "mobilenet"])
def test_image_family_exports_both_signatures(tmp_path, images, family):
    tft_output, rows = images
    raw = _export_and_compare(tmp_path, family, HeadSpec("multiclass", units=10), tft_output, rows, "digit",
                              "pixels")
    assert raw["predictions"].shape == (8, 10)


@pytest.mark.parametrize("family", ["rnn", "seq2seq"])
def test_sequence_family_exports_forecasts_in_series_units(tmp_path, windows, family):
    tft_output, rows = windows
    raw = _export_and_compare(tmp_path, family, HeadSpec("forecast", units=3), tft_output, rows, "target",
                              "window")
    assert raw["predictions"].shape == (8, 3) and raw["forecast"].shape == (8, 3)
    low, high = min(min(r["window"]) for r in rows), max(max(r["window"]) for r in rows)
    np.testing.assert_allclose(raw["forecast"].numpy(), raw["predictions"].numpy() * (high - low) + low, rtol=1e-4)


def test_classification_signature_has_tf_serving_classify_method(tmp_path, images):
    """TF Serving's Classify API needs a classify-method signature with ``classes`` and ``scores``."""
    from components.export import mark_signature_methods
    from serving.runtime.servable import CLASSIFY_METHOD, read_signature_defs

    tft_output, rows = images
    spec = feature_spec_from_transform(tft_output, ("digit",))
    model = build_model("cnn", HeadSpec("multiclass", units=10), spec, SMALL["cnn"])
    names = [str(d) for d in range(9, -1, -1)]
    model.save(tmp_path / "m", save_format="tf",
               signatures=serving_signatures(model, tft_output, ("digit",), "multiclass", names))
    mark_signature_methods(str(tmp_path / "m"))
    defs = read_signature_defs(tmp_path / "m")
    assert defs["classification"].method_name == CLASSIFY_METHOD
    assert defs["serving_default"].method_name == "tensorflow/serving/predict"
    served = tf.saved_model.load(str(tmp_path / "m"))
    examples = _serialized(rows[:4], tft_output.raw_feature_spec())
    result = served.signatures["classification"](inputs=examples)
    predicted = served.signatures["serving_tf_example"](examples=examples)["predictions"].numpy()
    np.testing.assert_allclose(result["scores"].numpy(), predicted, atol=1e-6)
    assert [c.decode() for c in result["classes"].numpy()[0]] == names


def test_a_missing_integer_at_serving_is_read_as_missing_not_cast_to_garbage(tmp_path):
    """An integer column never missing in training is a required int64 feature; a served request's
    empty cell (NaN) reads as missing, as in training: the number takes its train mean (z = 0) and a
    category its missing value, instead of NaN cast to int64 (-2^63, which saturated every score)."""
    rows = [{"visits": [v % 11], "code": [v % 3] if v % 5 else [], "y": [int(v % 11 > 5)]} for v in range(44)]
    spec = {"visits": tf.io.FixedLenFeature([1], tf.int64), "code": tf.io.VarLenFeature(tf.int64),
            "y": tf.io.FixedLenFeature([1], tf.int64)}
    config = {"task": "binary", "targets": [["y", "binary"]],
              "columns": {"visits": {"kind": "integer", "format": ""}, "code": {"kind": "string", "format": ""}}}
    tft_output = _transform_output(tmp_path, spec, rows, config)
    model = build_model("dnn", HeadSpec("binary"), feature_spec_from_transform(tft_output, ("y",)), {})
    model.save(tmp_path / "model", save_format="tf", signatures=serving_signatures(model, tft_output, ("y",)))
    serve = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]

    def score(visits, code):
        return serve(visits=tf.constant([visits], tf.float64), code=tf.constant([code], tf.float64))["predictions"]

    np.testing.assert_allclose(score(np.nan, 1.0), score(5.0, 1.0), atol=1e-6)  # 5: the train mean of 0..10
    np.testing.assert_allclose(score(3.0, np.nan), score(3.0, 99.0), atol=1e-6)  # missing code: unseen, not "0"
