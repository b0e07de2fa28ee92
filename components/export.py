"""Serving signatures of the exported model, each carrying the Transform graph.

- ``serving_default``: one raw input per feature, shape [batch] ([batch, n] for a multi-valued
  feature such as image pixels), as a TF Serving REST ``instances`` row sends it: float32 for
  float columns, float64 for integer columns (so that NaN can mark a missing value; exact up to
  2**53), string for text. A missing value is NaN or "".
- ``serving_tf_example``: serialized tf.Example, for TFMA and TF Serving's classify/regress.
- ``serving_pixels`` (image models): decoded, resized pixels [batch, size, size, 3], 0-255.
- ``transform_features``: serialized tf.Example -> transformed features (label included), which
  TFMA uses to read the encoded label.
- ``classification`` (binary, multiclass) and ``regression`` (regression): TF Serving's Classify and
  Regress APIs on serialized tf.Examples (input ``inputs``; outputs ``classes``/``scores`` or
  ``outputs``). TF2 saves every signature with the predict method, which TF Serving refuses for
  Classify/Regress, so ``mark_signature_methods`` sets their method names in saved_model.pb.
"""
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components import libraries_are_not_autographed
from components.features import (
    FORECAST_OFFSET,
    FORECAST_SCALE,
    LABEL_OFFSET,
    LABEL_SCALE,
    MISSING_INTEGER,
    PREDICTIONS,
    transformed_name,
)
from components.image_layers import scale_pixels
from serving.codec.images import PIXELS_SIGNATURE, ImageInfo

libraries_are_not_autographed()  # the signatures trace the model's tf_keras code and TFT's layer
FORECAST = "forecast"
CLASSIFICATION, REGRESSION = "classification", "regression"
CALL_TRANSFORMED = "call_transformed"  # a function of the saved model: transformed features -> outputs
SIGNATURE_METHODS = {CLASSIFICATION: "tensorflow/serving/classify", REGRESSION: "tensorflow/serving/regress"}


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
        if feature.dtype.is_integer and value.dtype.is_floating:  # a float cast to int64 is garbage for NaN
            missing = tf.math.is_nan(value)
            whole = tf.cast(tf.where(missing, tf.zeros_like(value), value), feature.dtype)
            return tf.where(missing, tf.constant(MISSING_INTEGER, feature.dtype), whole)
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
    outputs = model({name: transformed[name] for name in model.input_names}, training=False)  # augmentation off
    outputs = dict(outputs) if isinstance(outputs, dict) else {PREDICTIONS: outputs}
    if PREDICTIONS in outputs and len(labels) > 1:
        outputs.update({label: outputs[PREDICTIONS][:, i:i + 1] for i, label in enumerate(labels)})
    if FORECAST_SCALE in transformed:  # forecasts in the series' own units
        outputs[FORECAST] = outputs[PREDICTIONS] * transformed[FORECAST_SCALE] + transformed[FORECAST_OFFSET]
    if LABEL_SCALE in transformed:  # regression: back from the standardized label to its own units
        outputs[PREDICTIONS] = outputs[PREDICTIONS] * transformed[LABEL_SCALE] + transformed[LABEL_OFFSET]
    return outputs


def _class_scores(probabilities: tf.Tensor) -> tf.Tensor:
    """[batch, classes] scores; a sigmoid's [batch, 1] becomes [1 - p, p]."""
    if probabilities.shape[-1] == 1:
        return tf.concat([1.0 - probabilities, probabilities], axis=1)
    return probabilities


def serving_signatures(model: keras.Model, tft_output: tft.TFTransformOutput, labels: Sequence[str],
                       task_name: str = "", class_names: Sequence[str] = (), ignored: Sequence[str] = (),
                       image: Optional[ImageInfo] = None) -> Dict[str, Any]:
    """``ignored``: raw features the Transform does not use (an image's file path), which requests
    need not carry; ``image``: the image input, for the pixels signature. The signatures are traced
    without AutoGraph (``autograph=False``: no tensor-dependent Python control flow in them or in the
    models): converting them took ~1.1 s of the default model's export."""
    model.tft_layer = tft_output.transform_features_layer()
    full_spec = tft_output.raw_feature_spec()
    raw_spec = {name: feature for name, feature in full_spec.items() if name not in labels and name not in ignored}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(examples):
        return _predict(model, model.tft_layer(tf.io.parse_example(examples, raw_spec)), labels)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, full_spec))

    @tf.function(autograph=False)
    def serve_raw(**features):
        raw = {name: _to_transform_input(features[name], raw_spec[name]) for name in raw_spec}
        return _predict(model, model.tft_layer(raw), labels)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(inputs):
        scores = _class_scores(serve_tf_examples(inputs)[PREDICTIONS])
        names = tf.constant(list(class_names)[:scores.shape[-1]] or [str(i) for i in range(scores.shape[-1])])
        return {"classes": tf.tile(names[tf.newaxis, :], [tf.shape(scores)[0], 1]), "scores": scores}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(inputs):
        return {"outputs": tf.reshape(serve_tf_examples(inputs)[PREDICTIONS], [-1])}

    raw_inputs = {name: tf.TensorSpec([None, *_value_shape(feature)], raw_input_dtype(feature), name=name)
                  for name, feature in raw_spec.items()}
    signatures = {
        "serving_default": serve_raw.get_concrete_function(**raw_inputs),
        "serving_tf_example": serve_tf_examples.get_concrete_function(),
        "transform_features": transform_features.get_concrete_function(),
    }
    if image is not None:
        signatures[PIXELS_SIGNATURE] = _pixels_signature(model, image, labels)
    if task_name in ("binary", "multiclass"):
        signatures[CLASSIFICATION] = classify.get_concrete_function()
    elif task_name == "regression":
        signatures[REGRESSION] = regress.get_concrete_function()
    return signatures


def _pixels_signature(model: keras.Model, image: ImageInfo, labels: Sequence[str]) -> Any:
    """Decoded, resized pixels (0-255, [batch, size, size, 3]) -> the model's outputs: the decoding
    left to the caller (a camera pipeline, the edge host); the scaling as the Transform does it."""
    pixels_spec = tf.TensorSpec([None, image.size, image.size, image.channels], tf.float32, name="pixels")

    @tf.function(autograph=False, input_signature=[pixels_spec])
    def serve_pixels(pixels):
        return _predict(model, {transformed_name(image.feature): scale_pixels(pixels, image)}, labels)

    return serve_pixels.get_concrete_function()


def save_model(model: keras.Model, directory: str, signatures: Dict[str, Any]) -> None:
    """The Trainer's SavedModel: the signatures, and ``CALL_TRANSFORMED`` (the model on transformed
    features, for the edge export, which folds the Transform into it). Saved without Keras' traces of
    every layer's call (``save_traces=False``), which took 1.1 of the default model's 1.6 s of saving:
    serving, TFMA and the edge read functions, and Keras reloads (a teacher, a transfer base) rebuild
    the layers from their configs."""
    specs = {name: tf.TensorSpec(tensor.shape, tensor.dtype, name=name)
             for name, tensor in zip(model.input_names, model.inputs)}

    @tf.function(autograph=False, input_signature=[specs])
    def call_transformed(features):
        return model(features, training=False)

    call_transformed.get_concrete_function()
    setattr(model, CALL_TRANSFORMED, call_transformed)
    model.save(directory, save_format="tf", save_traces=False, signatures=signatures)


def mark_signature_methods(model_dir: str) -> None:
    """Gives the classification/regression signatures TF Serving's classify/regress method names."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.saved_model import fingerprinting_utils

    path = Path(model_dir) / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    changed = False
    for meta_graph in saved_model.meta_graphs:
        for key, method in SIGNATURE_METHODS.items():
            if key in meta_graph.signature_def and meta_graph.signature_def[key].method_name != method:
                meta_graph.signature_def[key].method_name = method
                changed = True
    if changed:
        path.write_bytes(saved_model.SerializeToString(deterministic=True))
        fingerprinting_utils.write_fingerprint(str(model_dir))
