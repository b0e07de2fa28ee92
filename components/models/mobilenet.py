"""MobileNet v2 family: inverted residual blocks with linear bottlenecks and a width multiplier
(alpha); the edge default. Strides adapt so that small images keep a feature map."""
from typing import Any, Dict, Mapping

import tf_keras as keras

from components.models import base
from components.models.base import KERNEL_INITIALIZER, FeatureSpec, HeadSpec

# (expansion t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper.
INVERTED_RESIDUALS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                      (6, 160, 3, 2), (6, 320, 1, 1))
STEM_FILTERS, LAST_FILTERS = 32, 1280


def _inverted_residual(x: Any, expansion: int, filters: int, strides: int, hp: Mapping[str, Any], name: str) -> Any:
    in_filters = x.shape[-1]
    y = x
    if expansion != 1:
        y = base.conv_bn_act(y, in_filters * expansion, 1, 1, hp, f"{name}_expand", activation="relu6")
    y = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                                     depthwise_initializer=KERNEL_INITIALIZER, name=f"{name}_depthwise")(y)
    y = base.batch_norm(f"{name}_depthwise_bn")(y)
    y = keras.layers.Activation("relu6", name=f"{name}_depthwise_act")(y)
    y = keras.layers.Conv2D(filters, 1, use_bias=False, kernel_initializer=KERNEL_INITIALIZER,
                            kernel_regularizer=base.regularizer(hp), name=f"{name}_project")(y)
    y = base.batch_norm(f"{name}_project_bn")(y)  # linear bottleneck: no activation
    if strides == 1 and in_filters == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def build(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any], head: HeadSpec) -> Any:
    name, shape = spec.single_tensor(3, "mobilenet")
    alpha = hp["alpha"]
    x, side = base.image_stem(inputs[name], base.scaled(STEM_FILTERS, alpha), hp, shape[0])
    for group, (expansion, channels, repeats, first_stride) in enumerate(INVERTED_RESIDUALS[:hp["groups"]]):
        for index in range(repeats):
            strides = base.downsample_stride(side) if (index == 0 and first_stride == 2) else 1
            side = (side + 1) // 2 if strides == 2 else side
            x = _inverted_residual(x, expansion, base.scaled(channels, alpha), strides, hp, f"g{group}b{index}")
    return base.conv_bn_act(x, base.scaled(hp["last_filters"], max(1.0, alpha)), 1, 1, hp, "last", activation="relu6")
