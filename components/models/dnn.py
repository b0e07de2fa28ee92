"""DNN family: a stack of dense blocks over the tabular stem, wide & deep by default (defaults:
``components.models.families.FAMILIES["dnn"]``)."""
from typing import Any, Dict, Mapping

import tf_keras as keras

from components.models.base import KERNEL_INITIALIZER, FeatureSpec, HeadSpec, batch_norm, regularizer, tabular_stem


def dense_block(x: Any, units: int, hp: Mapping[str, Any], name: str) -> Any:
    x = keras.layers.Dense(units, kernel_initializer=KERNEL_INITIALIZER, kernel_regularizer=regularizer(hp),
                           name=f"{name}_dense")(x)
    if hp["batch_norm"]:
        x = batch_norm(f"{name}_bn")(x)
    x = keras.layers.Activation(hp["activation"], name=f"{name}_act")(x)
    if hp["dropout"] > 0:
        x = keras.layers.Dropout(hp["dropout"], name=f"{name}_dropout")(x)
    return x


def build(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any], head: HeadSpec) -> Any:
    stem = x = tabular_stem(inputs, spec, hp)
    for index in range(hp["depth"]):
        # Each block narrows by `taper` (1.0 keeps the width), never below 4 units.
        x = dense_block(x, max(4, int(round(hp["width"] * hp["taper"] ** index))), hp, f"block{index}")
    if hp.get("wide", True) and hp["depth"] > 0:
        # wide & deep: the head also sees the stem (z-scored numbers, embeddings), so a linear model
        # is always within reach; on small tables that is often most of the signal.
        x = keras.layers.Concatenate(name="wide_and_deep")([stem, x])
    return x
