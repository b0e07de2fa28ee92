"""Serving signatures of the exported model, each carrying the Transform graph.

- ``serving_default``: one raw input per feature, shape [batch] ([batch, n] for a multi-valued
  feature such as image pixels), as a TF Serving REST ``instances`` row sends it: float32 for
  float columns, float64 for integer columns (so that NaN can mark a missing value; exact up to
  2**53), string for text. A missing value is NaN or "".
- ``serving_tf_example``: serialized tf.Example, for TFMA and TF Serving's classify/regress.
- ``transform_features``: serialized tf.Example -> transformed features (label included), which
  TFMA uses to read the encoded label.
"""
from typing import Any, Dict, Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.features import FORECAST_OFFSET, FORECAST_SCALE

PREDICTIONS = "predictions"
FORECAST = "forecast"


def _value_shape(feature: Any) -> list:
    """Per-row shape at the raw signature: [] for a scalar column, [64] for 64 pixels."""
    shape = list(getattr(feature, "shape", []) or [])
    return [] if shape in ([], [1]) else shape


def raw_input_dtype(feature: Any) -> tf.DType:
    return tf.float64 if feature.dtype.is_integer else feature.dtype


def _to_transform_input(value: tf.Tensor, feature: Any) -> Any:
    """A [batch] serving input -> what the Transform layer expects for this raw feature."""
    if not isinstance(feature, tf.io.VarLenFeature):  # fixed shape: [1], or e.g. [64] pixels
        value = tf.reshape(value, [-1, *feature.shape])
        return value if value.dtype == feature.dtype else tf.cast(value, feature.dtype)
    column = tf.reshape(value, [-1, 1])
    if value.dtype == tf.string:
        present = tf.not_equal(column, "")
    else:
        present = tf.logical_not(tf.math.is_nan(column))
        column = tf.cast(column, feature.dtype)
    indices = tf.where(present)
    return tf.SparseTensor(indices, tf.gather_nd(column, indices), tf.shape(column, out_type=tf.int64))


def _predict(model: keras.Model, transformed: Dict[str, tf.Tensor], labels: Sequence[str]) -> Dict[str, tf.Tensor]:
    """The model's outputs as a dict: its own names (multitask heads, anomaly score and verdict),
    or ``predictions`` for a single output (and ``forecast``, unscaled, for a forecaster). A
    multilabel model's columns are also given one output per label, as TFMA evaluates them."""
    outputs = model({name: transformed[name] for name in model.input_names})
    outputs = dict(outputs) if isinstance(outputs, dict) else {PREDICTIONS: outputs}
    if PREDICTIONS in outputs and len(labels) > 1:
        outputs.update({label: outputs[PREDICTIONS][:, i:i + 1] for i, label in enumerate(labels)})
    if FORECAST_SCALE in transformed:  # forecasts in the series' own units
        outputs[FORECAST] = outputs[PREDICTIONS] * transformed[FORECAST_SCALE] + transformed[FORECAST_OFFSET]
    return outputs


def serving_signatures(model: keras.Model, tft_output: tft.TFTransformOutput,
                       labels: Sequence[str]) -> Dict[str, Any]:
    model.tft_layer = tft_output.transform_features_layer()
    full_spec = tft_output.raw_feature_spec()
    raw_spec = {name: feature for name, feature in full_spec.items() if name not in labels}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(examples):
        return _predict(model, model.tft_layer(tf.io.parse_example(examples, raw_spec)), labels)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, full_spec))

    @tf.function
    def serve_raw(**features):
        raw = {name: _to_transform_input(features[name], raw_spec[name]) for name in raw_spec}
        return _predict(model, model.tft_layer(raw), labels)

    raw_inputs = {name: tf.TensorSpec([None, *_value_shape(feature)], raw_input_dtype(feature), name=name)
                  for name, feature in raw_spec.items()}
    return {
        "serving_default": serve_raw.get_concrete_function(**raw_inputs),
        "serving_tf_example": serve_tf_examples.get_concrete_function(),
        "transform_features": transform_features.get_concrete_function(),
    }
