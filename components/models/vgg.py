"""VGG family: groups of 3x3 convs (11/16/19 tables) scaled by a width multiplier, a small dense top."""
from typing import Any, Dict, Mapping

import tf_keras as keras

from components.models.base import FeatureSpec, HeadSpec, conv_bn_act, downsample_stride, scaled
from components.models.dnn import dense_block

# depth -> convolutions per group; the groups' filters are FILTERS.
GROUPS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
FILTERS = (64, 128, 256, 512, 512)


def build(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any], head: HeadSpec) -> Any:
    if hp["depth"] not in GROUPS:
        raise ValueError(f"vgg depth {hp['depth']}: choose one of {sorted(GROUPS)}")
    name, shape = spec.single_tensor(3, "vgg")
    x, side = inputs[name], shape[0]
    for group, (convs, filters) in enumerate(zip(GROUPS[hp["depth"]], FILTERS)):
        for conv in range(convs):
            x = conv_bn_act(x, scaled(filters, hp["width"]), 3, 1, hp, f"group{group}_conv{conv}")
        if downsample_stride(side) == 2:
            x = keras.layers.MaxPooling2D(2, name=f"group{group}_pool")(x)
            side //= 2
    x = keras.layers.Flatten(name="top_flatten")(x)
    for index in range(2):
        x = dense_block(x, hp["top_units"], {**hp, "batch_norm": False, "activation": "relu"}, f"top{index}")
    return x
