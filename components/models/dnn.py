"""DNN family: a stack of dense blocks over the tabular stem (defaults: ``registry.FAMILIES``)."""
from typing import Any, Dict, Mapping

import tf_keras as keras

from components.models.base import FeatureSpec, tabular_stem


def _dense_block(x: Any, units: int, hp: Mapping[str, Any], index: int) -> Any:
    regularizer = keras.regularizers.L1L2(l1=hp["l1"], l2=hp["l2"])
    x = keras.layers.Dense(units, kernel_regularizer=regularizer, name=f"dense_{index}")(x)
    if hp["batch_norm"]:
        x = keras.layers.BatchNormalization(name=f"bn_{index}")(x)
    x = keras.layers.Activation(hp["activation"], name=f"act_{index}")(x)
    if hp["dropout"] > 0:
        x = keras.layers.Dropout(hp["dropout"], name=f"dropout_{index}")(x)
    return x


def build(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any]) -> Any:
    x = tabular_stem(inputs, spec)
    for index in range(hp["depth"]):
        # Each block narrows by `taper` (1.0 keeps the width), never below 4 units.
        units = max(4, int(round(hp["width"] * hp["taper"] ** index)))
        x = _dense_block(x, units, hp, index)
    return x
