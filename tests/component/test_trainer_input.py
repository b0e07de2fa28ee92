"""The Trainer's input: a small split is read once and kept in memory, its rows reshuffled each
epoch; a large one is read (and shuffled by TFX's reader) every epoch. Same rows either way."""
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.public import tfxio

from components import trainer
from components.specs import TransformSpec

ROWS = 300


def _split(tmp_path):
    path = str(tmp_path / "train.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(ROWS):
            features = {"x_xf": tf.train.Feature(float_list=tf.train.FloatList(value=[float(i)])),
                        "y_xf": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    schema = schema_utils.schema_from_feature_spec({"x_xf": tf.io.FixedLenFeature([1], tf.float32),
                                                    "y_xf": tf.io.FixedLenFeature([1], tf.int64)})

    def factory(files, options, schema):  # as TFX's DataAccessor reads a split
        return tfxio.TFExampleRecord(file_pattern=files, schema=schema).TensorFlowDataset(options)

    fn_args = SimpleNamespace(data_accessor=SimpleNamespace(tf_dataset_factory=factory))
    tft_output = SimpleNamespace(transformed_metadata=SimpleNamespace(schema=schema))
    return fn_args, [path], tft_output


def _epoch(data):
    return np.concatenate([x["x_xf"].numpy().reshape(-1) for x, _ in data]).astype(int).tolist()


@pytest.mark.parametrize("cache_bytes", [4 << 20, 0])
def test_every_row_once_an_epoch_shuffled_for_training_in_order_for_evaluation(tmp_path, monkeypatch, cache_bytes):
    monkeypatch.setattr(trainer, "CACHE_BYTES", cache_bytes)
    fn_args, files, tft_output = _split(tmp_path)
    config = TransformSpec.from_dict({"task": "binary", "targets": [["y", "binary"]]})
    train = trainer._dataset(fn_args, files, tft_output, config, 32, shuffle=True)
    first, second = _epoch(train), _epoch(train)
    assert sorted(first) == sorted(second) == list(range(ROWS))
    assert first != list(range(ROWS)) and first != second  # shuffled, and anew each epoch
    assert all(len(x["x_xf"]) <= 32 for x, _ in train)
    evaluation = trainer._dataset(fn_args, files, tft_output, config, 32, shuffle=False)
    assert _epoch(evaluation) == _epoch(evaluation) == list(range(ROWS))
    for x, y in train:  # labels travel with their rows
        assert (y.numpy().reshape(-1) == x["x_xf"].numpy().reshape(-1).astype(int) % 2).all()
