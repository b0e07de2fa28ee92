"""build_model(): a family name, a task, the Transform's feature spec and hyperparameters -> a
compiled Keras model (stem and learner from the family, the head from the task)."""
import importlib
from typing import Any, Mapping

import tf_keras as keras

from components.models.base import FeatureSpec, keras_metric, model_inputs, task_head
from components.models.registry import get_family, resolve_hparams
from components.tasks import get_task


def build_model(family_name: str, task_name: str, spec: FeatureSpec, hparams: Mapping[str, Any],
                num_classes: int = 2) -> keras.Model:
    family = get_family(family_name, task_name)
    task = get_task(task_name)
    hp = resolve_hparams(family.name, hparams)
    inputs = model_inputs(spec)
    learner = importlib.import_module(family.module).build(inputs, spec, hp)
    outputs = task_head(learner, task, num_classes)
    model = keras.Model(inputs=inputs, outputs=outputs, name=f"{family.name}_{task.name}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hp["learning_rate"]),
        loss=task.loss,
        metrics=[keras_metric(name) for name in task.keras_metrics],
    )
    return model
