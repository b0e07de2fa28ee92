"""The Transform step's preprocessing_fn: z-score numerics, vocabularies for strings, fill missing,
images and sequences scaled to [0, 1] and shaped, labels encoded per target task.

Referenced by TFX as ``components.transform.preprocessing_fn``; ``custom_config`` comes from
``PipelineConfig.transform_config()``: task, targets ((label, task) pairs) and tensor shapes.
"""
from typing import Any, Dict, Mapping, Union

import tensorflow as tf
import tensorflow_transform as tft

from components.features import FORECAST_OFFSET, FORECAST_SCALE, label_vocabulary, transformed_name, vocabulary_name
from components.tasks import get_task

OOV_BUCKETS = 1
Tensorish = Union[tf.Tensor, tf.SparseTensor]


def fill_missing(x: Tensorish, default: Any) -> tf.Tensor:
    """A [batch, 1] dense tensor: a feature with missing values arrives as a SparseTensor."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
            default_value=tf.constant(default, dtype=x.dtype),
        )
    return tf.reshape(x, [-1, 1])


def encode_label(label: Tensorish, encoding: str, name: str) -> tf.Tensor:
    if encoding == "float":
        return tf.cast(fill_missing(label, 0), tf.float32)
    if encoding == "binary" and label.dtype.is_integer:
        return tf.cast(fill_missing(label, 0), tf.int64)
    # Class names, in decreasing frequency: index 0 is the most frequent class.
    if label.dtype == tf.string:
        as_text = fill_missing(label, "")
    else:
        as_text = tf.strings.as_string(fill_missing(label, 0))
    return tft.compute_and_apply_vocabulary(as_text, vocab_filename=label_vocabulary(name))


def scale_tensor(x: tf.Tensor, shape: list, name: str) -> tf.Tensor:
    """A multi-valued feature (image pixels, a sequence window) scaled to [0, 1] with one min/max
    over all its values (so relative intensities stay), reshaped to [batch, *shape]."""
    scaled = tft.scale_to_0_1(tf.cast(x, tf.float32), elementwise=False, name=f"scale_{name}")
    return tf.reshape(scaled, [-1, *shape])


def forecast_features(inputs: Mapping[str, Tensorish], window: str, shape: list, target: str) -> Dict[str, tf.Tensor]:
    """Window and target scaled by one min/max (the window's, over the train split), so the ratio of
    errors is the same as in the series' units; the scale goes along to undo it at serving."""
    values = tf.cast(inputs[window], tf.float32)
    low, high = tft.min(values), tft.max(values)
    span = tf.maximum(high - low, 1e-6)
    ones = tf.ones_like(values[:, :1])
    return {
        transformed_name(window): tf.reshape((values - low) / span, [-1, *shape]),
        transformed_name(target): (tf.cast(inputs[target], tf.float32) - low) / span,
        FORECAST_OFFSET: ones * low,
        FORECAST_SCALE: ones * span,
    }


def preprocessing_fn(inputs: Mapping[str, Tensorish], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    targets = {label: subtask for label, subtask in custom_config["targets"]}
    tensors = custom_config.get("tensors", {})
    if custom_config["task"] == "forecast":
        (window, shape), = tensors.items()
        (target, _), = targets.items()
        return forecast_features(inputs, window, shape, target)
    outputs = {}
    for name, tensor in inputs.items():
        if name in targets:
            continue
        if name in tensors:
            outputs[transformed_name(name)] = scale_tensor(tensor, tensors[name], name)
        elif tensor.dtype == tf.string:
            outputs[transformed_name(name)] = tft.compute_and_apply_vocabulary(
                fill_missing(tensor, ""), num_oov_buckets=OOV_BUCKETS, vocab_filename=vocabulary_name(name)
            )
        else:
            # Statistics over present values only; a missing value becomes the mean (z = 0).
            zscore = tft.scale_to_z_score(tf.cast(tensor, tf.float32), name=f"zscore_{name}")
            outputs[transformed_name(name)] = fill_missing(zscore, 0.0)
    for label, subtask in targets.items():
        outputs[transformed_name(label)] = encode_label(inputs[label], get_task(subtask).label_encoding, label)
    return outputs
