"""CNN family: the basic stack of conv groups, each doubling the filters and pooling by two."""
from typing import Any, Dict, Mapping

import tf_keras as keras

from components.models.base import FeatureSpec, HeadSpec, conv_bn_act, downsample_stride


def build(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any], head: HeadSpec) -> Any:
    name, shape = spec.single_tensor(3, "cnn")
    x, side = inputs[name], shape[0]
    for group in range(hp["groups"]):
        for conv in range(hp["convs_per_group"]):
            x = conv_bn_act(x, hp["filters"] * 2 ** group, 3, 1, hp, f"group{group}_conv{conv}")
        if downsample_stride(side) == 2:
            x = keras.layers.MaxPooling2D(2, name=f"group{group}_pool")(x)
            side //= 2
        if hp["dropout"] > 0:
            x = keras.layers.Dropout(hp["dropout"], name=f"group{group}_dropout")(x)
    return x
