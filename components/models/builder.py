"""build_model(): a family name, the task's head, the Transform's feature spec and hyperparameters
-> a compiled Keras model (stem and learner from the family, the head from the task)."""
import importlib
from typing import Any, Mapping, Sequence

import tf_keras as keras

from components.image_layers import augmentation
from components.models.base import FeatureSpec, HeadSpec, compile_for_task, join_known_ahead, model_inputs, task_head
from components.models.families import TRANSFER_FAMILY, UnsupportedModelError, get_family, resolve_hparams


def build_model(family_name: str, head: HeadSpec, spec: FeatureSpec, hparams: Mapping[str, Any],
                augment: Sequence[str] = ()) -> keras.Model:
    """``augment``: training-only augmentation layers in front of the image input (``components.image_layers``)."""
    family = get_family(family_name, head.task)
    if family.name == TRANSFER_FAMILY:
        raise UnsupportedModelError(f"family '{TRANSFER_FAMILY}' is built from a pretrained base "
                                    "(components.models.transfer.build_model; --pretrained SOURCE)")
    hp = resolve_hparams(family.name, hparams)
    inputs = model_inputs(spec)
    module = importlib.import_module(family.module)
    if hasattr(module, "build_model"):  # a family that owns its outputs (the autoencoder)
        model = module.build_model(inputs, spec, hp, head)
    else:
        features = dict(inputs)
        layers = augmentation(augment, hp["seed"]) if augment else None
        if layers is not None:
            for name, shape in spec.tensors.items():
                if len(shape) == 3:
                    features[name] = layers(inputs[name])
        x = module.build(features, spec, hp, head)
        if spec.known_ahead:
            x = join_known_ahead(x, inputs, spec)
        model = keras.Model(inputs=inputs, outputs=task_head(x, head))
    model._name = f"{family.name}_{head.task}"
    return compile_for_task(model, head, hp["learning_rate"])
