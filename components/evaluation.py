"""The Evaluator's TFMA config: each target's metrics; on the overall slice a value threshold (the
absolute bound) and a change threshold against the baseline (the latest blessed model older than the
candidate); on each slice of at least MIN_SLICE_ROWS eval rows a change threshold only: a slice is
judged against the baseline model, never against an absolute bound (a good model can score low on a
hard slice), and only when there is a baseline (TFX ignores change thresholds without one).

TFMA computes every slice (``min_slice_size`` 1, so a small slice still shows its rows and metrics);
the executor then takes back the failures of slices under MIN_SLICE_ROWS eval rows (too few rows to
judge: shown, never gated) before TFX's blessing stands. TFMA itself cannot leave them out: with
``min_slice_size`` it drops a small slice's metrics and its validator then fails every threshold of
that metric as "Metric not found", the overall bound included."""
import os
import tempfile
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import component as tfx_evaluator
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_artifacts

from components.features import transformed_name
from components.gate_metrics import EVAL_ROWS, EVAL_ROWS_USED, MAX_SLICE_DROP, MIN_SLICE_ROWS
from components.tasks import MULTI_TARGET_TASKS, TaskSpec, get_task

MAX_EVAL_ROWS = 100_000  # TFMA's per-example metrics cost a Python call per row, metric and slice

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
    # Only the metrics above, not the model's compile-time Keras metrics as well: TFMA feeds those
    # one example at a time through Keras metric objects, 40% of the Evaluator's time (46.8 -> 28.4 s
    # on 20,000 rows), to repeat what the list already has; the eval loss is the Trainer's val_loss
    # (TFMA's own BinaryCrossEntropy does not clip: nan on any saturated prediction). A multilabel
    # model's compile-time metrics could not be fed anyway (one stacked output).
    return tfma.EvalConfig(model_specs=[model_spec], slicing_specs=slicing, metrics_specs=metrics_specs,
                           options=tfma.Options(min_slice_size={"value": 1},
                                                include_default_metrics={"value": False}))


def _sample(examples: Any, split: str, limit: int, target: str) -> Tuple[Any, int, int]:
    """The split's first ``limit`` records (ExampleGen leaves a split shuffled, so a uniform
    sample; the same one for candidate and baseline) as a new Examples artifact under ``target``;
    the artifact itself when the split is no larger. Returns (artifact, rows, rows used)."""
    from serving.codec.examples import read_records, record_dataset

    files = sorted(tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*")))
    records = read_records(files, limit + 1)
    if len(records) <= limit:
        return examples, len(records), len(records)
    rest = record_dataset(files).skip(limit + 1)
    rows = limit + 1 + sum(int(batch.shape[0]) for batch in rest.batch(8192))  # counted a batch per step
    sampled = standard_artifacts.Examples()
    sampled.uri = target
    sampled.split_names = artifact_utils.encode_split_names([split])
    for key in ("payload_format", "file_format"):
        if examples.has_custom_property(key):
            sampled.set_string_custom_property(key, examples.get_string_custom_property(key))
    os.makedirs(os.path.join(target, f"Split-{split}"), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(target, f"Split-{split}", "sample.gz"), "GZIP") as out:
        for record in records[:limit]:
            out.write(record)
    return sampled, rows, limit


def _key(slice_key: Any) -> bytes:
    return slice_key.SerializeToString(deterministic=True)


def _rows_by_slice_key(evaluation_uri: str) -> Dict[bytes, int]:
    """serialized slice key -> the candidate's eval rows on that slice (TFMA's ExampleCount)."""
    rows: Dict[bytes, int] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        for item in metrics_for_slice.metric_keys_and_values:
            if item.key.name == "example_count" and item.key.model_name != "baseline" \
                    and item.value.HasField("double_value"):
                rows[_key(metrics_for_slice.slice_key)] = int(item.value.double_value.value)
    return rows


def drop_unjudged(result: Any, rows: Mapping[bytes, int], min_rows: int = MIN_SLICE_ROWS) -> Any:
    """``result`` (a TFMA ValidationResult) without the failures of slices under ``min_rows`` eval
    rows (the overall slice is always judged); valid when nothing else failed."""
    from tensorflow_model_analysis.proto import validation_result_pb2

    kept = validation_result_pb2.ValidationResult()
    kept.CopyFrom(result)
    del kept.metric_validations_per_slice[:]
    for per_slice in result.metric_validations_per_slice:
        small = per_slice.slice_key.single_slice_keys and rows.get(_key(per_slice.slice_key), 0) < min_rows
        if not small:
            kept.metric_validations_per_slice.add().CopyFrom(per_slice)
    kept.validation_ok = result.validation_ok or not (
        kept.metric_validations_per_slice or kept.missing_slices or kept.missing_cross_slices
        or kept.missing_thresholds)
    return kept


def _judge_slices_by_size(evaluation_uri: str, blessing: Any) -> None:
    """Rewrites TFMA's validation result without the small slices' failures and, where that
    leaves nothing failed, blesses the model as TFX's executor would have (file and property)."""
    from tfx.components.evaluator import constants

    result = tfma.load_validation_result(evaluation_uri)
    if result.validation_ok:
        return
    kept = drop_unjudged(result, _rows_by_slice_key(evaluation_uri))
    if len(kept.metric_validations_per_slice) == len(result.metric_validations_per_slice):
        return
    path, = tf.io.gfile.glob(os.path.join(evaluation_uri, "validations*"))
    with tf.io.TFRecordWriter(path) as out:
        out.write(kept.SerializeToString())
    if kept.validation_ok and blessing is not None:
        tf.io.gfile.remove(os.path.join(blessing.uri, constants.NOT_BLESSED_FILE_NAME))
        with tf.io.gfile.GFile(os.path.join(blessing.uri, constants.BLESSED_FILE_NAME), "w") as f:
            f.write("")
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, constants.BLESSED_VALUE)


class SampledEvaluatorExecutor(tfx_evaluator_executor.Executor):
    """TFX's Evaluator on at most MAX_EVAL_ROWS rows of the eval split: TFMA's metrics cost a
    Python call per row, metric and slice (250,000 eval rows of a million-row table: 328 s with a
    baseline). Beyond the cap it reads a uniform sample; the evaluation says how many rows of how
    many (properties ``eval_rows`` and ``eval_rows_used``), and the run summary prints it. Slices
    under MIN_SLICE_ROWS eval rows are not gated (``_judge_slices_by_size``)."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        evaluation = artifact_utils.get_single_instance(output_dict["evaluation"])
        with tempfile.TemporaryDirectory(prefix="mlops-eval-sample-") as temp:
            sampled, rows, used = _sample(examples, "eval", MAX_EVAL_ROWS, temp)
            evaluation.set_int_custom_property(EVAL_ROWS, rows)
            evaluation.set_int_custom_property(EVAL_ROWS_USED, used)
            super().Do({**input_dict, "examples": [sampled]}, output_dict, exec_properties)
        if output_dict.get("blessing"):
            _judge_slices_by_size(evaluation.uri, artifact_utils.get_single_instance(output_dict["blessing"]))


class Evaluator(tfx_evaluator.Evaluator):
    """TFX's Evaluator (same spec, id and outputs) with SampledEvaluatorExecutor."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(SampledEvaluatorExecutor)
