"""Autoencoder family for anomaly detection: dense (tabular) or convolutional (images).

The model adds its own reconstruction loss and outputs, per example, the reconstruction error
(``score``), ``anomaly_probability`` (0.5 at the threshold, monotonic in the score, so AUC works)
and ``is_anomaly``. The threshold is a variable of the model, chosen on eval data after training
(``choose_threshold``) and saved with it, so serving returns score and verdict.
"""
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.models.base import KERNEL_INITIALIZER, FeatureSpec, HeadSpec, conv_bn_act, regularizer

SCORE, PROBABILITY, VERDICT = "score", "anomaly_probability", "is_anomaly"


@keras.utils.register_keras_serializable(package="mlops")
class AnomalyScore(keras.layers.Layer):
    """(input, reconstruction) -> score, probability and verdict against a stored threshold.
    Registered: the Trainer saves without traced layer calls, so a Keras reload rebuilds it by name."""

    def build(self, input_shape):
        self.threshold = self.add_weight(name="anomaly_threshold", shape=(), trainable=False,
                                         initializer=keras.initializers.Constant(1.0))

    def call(self, inputs):
        original, reconstruction = inputs
        flat = tf.reshape(original - reconstruction, [tf.shape(original)[0], -1])
        score = tf.reduce_mean(tf.square(flat), axis=-1, keepdims=True)
        probability = 1.0 - tf.pow(2.0, -score / tf.maximum(self.threshold, 1e-12))
        return score, probability, tf.cast(score > self.threshold, tf.float32)


def _reconstruction_target(inputs: Dict[str, Any], spec: FeatureSpec) -> Any:
    """What is reconstructed: numeric features, one-hot categories (embeddings could collapse to 0),
    flattened tensors."""
    parts = [inputs[name] for name in spec.numeric]
    parts += [keras.layers.CategoryEncoding(size, output_mode="one_hot", name=f"onehot_{name}")(inputs[name])
              for name, size in spec.categorical.items()]
    parts += [keras.layers.Flatten(name=f"flat_{name}")(inputs[name]) for name in spec.tensors]
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="target")(parts)


def _dense(target: Any, hp: Mapping[str, Any]) -> Any:
    widths = [max(2, hp["width"] // 2 ** i) for i in range(hp["depth"])] + [hp["latent"]]
    x = target
    for index, units in enumerate(widths):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=KERNEL_INITIALIZER,
                               kernel_regularizer=regularizer(hp), name=f"encoder{index}")(x)
    for index, units in enumerate(reversed(widths[:-1])):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=KERNEL_INITIALIZER,
                               name=f"decoder{index}")(x)
    return keras.layers.Dense(target.shape[-1], name="reconstruction")(x)


def _convolutional(image: Any, shape: Sequence[int], hp: Mapping[str, Any]) -> Any:
    """Stride-2 convs down while the side stays even and > 2, transposed convs back up; as many
    output channels as the input has."""
    side, x, filters = shape[0], image, []
    while side % 2 == 0 and side > 2 and len(filters) < hp["depth"]:
        filters.append(hp["filters"] * 2 ** len(filters))
        x = conv_bn_act(x, filters[-1], 3, 2, hp, f"encoder{len(filters)}")
        side //= 2
    for index, f in enumerate(reversed(filters)):
        x = keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu",
                                         name=f"decoder{index}")(x)
    return keras.layers.Conv2D(shape[-1], 3, padding="same", name="reconstruction")(x)


def build_model(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any], head: HeadSpec) -> keras.Model:
    images = [(name, shape) for name, shape in spec.tensors.items() if len(shape) == 3]
    if images and len(inputs) == 1:
        name, shape = images[0]
        target, reconstruction = inputs[name], _convolutional(inputs[name], shape, hp)
    else:
        target = _reconstruction_target(inputs, spec)
        reconstruction = _dense(target, hp)
    score, probability, verdict = AnomalyScore(name="anomaly")([target, reconstruction])
    model = keras.Model(inputs, {SCORE: score, PROBABILITY: probability, VERDICT: verdict})
    model.add_loss(tf.reduce_mean(tf.square(target - reconstruction)))
    return model


def choose_threshold(scores: np.ndarray, labels: Optional[np.ndarray] = None, quantile: float = 0.95) -> float:
    """The score above which a row is an anomaly: the best F1 on labelled eval rows, else a quantile
    of the eval scores."""
    scores = np.asarray(scores, dtype=float).reshape(-1)
    if labels is None or len(np.unique(labels)) < 2:
        return float(np.quantile(scores, quantile))
    labels = np.asarray(labels).reshape(-1).astype(bool)
    best, best_f1 = float(np.quantile(scores, quantile)), -1.0
    for candidate in np.unique(scores):
        predicted = scores > candidate
        tp = np.sum(predicted & labels)
        f1 = 2 * tp / max(1, np.sum(predicted) + np.sum(labels))
        if f1 > best_f1:
            best, best_f1 = float(candidate), f1
    return best


def set_threshold(model: keras.Model, threshold: float) -> None:
    model.get_layer("anomaly").threshold.assign(threshold)
