"""The Transform step's preprocessing_fn: z-score numerics, vocabularies for strings, fill missing.

Referenced by TFX as ``components.transform.preprocessing_fn``; ``custom_config`` carries the label
column and the task (see ``pipelines.pipeline.create_pipeline``).
"""
from typing import Any, Dict, Mapping, Union

import tensorflow as tf
import tensorflow_transform as tft

from components.features import LABEL_VOCABULARY, transformed_name, vocabulary_name
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


def _encode_label(label: Tensorish, encoding: str) -> tf.Tensor:
    if encoding == "float":
        return tf.cast(fill_missing(label, 0), tf.float32)
    if encoding == "binary" and label.dtype.is_integer:
        return tf.cast(fill_missing(label, 0), tf.int64)
    # Class names, in decreasing frequency: index 0 is the most frequent class.
    if label.dtype == tf.string:
        as_text = fill_missing(label, "")
    else:
        as_text = tf.strings.as_string(fill_missing(label, 0))
    return tft.compute_and_apply_vocabulary(as_text, vocab_filename=LABEL_VOCABULARY)


def preprocessing_fn(inputs: Mapping[str, Tensorish], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    label = custom_config["label"]
    task = get_task(custom_config["task"])
    outputs = {}
    for name, tensor in inputs.items():
        if name == label:
            continue
        if tensor.dtype == tf.string:
            outputs[transformed_name(name)] = tft.compute_and_apply_vocabulary(
                fill_missing(tensor, ""), num_oov_buckets=OOV_BUCKETS, vocab_filename=vocabulary_name(name)
            )
        else:
            # Statistics over present values only; a missing value becomes the mean (z = 0).
            zscore = tft.scale_to_z_score(tf.cast(tensor, tf.float32), name=f"zscore_{name}")
            outputs[transformed_name(name)] = fill_missing(zscore, 0.0)
    outputs[transformed_name(label)] = _encode_label(inputs[label], task.label_encoding)
    return outputs
