"""A fresh evaluation of pushed SavedModels on the same raw tf.Examples, for the promotion gate.

Each model reads the rows through its own signatures, as TFMA does in the pipeline:
``transform_features`` gives the encoded label (its own vocabulary), ``serving_tf_example`` the
predictions. The metric per target is the task's gate metric, overall and per value of each slice
feature. TensorFlow, no TFX or Beam: a promotion takes seconds.
"""
import glob
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from components import gate_metrics as metrics
from components.features import PREDICTIONS
from components.gate_metrics import OVERALL
from components.tasks import MULTI_TARGET_TASKS, get_task

MAX_ROWS = 100_000
BATCH = 1024


class EvaluationError(Exception):
    pass


@dataclass(frozen=True)
class SliceScore:
    value: Optional[float]  # None when the metric is undefined on the slice (e.g. AUC of one class)
    count: int


def read_examples(path: str, max_rows: int = MAX_ROWS) -> List[bytes]:
    """Serialized tf.Examples from a TFRecord file or a directory of them (gzip or not)."""
    import tensorflow as tf

    from serving.codec.examples import read_records

    files = sorted(glob.glob(os.path.join(path, "*"))) if os.path.isdir(path) else [path]
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise EvaluationError(f"{path}: no TFRecord files to evaluate on")
    try:
        records = read_records(files, max_rows)
    except tf.errors.OpError as e:
        raise EvaluationError(f"{path}: not readable as TFRecords ({e.message.splitlines()[0]})") from None
    if not records:
        raise EvaluationError(f"{path}: no examples")
    return records


def _metric(name: str, labels: np.ndarray, predictions: np.ndarray) -> Optional[float]:
    try:
        return metrics.value(name, labels, predictions)
    except ValueError:
        raise EvaluationError(f"no fresh evaluation for metric '{name}'") from None


def _slice_values(examples: Sequence[bytes], features: Sequence[str]) -> Dict[str, List[Optional[str]]]:
    from serving.codec.examples import decode

    values: Dict[str, List[Optional[str]]] = {f: [] for f in features}
    for record in examples:
        row = decode(record, features)
        for name in features:
            values[name].append(str(row[name][0]) if row[name] else None)
    return values


def _run(model_dir: str, examples: Sequence[bytes], label_keys: Sequence[str],
         output_keys: Sequence[str]) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    import tensorflow as tf

    from components.features import transformed_name

    model = tf.saved_model.load(model_dir)
    predict, transform = model.signatures["serving_tf_example"], model.signatures["transform_features"]
    labels: Dict[str, list] = {k: [] for k in label_keys}
    outputs: Dict[str, list] = {k: [] for k in output_keys}
    for start in range(0, len(examples), BATCH):
        batch = tf.constant(list(examples[start:start + BATCH]))
        transformed, predicted = transform(examples=batch), predict(examples=batch)
        for key in label_keys:
            labels[key].append(transformed[transformed_name(key)].numpy())
        for key in output_keys:
            if key not in predicted:
                raise EvaluationError(f"{model_dir}: no output '{key}' (outputs: {', '.join(sorted(predicted))})")
            outputs[key].append(predicted[key].numpy())
    return ({k: np.concatenate(v) for k, v in labels.items()}, {k: np.concatenate(v) for k, v in outputs.items()})


def evaluate(model_dir: str, examples: Sequence[bytes], targets: Sequence[Tuple[str, str]], task_name: str,
             slice_features: Sequence[str] = (), min_slice_rows: int = 1) -> Dict[str, Dict[str, SliceScore]]:
    """target label -> slice name (``overall`` or ``feature=value``) -> the gate metric."""
    multi = task_name in MULTI_TARGET_TASKS
    output_of = {label: label if multi else (get_task(task_name).prediction_key or PREDICTIONS)
                 for label, _ in targets}
    labels, outputs = _run(model_dir, examples, [label for label, _ in targets], sorted(set(output_of.values())))
    masks = {OVERALL: np.ones(len(examples), bool)}
    for feature, values in _slice_values(examples, slice_features).items():
        for value in sorted({v for v in values if v is not None}):
            mask = np.array([v == value for v in values])
            if mask.sum() >= min_slice_rows:
                masks[f"{feature}={value}"] = mask
    scores: Dict[str, Dict[str, SliceScore]] = {}
    for label, subtask in targets:
        metric = get_task(subtask).gate_metric
        scores[label] = {name: SliceScore(_metric(metric, labels[label][mask], outputs[output_of[label]][mask]),
                                          int(mask.sum()))
                         for name, mask in masks.items()}
    return scores
