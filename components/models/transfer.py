"""Transfer learning as the Keras guide teaches it: a pretrained base, frozen, with a new head for this
task (phase 1), then the base's top layers unfrozen at a learning rate ten times lower (phase 2).
BatchNorm layers stay frozen and the base runs in inference mode in both phases.

Bases: a Keras application (``keras:mobilenet_v2``, ``keras:resnet50``, ``keras:efficientnet_b0``)
with ImageNet weights read from a file (``fetch_imagenet_weights`` puts Keras' own download there),
or the stem and learner of a model this project trained (its ``embedding`` endpoint).
"""
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import tf_keras as keras

from components.models.base import EMBEDDING, FeatureSpec, HeadSpec, compile_for_task, model_inputs, task_head
from components.models.families import KERAS_BASES, KERAS_PREFIX, MODELS_PREFIX, resolve_hparams

# Keras application class and how it wants its 0-255 RGB pixels: ``pixels * scale + offset`` ("caffe":
# BGR with ImageNet's channel means subtracted). The Transform gives pixels / 255.
_APPLICATIONS = {"mobilenet_v2": ("MobileNetV2", "tf"), "resnet50": ("ResNet50", "caffe"),
                 "efficientnet_b0": ("EfficientNetB0", "raw")}
_CAFFE_MEANS = (103.939, 116.779, 123.68)  # B, G, R
BASE_NAME = "base"
DOWNLOAD_TIMEOUT_S = 60


class WeightsError(ValueError):
    """Pretrained weights that cannot be had (a missing file, no network): one line."""


def application(name: str, size: int, weights: Optional[str] = None) -> keras.Model:
    """The headless application at ``size`` x ``size``, globally average-pooled; ``weights``: a file
    (from ``fetch_imagenet_weights`` or a test), "imagenet" (Keras' loader) or None (random)."""
    if name not in _APPLICATIONS:
        raise WeightsError(f"{KERAS_PREFIX}{name}: choose one of {', '.join(KERAS_PREFIX + b for b in KERAS_BASES)}")
    builder = getattr(keras.applications, _APPLICATIONS[name][0])
    base = builder(include_top=False, weights="imagenet" if weights == "imagenet" else None,
                   input_shape=(size, size, 3), pooling="avg")
    if weights and weights != "imagenet":
        if not Path(weights).is_file():
            raise WeightsError(f"{weights}: no such weights file")
        try:
            base.load_weights(weights)
        except (ValueError, OSError) as e:
            raise WeightsError(f"{weights}: not weights of {KERAS_PREFIX}{name} ({str(e).splitlines()[0][:120]})") \
                from None
    base._name = BASE_NAME
    return base


def fetch_imagenet_weights(name: str, target: Path) -> Path:
    """ImageNet weights of a Keras application, fetched once by Keras' own loader and kept at
    ``target`` as a weights file; an unreachable download is one line."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    import socket

    previous, timeout = os.environ.get("KERAS_HOME"), socket.getdefaulttimeout()
    os.environ["KERAS_HOME"] = str(target.parent / "keras")  # where Keras' get_file caches downloads
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # Keras' loader sets none: a silent network would hang
    try:
        base = application(name, 224, "imagenet")
    except Exception as e:  # noqa: BLE001 - urllib, HTTP and SSL errors all mean: no weights from the network
        reason = str(e).strip().splitlines()[0][:220] if str(e).strip() else type(e).__name__
        raise WeightsError(f"cannot download ImageNet weights for {KERAS_PREFIX}{name} ({reason}); give --weights "
                           f"FILE or put the file at {target}") from None
    finally:
        socket.setdefaulttimeout(timeout)
        if previous is None:
            os.environ.pop("KERAS_HOME", None)
        else:
            os.environ["KERAS_HOME"] = previous
    base.save_weights(str(target))
    return target


def registered_base(model_dir: str) -> keras.Model:
    """A model of ours, from its inputs to its ``embedding`` endpoint (stem and learner, no head)."""
    model = keras.models.load_model(model_dir, compile=False)
    base = keras.Model(model.inputs, model.get_layer(EMBEDDING).output, name=BASE_NAME)
    return base


def _preprocess(x: Any, name: str) -> Any:
    """From the Transform's pixels / 255 to what the application was trained on."""
    mode = _APPLICATIONS[name][1]
    if mode == "tf":  # [-1, 1]
        return keras.layers.Rescaling(2.0, offset=-1.0, name="to_base_range")(x)
    x = keras.layers.Rescaling(255.0, name="to_base_range")(x)
    if mode == "caffe":  # RGB -> BGR, means subtracted: a fixed 1x1 convolution (TF Lite friendly)
        swap = keras.layers.Conv2D(3, 1, use_bias=True, trainable=False, name="to_bgr_centred")
        x = swap(x)
        kernel = np.zeros((1, 1, 3, 3), np.float32)
        for source, target in ((0, 2), (1, 1), (2, 0)):
            kernel[0, 0, source, target] = 1.0
        swap.set_weights([kernel, -np.asarray(_CAFFE_MEANS, np.float32)])
    return x


def build_model(spec: FeatureSpec, head: HeadSpec, hparams: Mapping[str, Any], pretrained: Mapping[str, Any],
                augment: Sequence[str] = ()) -> Tuple[keras.Model, keras.Model]:
    """(model, base): inputs -> augmentation -> (preprocessing) -> frozen base -> dropout -> head."""
    from components.image_layers import augmentation

    hp = resolve_hparams("transfer", hparams)
    inputs = model_inputs(spec)
    source = pretrained["source"]
    if source.startswith(KERAS_PREFIX):
        name, shape = spec.single_tensor(3, "transfer")
        base = application(source[len(KERAS_PREFIX):], shape[0], pretrained.get("weights"))
        x = inputs[name]
        layers = augmentation(augment, hp["seed"]) if augment else None
        x = layers(x) if layers is not None else x
        x = _preprocess(x, source[len(KERAS_PREFIX):])
        features = base(x, training=False)
    elif source.startswith(MODELS_PREFIX):
        base = registered_base(pretrained["model_dir"])
        missing = sorted(set(base.input_names) - set(inputs))
        if missing:
            raise ValueError(f"{source}: the model takes {', '.join(base.input_names)}; this run's Transform gives "
                             f"{', '.join(sorted(inputs))}")
        for name in base.input_names:
            if tuple(base.get_layer(name).output.shape[1:]) != tuple(inputs[name].shape[1:]):
                raise ValueError(f"{source}: input {name} has shape {list(base.get_layer(name).output.shape[1:])}; "
                                 f"this run gives {list(inputs[name].shape[1:])}")
        feed = dict(inputs)
        layers = augmentation(augment, hp["seed"]) if augment else None
        if layers is not None:
            feed = {k: layers(v) if len(v.shape) == 4 else v for k, v in feed.items()}
        features = base([feed[name] for name in base.input_names], training=False)
    else:
        raise ValueError(f"--pretrained {source!r}: give {KERAS_PREFIX}NAME or {MODELS_PREFIX}NAME@ALIAS|VERSION")
    base.trainable = False
    if hp["dropout"] > 0:
        features = keras.layers.Dropout(hp["dropout"], name="head_dropout")(features)
    model = keras.Model(inputs=inputs, outputs=task_head(features, head), name=f"transfer_{head.task}")
    return compile_for_task(model, head, hp["learning_rate"]), base


def unfreeze_top(model: keras.Model, base: keras.Model, layers: int, head: HeadSpec, learning_rate: float) -> int:
    """Phase 2: the base's top ``layers`` layers with weights become trainable (BatchNorm stays
    frozen); recompiled at ``learning_rate``. Returns how many layers were unfrozen."""
    base.trainable = True
    weighted = [layer for layer in base.layers if layer.weights]
    unfrozen = 0
    for i, layer in enumerate(weighted):
        trainable = i >= len(weighted) - layers and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        unfrozen += int(trainable)
    compile_for_task(model, head, learning_rate)
    return unfrozen


def weights_digest(model: keras.Model) -> str:
    """A digest of a model's weights, to show a frozen base stayed as it was."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.asarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:16]


def describe(pretrained: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in pretrained.items() if k in ("source", "weights", "model_dir", "version")}
