"""The Evaluator's TFMA config: each target's metrics; on the overall slice a value threshold (the
absolute bound) and a change threshold against the baseline (the latest blessed model older than the
candidate); on each slice of at least MIN_SLICE_ROWS eval rows a change threshold only: a slice is
judged against the baseline model, never against an absolute bound (a good model can score low on a
hard slice), and only when there is a baseline (TFX ignores change thresholds without one)."""
from typing import Mapping, Sequence, Tuple

import tensorflow_model_analysis as tfma

from components.features import transformed_name
from components.metrics import MAX_SLICE_DROP, MIN_SLICE_ROWS
from components.tasks import MULTI_TARGET_TASKS, TaskSpec, get_task

# The TFMA metric class that reports each gate metric.
_GATE_CLASS = {"auc": "AUC", "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
               "root_mean_squared_error": "RootMeanSquaredError", "mean_absolute_error": "MeanAbsoluteError"}


def _change(task: TaskSpec, allowed_drop: float) -> tfma.GenericChangeThreshold:
    direction = tfma.MetricDirection.HIGHER_IS_BETTER if task.higher_is_better else tfma.MetricDirection.LOWER_IS_BETTER
    return tfma.GenericChangeThreshold(direction=direction,
                                       absolute={"value": -allowed_drop if task.higher_is_better else allowed_drop})


def _thresholds(task: TaskSpec, bound: float, max_metric_drop: float,
                slice_features: Sequence[str]) -> list:
    """The overall slice: the bound and no worse than the baseline; each slice: no worse than the
    baseline by more than MAX_SLICE_DROP (or the overall allowance, when that is larger)."""
    value = {"lower_bound": {"value": bound}} if task.higher_is_better else {"upper_bound": {"value": bound}}
    overall = tfma.PerSliceMetricThreshold(
        slicing_specs=[tfma.SlicingSpec()],
        threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(**value),
                                       change_threshold=_change(task, max_metric_drop)))
    slice_drop = max(MAX_SLICE_DROP, max_metric_drop)  # a slice never gets less room than the whole
    sliced = [tfma.PerSliceMetricThreshold(
        slicing_specs=[tfma.SlicingSpec(feature_keys=[f]) for f in slice_features],
        threshold=tfma.MetricThreshold(change_threshold=_change(task, slice_drop)))] if slice_features else []
    return [overall, *sliced]


def _metrics(task: TaskSpec, bound: float, max_metric_drop: float, slice_features: Sequence[str] = ()) -> list:
    metrics = []
    for class_name in task.tfma_metrics:
        config = tfma.MetricConfig(class_name=class_name)
        if class_name == _GATE_CLASS[task.gate_metric]:
            config.per_slice_thresholds.extend(_thresholds(task, bound, max_metric_drop, slice_features))
        metrics.append(config)
    return metrics


def eval_config(targets: Sequence[Tuple[str, str]], task_name: str, gates: Mapping[str, float],
                max_metric_drop: float, slice_features: Sequence[str] = ()) -> tfma.EvalConfig:
    slicing = [tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[f]) for f in slice_features]
    common = {"signature_name": "serving_tf_example", "preprocessing_function_names": ["transform_features"]}
    if task_name in MULTI_TARGET_TASKS:  # one output per target, named after its label column
        model_spec = tfma.ModelSpec(label_keys={name: transformed_name(name) for name, _ in targets}, **common)
        metrics_specs = [tfma.MetricsSpec(output_names=[name],
                                          metrics=_metrics(get_task(subtask), gates[name], max_metric_drop,
                                                           slice_features))
                         for name, subtask in targets]
    else:
        (label, _), task = targets[0], get_task(task_name)
        model_spec = tfma.ModelSpec(label_key=transformed_name(label), **common)
        if task.prediction_key:
            model_spec.prediction_key = task.prediction_key
        metrics_specs = [tfma.MetricsSpec(metrics=_metrics(task, gates[label], max_metric_drop, slice_features))]
    config = tfma.EvalConfig(model_specs=[model_spec], slicing_specs=slicing, metrics_specs=metrics_specs,
                             options=tfma.Options(min_slice_size={"value": MIN_SLICE_ROWS}))
    if task_name == "multilabel":
        # The model's compile-time metrics are on its stacked [labels] output, which TFMA (labels by
        # output name) cannot feed; the per-label metrics above replace them.
        config.options.include_default_metrics.value = False
    return config
