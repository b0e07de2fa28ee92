"""Shared parts of every model family: inputs from the Transform's feature spec, stems, task heads.

A model is stem -> learner -> task head. Families supply stem and learner (their ``build``); the
heads, losses and metrics are shared and chosen by the task. Layer defaults (initializer,
regularizer) are resolved here, in one place.
"""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import tf_keras as keras

from components import libraries_are_not_autographed
from components.features import PREDICTIONS
from components.models.text import text_stem

libraries_are_not_autographed()
KERNEL_INITIALIZER = "he_normal"
# BatchNorm's moving statistics follow the last ~10 batches (Keras' 0.99 follows ~100): on small
# data they lag the weights for most of a short training, and inference falls to chance (a short
# training on small images was at chance with 0.99).
BN_MOMENTUM = 0.9


def batch_norm(name: str) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)
EMBEDDING = "embedding"  # the named endpoint before the head, for reuse (warm start, transfer)


@dataclass(frozen=True)
class FeatureSpec:
    """What the Transform outputs for the model, by kind of input."""

    numeric: Tuple[str, ...] = ()  # scalar floats, shape [1]
    categorical: Mapping[str, int] = field(default_factory=dict)  # name -> vocabulary size incl. OOV
    tensors: Mapping[str, Tuple[int, ...]] = field(default_factory=dict)  # images [H, W, C], sequences [T, F]
    texts: Mapping[str, Tuple[int, int]] = field(default_factory=dict)  # name -> (words, ids incl. padding, OOV)
    text_weights: Mapping[str, str] = field(default_factory=dict)  # a text's name -> its TF-IDF weights' name
    # a forecaster's features of each forecast step (calendar parts, covariates): name -> (horizon, parts)
    known_ahead: Mapping[str, Tuple[int, int]] = field(default_factory=dict)

    def single_tensor(self, rank: int, family: str) -> Tuple[str, Tuple[int, ...]]:
        """The one image (rank 3) or sequence (rank 2) input a convolutional or recurrent family needs."""
        found = [(name, shape) for name, shape in self.tensors.items() if len(shape) == rank]
        if len(found) != 1:
            kind = {3: "image [H, W, C]", 2: "sequence [T, F]"}[rank]
            raise ValueError(f"family '{family}' needs exactly one {kind} input; the features give "
                             f"{dict(self.tensors) or 'none'}")
        return found[0]


@dataclass(frozen=True)
class HeadSpec:
    """The task's output: classes (multiclass), labels (multilabel), steps (forecast), or named
    sub-heads for multitask: ((name, task, units), ...) with per-head loss weights."""

    task: str
    units: int = 1
    subheads: Tuple[Tuple[str, str, int], ...] = ()
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    # a correction to a forecast the Transform made (a user's series): it starts at 0, i.e. at that forecast
    zero_start: bool = False


def regularizer(hp: Mapping[str, Any]) -> Optional[keras.regularizers.Regularizer]:
    l1, l2 = hp.get("l1", 0.0), hp.get("l2", 0.0)
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def model_inputs(spec: FeatureSpec) -> Dict[str, Any]:
    inputs = {name: keras.Input(shape=(1,), name=name, dtype="float32") for name in spec.numeric}
    inputs.update({name: keras.Input(shape=(1,), name=name, dtype="int64") for name in spec.categorical})
    inputs.update({name: keras.Input(shape=shape, name=name, dtype="float32") for name, shape in spec.tensors.items()})
    inputs.update({name: keras.Input(shape=(length,), name=name, dtype="int64")
                   for name, (length, _) in spec.texts.items()})
    inputs.update({weights: keras.Input(shape=(spec.texts[name][0],), name=weights, dtype="float32")
                   for name, weights in spec.text_weights.items()})
    inputs.update({name: keras.Input(shape=shape, name=name, dtype="float32")
                   for name, shape in spec.known_ahead.items()})
    return inputs


KNOWN_AHEAD_UNITS = 32


def join_known_ahead(x: Any, inputs: Dict[str, Any], spec: FeatureSpec) -> Any:
    """The learner's output beside what is known of each forecast step: per step beside a decoder's
    [horizon, units] states, else flattened beside the learner's output; both as they are (a
    covariate's effect on a step is often linear) and through a small ReLU layer over the two (a
    calendar part's effect depends on where the series stands: a holiday on a high or a low week)."""
    (name, (horizon, _)), = spec.known_ahead.items()
    ahead = inputs[name]
    if len(x.shape) == 3 and x.shape[1] == horizon:
        joined = keras.layers.Concatenate(axis=2, name="known_ahead_steps")([x, ahead])
        hidden = keras.layers.TimeDistributed(keras.layers.Dense(KNOWN_AHEAD_UNITS, activation="relu"),
                                              name="known_ahead_hidden")(joined)
        return keras.layers.Concatenate(axis=2, name="known_ahead_join")([joined, hidden])
    flat = [embedding_endpoint(x) if len(x.shape) > 2 else x, keras.layers.Flatten(name="known_ahead_flat")(ahead)]
    joined = keras.layers.Concatenate(name="known_ahead_steps")(flat)
    hidden = keras.layers.Dense(KNOWN_AHEAD_UNITS, activation="relu", kernel_initializer=KERNEL_INITIALIZER,
                                name="known_ahead_hidden")(joined)
    return keras.layers.Concatenate(name="known_ahead_join")([joined, hidden])


def tabular_stem(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any]) -> Any:
    """Numeric inputs as they are, categorical ones through a small embedding, tensors flattened,
    text through the text stem (``hp``: its meta-parameters)."""
    parts = [inputs[name] for name in spec.numeric]
    for name, size in spec.categorical.items():
        dim = min(16, int(math.ceil(math.sqrt(size))) + 1)
        embedded = keras.layers.Embedding(size, dim, name=f"embed_{name}")(inputs[name])
        parts.append(keras.layers.Flatten(name=f"flat_{name}")(embedded))
    parts += [keras.layers.Flatten(name=f"flat_{name}")(inputs[name]) for name in spec.tensors]
    if spec.texts:
        parts += [text_stem(inputs[name], inputs.get(spec.text_weights.get(name, "")), name, size, hp, regularizer(hp))
                  for name, (_, size) in spec.texts.items()]
    if not parts:
        raise ValueError("no input features")
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="stem")(parts)


def conv_bn_act(x: Any, filters: int, kernel: int, strides: int, hp: Mapping[str, Any], name: str,
                activation: Optional[str] = "relu") -> Any:
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                            kernel_initializer=KERNEL_INITIALIZER, kernel_regularizer=regularizer(hp),
                            name=f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.Activation(activation, name=f"{name}_act")(x) if activation else x


def image_stem(x: Any, filters: int, hp: Mapping[str, Any], side: int) -> Tuple[Any, int]:
    """Adapts to the input. ``hp["stem"]``: "small" (3x3 stride 1, keeps the resolution), "imagenet"
    (7x7 stride 2 and a max pool) or "auto" (small for images up to 64 px). Returns (tensor, side)."""
    small = hp.get("stem", "auto") == "small" or (hp.get("stem", "auto") == "auto" and side <= 64)
    if small:
        return conv_bn_act(x, filters, 3, 1, hp, "stem"), side
    x = conv_bn_act(x, filters, 7, 2, hp, "stem")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    return x, math.ceil(side / 4)


def downsample_stride(side: int) -> int:
    """Stride 2 while the feature map is larger than 2x2, else 1 (so 8x8 digits survive deep tables)."""
    return 2 if side > 2 else 1


def scaled(filters: int, width: float, divisor: int = 8) -> int:
    """Filters scaled by a width multiplier, rounded to a multiple of ``divisor`` (at least one)."""
    return max(divisor, int(filters * width + divisor / 2) // divisor * divisor)


def embedding_endpoint(x: Any) -> Any:
    """The learner's output as a named vector: image maps pooled, sequences flattened."""
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif len(x.shape) == 3:
        x = keras.layers.Flatten(name="flatten")(x)
    return keras.layers.Activation("linear", name=EMBEDDING)(x)


STEPS = "_steps"  # a decoder's per-step head layer: its name is the output's plus this


def forecast_head_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer whose kernel and bias make a forecast head's output: its Dense, or a decoder's
    per-step Dense (whose Flatten carries the output's name)."""
    names = {layer.name for layer in model.layers}
    return model.get_layer(PREDICTIONS + STEPS if PREDICTIONS + STEPS in names else PREDICTIONS)


def _single_head(x: Any, task: str, units: int, name: str, zero_start: bool = False) -> Any:
    if task == "binary":
        return keras.layers.Dense(1, activation="sigmoid", name=name)(x)
    if task == "multiclass":
        return keras.layers.Dense(units, activation="softmax", name=name)(x)
    if task == "multilabel":
        return keras.layers.Dense(units, activation="sigmoid", name=name)(x)
    if task == "regression":
        return keras.layers.Dense(1, name=name)(x)
    if task == "forecast":
        start = "zeros" if zero_start else "glorot_uniform"  # Keras' default
        if len(x.shape) == 3:  # a decoder's per-step output [T, units] (seq2seq)
            x = keras.layers.TimeDistributed(keras.layers.Dense(1, kernel_initializer=start), name=name + STEPS)(x)
            return keras.layers.Flatten(name=name)(x)
        return keras.layers.Dense(units, kernel_initializer=start, name=name)(x)
    raise ValueError(f"no head for task '{task}'")


def task_head(x: Any, head: HeadSpec) -> Any:
    if head.task == "multitask":
        if not head.subheads:
            raise ValueError("multitask needs named sub-heads")
        x = embedding_endpoint(x)
        return {name: _single_head(x, task, units, name) for name, task, units in head.subheads}
    if head.task == "forecast" and len(x.shape) == 3:
        return _single_head(x, head.task, head.units, PREDICTIONS, head.zero_start)  # per-step decoder states
    return _single_head(embedding_endpoint(x), head.task, head.units, PREDICTIONS, head.zero_start)


LOSSES = {"binary": "binary_crossentropy", "multiclass": "sparse_categorical_crossentropy",
           "multilabel": "binary_crossentropy", "regression": "mse", "forecast": "mse"}


def task_metrics(task: str) -> list:
    if task == "binary":
        return [keras.metrics.AUC(name="auc"), "binary_accuracy"]
    if task == "multiclass":
        return ["sparse_categorical_accuracy"]
    if task == "multilabel":
        return [keras.metrics.AUC(name="auc", multi_label=True), "binary_accuracy"]
    return ["mae", keras.metrics.RootMeanSquaredError(name="root_mean_squared_error")]


def compile_for_task(model: keras.Model, head: HeadSpec, learning_rate: float) -> keras.Model:
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    if head.task == "anomaly":
        model.compile(optimizer=optimizer)  # the autoencoder adds its reconstruction loss itself
    elif head.task == "multitask":
        model.compile(optimizer=optimizer,
                      loss={name: LOSSES[task] for name, task, _ in head.subheads},
                      loss_weights={name: head.loss_weights.get(name, 1.0) for name, _, _ in head.subheads},
                      metrics={name: task_metrics(task) for name, task, _ in head.subheads})
    else:
        model.compile(optimizer=optimizer, loss=LOSSES[head.task], metrics=task_metrics(head.task))
    return model
