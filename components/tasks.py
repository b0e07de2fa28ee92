"""The learning tasks the pipeline runs: label encoding, TFMA metrics and what blesses a model.

One table, read by the Transform (label encoding), the Trainer (heads) and the Evaluator. Pure
Python so that the CLI can validate a task without importing TensorFlow. Model-level losses and
Keras metrics per task live with the heads (``components.models.base``).
"""
from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class TaskSpec:
    name: str
    label_encoding: str  # "binary" (0/1), "vocabulary" (class index), "float", or "per_target"
    tfma_metrics: Tuple[str, ...]  # TFMA metric class names computed by the Evaluator
    gate_metric: str  # the TFMA metric the blessing thresholds apply to
    higher_is_better: bool
    prediction_key: Optional[str] = None  # the model output TFMA scores, when it has several


TASKS = {spec.name: spec for spec in (
    # MeanLabel: the positive share of a slice; 0 or 1 means one class, where AUC is undefined
    TaskSpec("binary", "binary", ("ExampleCount", "AUC", "BinaryAccuracy", "Precision", "Recall", "MeanLabel"),
             "auc", True),
    TaskSpec("multiclass", "vocabulary", ("ExampleCount", "SparseCategoricalAccuracy"),
             "sparse_categorical_accuracy", True),
    TaskSpec("regression", "float", ("ExampleCount", "MeanSquaredError", "MeanAbsoluteError",
                                     "RootMeanSquaredError"), "root_mean_squared_error", False),
    # Multi-step: the label is a vector of the next `horizon` values, scaled like the input window.
    TaskSpec("forecast", "float", ("ExampleCount", "MeanAbsoluteError", "MeanSquaredError"), "mean_absolute_error",
             False),
    # Autoencoder: trained on normal rows (label 0); AUC of its anomaly probability against the label.
    TaskSpec("anomaly", "binary", ("ExampleCount", "AUC", "Precision", "Recall", "MeanLabel"), "auc", True,
             prediction_key="anomaly_probability"),
    # Several named heads, each with its own sub-task (targets), metrics and gate.
    TaskSpec("multitask", "per_target", (), "", True),
    # One sigmoid per label column (each 0/1); evaluated and gated per label like binary heads.
    TaskSpec("multilabel", "per_target", (), "", True),
)}
SINGLE_TARGET_TASKS = ("binary", "multiclass", "regression", "anomaly", "forecast")
MULTI_TARGET_TASKS = ("multitask", "multilabel")


class UnknownTaskError(ValueError):
    pass


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task '{name}'; choose one of: {', '.join(sorted(TASKS))}") from None
