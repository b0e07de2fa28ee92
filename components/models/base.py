"""Shared parts of every model family: inputs from the Transform's feature spec, task heads, compile.

A model is stem -> learner -> task head. Families supply the stem and learner (their ``build``);
the heads, losses and metrics are shared and chosen by the task (``components.tasks``).
"""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Tuple

import tf_keras as keras

from components.tasks import TaskSpec


@dataclass(frozen=True)
class FeatureSpec:
    """What the Transform outputs for the model: transformed feature names by kind."""

    numeric: Tuple[str, ...]
    categorical: Mapping[str, int] = field(default_factory=dict)  # name -> vocabulary size incl. OOV


def model_inputs(spec: FeatureSpec) -> Dict[str, Any]:
    inputs = {name: keras.Input(shape=(1,), name=name, dtype="float32") for name in spec.numeric}
    inputs.update({name: keras.Input(shape=(1,), name=name, dtype="int64") for name in spec.categorical})
    return inputs


def tabular_stem(inputs: Dict[str, Any], spec: FeatureSpec) -> Any:
    """Numeric inputs as they are, categorical ones through a small embedding, concatenated."""
    parts = [inputs[name] for name in spec.numeric]
    for name, size in spec.categorical.items():
        dim = min(16, int(math.ceil(math.sqrt(size))) + 1)
        embedded = keras.layers.Embedding(size, dim, name=f"embed_{name}")(inputs[name])
        parts.append(keras.layers.Flatten(name=f"flat_{name}")(embedded))
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="stem")(parts)


def task_head(x: Any, task: TaskSpec, num_classes: int) -> Any:
    if task.name == "binary":
        return keras.layers.Dense(1, activation="sigmoid", name="predictions")(x)
    if task.name == "multiclass":
        return keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    if task.name == "regression":
        return keras.layers.Dense(1, activation=None, name="predictions")(x)
    raise ValueError(f"no head for task '{task.name}'")


def keras_metric(name: str) -> Any:
    if name == "auc":
        return keras.metrics.AUC(name="auc")
    if name == "root_mean_squared_error":
        return keras.metrics.RootMeanSquaredError(name=name)
    return name
