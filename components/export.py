"""Serving signatures of the exported model, each carrying the Transform graph.

- ``serving_default``: one raw input per feature, shape [batch], as a TF Serving REST ``instances``
  row sends it: float32 for float columns, float64 for integer columns (so that NaN can mark a
  missing value; exact up to 2**53), string for text. A missing value is NaN or "".
- ``serving_tf_example``: serialized tf.Example, for TFMA and TF Serving's classify/regress.
- ``transform_features``: serialized tf.Example -> transformed features (label included), which
  TFMA uses to read the encoded label.
"""
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

PREDICTIONS = "predictions"


def raw_input_dtype(feature: Any) -> tf.DType:
    return tf.float64 if feature.dtype.is_integer else feature.dtype


def _to_transform_input(value: tf.Tensor, feature: Any) -> Any:
    """A [batch] serving input -> what the Transform layer expects for this raw feature."""
    column = tf.reshape(value, [-1, 1])
    if value.dtype == tf.string:
        present = tf.not_equal(column, "")
    else:
        present = tf.logical_not(tf.math.is_nan(column))
        column = tf.cast(column, feature.dtype)
    if not isinstance(feature, tf.io.VarLenFeature):
        return column
    indices = tf.where(present)
    return tf.SparseTensor(indices, tf.gather_nd(column, indices), tf.shape(column, out_type=tf.int64))


def _model_inputs(model: keras.Model, transformed: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    return {name: transformed[name] for name in model.input_names}


def serving_signatures(model: keras.Model, tft_output: tft.TFTransformOutput, label: str) -> Dict[str, Any]:
    model.tft_layer = tft_output.transform_features_layer()
    full_spec = tft_output.raw_feature_spec()
    raw_spec = {name: feature for name, feature in full_spec.items() if name != label}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(examples):
        transformed = model.tft_layer(tf.io.parse_example(examples, raw_spec))
        return {PREDICTIONS: model(_model_inputs(model, transformed))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, full_spec))

    @tf.function
    def serve_raw(**features):
        raw = {name: _to_transform_input(features[name], raw_spec[name]) for name in raw_spec}
        transformed = model.tft_layer(raw)
        return {PREDICTIONS: model(_model_inputs(model, transformed))}

    raw_inputs = {name: tf.TensorSpec([None], raw_input_dtype(feature), name=name)
                  for name, feature in raw_spec.items()}
    return {
        "serving_default": serve_raw.get_concrete_function(**raw_inputs),
        "serving_tf_example": serve_tf_examples.get_concrete_function(),
        "transform_features": transform_features.get_concrete_function(),
    }
