"""ResNet family: v1 (post-activation) and v2 (pre-activation), basic and bottleneck blocks,
18/34/50 tables, a width multiplier, and a stem that keeps small images' resolution."""
from typing import Any, Dict, Mapping

import tf_keras as keras

from components.models import base
from components.models.base import KERNEL_INITIALIZER, FeatureSpec, HeadSpec

# depth -> (block kind, blocks per group); the groups' filters are FILTERS.
TABLES = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}
FILTERS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4


def _conv(x: Any, filters: int, kernel: int, strides: int, hp: Mapping[str, Any], name: str) -> Any:
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                               kernel_initializer=KERNEL_INITIALIZER, kernel_regularizer=base.regularizer(hp),
                               name=name)(x)


def _bn_relu(x: Any, name: str) -> Any:
    return keras.layers.Activation("relu", name=f"{name}_relu")(base.batch_norm(f"{name}_bn")(x))


def _block(x: Any, filters: int, strides: int, kind: str, version: int, hp: Mapping[str, Any], name: str) -> Any:
    out_filters = filters * (BOTTLENECK_EXPANSION if kind == "bottleneck" else 1)
    kernels = ((1, filters), (3, filters), (1, out_filters)) if kind == "bottleneck" else ((3, filters), (3, filters))
    needs_projection = strides != 1 or x.shape[-1] != out_filters
    if version == 2:
        pre = _bn_relu(x, f"{name}_pre")
        shortcut = _conv(pre, out_filters, 1, strides, hp, f"{name}_proj") if needs_projection else x
        y = pre
        for index, (kernel, f) in enumerate(kernels):
            if index:
                y = _bn_relu(y, f"{name}_{index}")
            y = _conv(y, f, kernel, strides if index == (1 if kind == "bottleneck" else 0) else 1, hp,
                      f"{name}_conv{index}")
        return keras.layers.Add(name=f"{name}_add")([shortcut, y])
    shortcut = x
    if needs_projection:
        shortcut = base.conv_bn_act(x, out_filters, 1, strides, hp, f"{name}_proj", activation=None)
    y = x
    for index, (kernel, f) in enumerate(kernels):
        last = index == len(kernels) - 1
        stride = strides if index == (1 if kind == "bottleneck" else 0) else 1
        y = base.conv_bn_act(y, f, kernel, stride, hp, f"{name}_{index}", activation=None if last else "relu")
    return keras.layers.Activation("relu", name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([shortcut, y]))


def build(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any], head: HeadSpec) -> Any:
    if hp["depth"] not in TABLES:
        raise ValueError(f"resnet depth {hp['depth']}: choose one of {sorted(TABLES)}")
    if hp["version"] not in (1, 2):
        raise ValueError(f"resnet version {hp['version']}: choose 1 or 2")
    name, shape = spec.single_tensor(3, "resnet")
    kind, blocks = TABLES[hp["depth"]]
    x, side = base.image_stem(inputs[name], base.scaled(FILTERS[0], hp["width"]), hp, shape[0])
    for group, (count, filters) in enumerate(zip(blocks, FILTERS)):
        for index in range(count):
            strides = base.downsample_stride(side) if (group > 0 and index == 0) else 1
            side = (side + 1) // 2 if strides == 2 else side
            x = _block(x, base.scaled(filters, hp["width"]), strides, kind, hp["version"], hp, f"g{group}b{index}")
    if hp["version"] == 2:
        x = _bn_relu(x, "post")
    return x
