"""The learning tasks: what each one trains with, how TFMA scores it and what blesses a model.

One table, read by the Transform (label encoding), the model heads, the Trainer and the Evaluator.
Pure Python so that the CLI can validate a task without importing TensorFlow.
"""
from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class TaskSpec:
    name: str
    label_encoding: str  # "binary" (0/1), "vocabulary" (class index) or "float"
    loss: str  # tf_keras loss name
    keras_metrics: Tuple[str, ...]  # tracked per epoch by the Trainer
    tfma_metrics: Tuple[str, ...]  # TFMA metric class names computed by the Evaluator
    gate_metric: str  # the TFMA metric the blessing thresholds apply to
    higher_is_better: bool


TASKS = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="binary",
            label_encoding="binary",
            loss="binary_crossentropy",
            keras_metrics=("auc", "binary_accuracy"),
            tfma_metrics=("ExampleCount", "AUC", "BinaryAccuracy", "Precision", "Recall"),
            gate_metric="auc",
            higher_is_better=True,
        ),
        TaskSpec(
            name="multiclass",
            label_encoding="vocabulary",
            loss="sparse_categorical_crossentropy",
            keras_metrics=("sparse_categorical_accuracy",),
            tfma_metrics=("ExampleCount", "SparseCategoricalAccuracy"),
            gate_metric="sparse_categorical_accuracy",
            higher_is_better=True,
        ),
        TaskSpec(
            name="regression",
            label_encoding="float",
            loss="mse",
            keras_metrics=("mae", "root_mean_squared_error"),
            tfma_metrics=("ExampleCount", "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError"),
            gate_metric="root_mean_squared_error",
            higher_is_better=False,
        ),
    )
}


class UnknownTaskError(ValueError):
    pass


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task '{name}'; choose one of: {', '.join(sorted(TASKS))}") from None
