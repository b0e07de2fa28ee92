"""preprocessing_fn through TFT's Beam implementation on tiny data, missing values included."""
import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.transform import preprocessing_fn

RAW_SPEC = {
    "amount": tf.io.FixedLenFeature([1], tf.float32),
    "age": tf.io.VarLenFeature(tf.float32),  # has missing values
    "segment": tf.io.VarLenFeature(tf.string),  # has missing values
    "label": tf.io.FixedLenFeature([1], tf.int64),
    "kind": tf.io.FixedLenFeature([1], tf.string),
}
ROWS = [
    {"amount": [10.0], "age": [1.0], "segment": [b"a"], "label": [0], "kind": [b"cat"]},
    {"amount": [20.0], "age": [], "segment": [b"b"], "label": [1], "kind": [b"dog"]},
    {"amount": [30.0], "age": [3.0], "segment": [], "label": [1], "kind": [b"dog"]},
    {"amount": [40.0], "age": [5.0], "segment": [b"a"], "label": [0], "kind": [b"dog"]},
]


def _transform(tmp_path, label: str, task: str, drop: str):
    spec = {k: v for k, v in RAW_SPEC.items() if k != drop}
    rows = [{k: v for k, v in row.items() if k != drop} for row in ROWS]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    fn = functools.partial(preprocessing_fn, custom_config={"task": task, "targets": [[label, task]]})
    with tft_beam.Context(temp_dir=str(tmp_path), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            fn, output_record_batches=False)
    return transformed


def _column(rows, name):
    return np.array([np.asarray(r[name]).reshape(-1)[0] for r in rows])


def test_numeric_zscore_with_missing_filled_by_mean(tmp_path):
    rows = _transform(tmp_path, "label", "binary", drop="kind")
    amount = _column(rows, "amount_xf")
    assert amount.mean() == pytest.approx(0, abs=1e-6) and amount.std() == pytest.approx(1, abs=1e-5)
    age = _column(rows, "age_xf")
    present = np.array([1.0, 3.0, 5.0])
    expected = (present - present.mean()) / present.std()
    np.testing.assert_allclose(age[[0, 2, 3]], expected, atol=1e-5)
    assert age[1] == 0.0  # missing -> the mean, i.e. z = 0


def test_strings_get_vocabulary_ids_and_missing_is_a_token(tmp_path):
    rows = _transform(tmp_path, "label", "binary", drop="kind")
    segment = _column(rows, "segment_xf")
    assert segment.dtype == np.int64
    assert segment[0] == segment[3]  # both "a"
    assert len(set(segment.tolist())) == 3  # a, b and the empty (missing) value
    assert _column(rows, "label_xf").tolist() == [0, 1, 1, 0]  # 0/1 kept as is


def test_multiclass_label_is_a_class_index_by_frequency(tmp_path):
    rows = _transform(tmp_path, "kind", "multiclass", drop="label")
    assert _column(rows, "kind_xf").tolist() == [1, 0, 0, 0]  # dog (most frequent) = 0
    assert "kind" not in rows[0] and "amount_xf" in rows[0]


def test_regression_label_is_a_float(tmp_path):
    rows = _transform(tmp_path, "amount", "regression", drop="kind")
    assert _column(rows, "amount_xf").tolist() == [10.0, 20.0, 30.0, 40.0]
    assert _column(rows, "label_xf").dtype == np.float32
