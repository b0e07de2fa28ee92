"""The Evaluator's TFMA config: the task's metrics, a value threshold and a change threshold
against the baseline (the latest blessed model older than the candidate)."""
from typing import Sequence

import tensorflow_model_analysis as tfma

from components.features import transformed_name
from components.tasks import TaskSpec

# TFMA metric class -> the name it reports, for the gate metric.
_TFMA_CLASS_BY_NAME = {"auc": "AUC", "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
                       "root_mean_squared_error": "RootMeanSquaredError"}


def eval_config(task: TaskSpec, label: str, gate_threshold: float, max_metric_drop: float,
                slice_features: Sequence[str] = ()) -> tfma.EvalConfig:
    direction = (tfma.MetricDirection.HIGHER_IS_BETTER if task.higher_is_better
                 else tfma.MetricDirection.LOWER_IS_BETTER)
    bound = {"lower_bound": {"value": gate_threshold}} if task.higher_is_better \
        else {"upper_bound": {"value": gate_threshold}}
    allowed_change = -max_metric_drop if task.higher_is_better else max_metric_drop
    gate_class = _TFMA_CLASS_BY_NAME[task.gate_metric]
    metrics = []
    for class_name in task.tfma_metrics:
        config = tfma.MetricConfig(class_name=class_name)
        if class_name == gate_class:
            config.threshold.CopyFrom(tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(**bound),
                change_threshold=tfma.GenericChangeThreshold(direction=direction,
                                                             absolute={"value": allowed_change}),
            ))
        metrics.append(config)
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_tf_example",
            preprocessing_function_names=["transform_features"],
            label_key=transformed_name(label),
        )],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[f]) for f in slice_features],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )
