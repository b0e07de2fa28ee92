"""A simple baseline on the very same split: scikit-learn's logistic regression (binary,
multiclass) or ridge (regression) on standardized numbers and one-hot categories, scored with the
task's gate metric. The run summary and MLflow show it beside the model's: a model that does not
beat a linear baseline on a small table is worth a second look."""
import glob
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from components import metrics
from components.tasks import get_task
from core.config import PipelineConfig
from core.run_report import RunReport
from release.run_files import examples_uri

MAX_ROWS = 200_000  # per split: a sample beyond this (the baseline is a yardstick, not a model)
MAX_CATEGORIES = 50  # one-hot columns per categorical feature (the most frequent values)


@dataclass(frozen=True)
class Baseline:
    model: str  # what was fitted
    metric: str
    value: Optional[float]


def _rows(uri: str, split: str) -> List[Dict[str, list]]:
    from serving.examples import decode, read_records

    files = sorted(glob.glob(os.path.join(uri, f"Split-{split}", "*")))
    return [decode(record) for record in read_records(files, MAX_ROWS)]


def _matrix(train: List[Dict[str, list]], evaluation: List[Dict[str, list]], kinds: Dict[str, str]):
    """Standardized numbers (missing -> 0, the mean) and one-hot categories, fitted on train."""
    blocks_train, blocks_eval = [], []
    for key, kind in sorted(kinds.items()):
        if kind in ("numeric", "integer"):
            def column(rows, key=key):
                return np.array([float(r[key][0]) if r.get(key) else np.nan for r in rows])
            x_train, x_eval = column(train), column(evaluation)
            mean, std = np.nanmean(x_train), np.nanstd(x_train) or 1.0
            blocks_train.append(np.nan_to_num((x_train - mean) / std)[:, None])
            blocks_eval.append(np.nan_to_num((x_eval - mean) / std)[:, None])
        else:
            def values(rows, key=key):
                return [str(r[key][0]).strip().lower() if r.get(key) else "" for r in rows]
            v_train, v_eval = values(train), values(evaluation)
            counts: Dict[str, int] = {}
            for v in v_train:
                counts[v] = counts.get(v, 0) + 1
            top = sorted(counts, key=lambda v: -counts[v])[:MAX_CATEGORIES]
            blocks_train.append(np.array([[v == t for t in top] for v in v_train], dtype=float))
            blocks_eval.append(np.array([[v == t for t in top] for v in v_eval], dtype=float))
    return np.hstack(blocks_train), np.hstack(blocks_eval)


def fit_baseline(config: PipelineConfig, report: RunReport) -> Optional[Baseline]:
    """The baseline's gate metric on the eval split; None where there is none to fit (images,
    sequences, several targets, anomaly detection, no examples)."""
    uri = examples_uri(report)
    if uri is None or config.table is None or len(config.targets) != 1 or config.task_name not in (
            "binary", "multiclass", "regression"):
        return None
    label = config.targets[0][0]
    kinds = {k: v for k, v in config.table.kinds.items() if k != label and v != "datetime"}
    if not kinds:
        return None
    train, evaluation = _rows(uri, "train"), _rows(uri, "eval")
    train = [r for r in train if r.get(label)]
    evaluation = [r for r in evaluation if r.get(label)]
    if not train or not evaluation:
        return None
    x_train, x_eval = _matrix(train, evaluation, kinds)
    task = get_task(config.task_name)
    y_train = [str(r[label][0]) for r in train]
    y_eval = [str(r[label][0]) for r in evaluation]
    if task.name == "regression":
        from sklearn.linear_model import RidgeCV

        model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x_train, np.array(y_train, float))
        value = metrics.value(task.gate_metric, np.array(y_eval, float), model.predict(x_eval))
        return Baseline("ridge", task.gate_metric, value)
    from sklearn.linear_model import LogisticRegression

    classes = sorted(set(y_train))
    if len(classes) < 2:
        return None
    model = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    probabilities = model.predict_proba(x_eval)
    known = [classes.index(y) if y in classes else -1 for y in y_eval]
    if task.name == "binary":  # scores of the class TFX encodes as 1 (0/1 labels, or the positive string)
        positive = "1" if "1" in classes else classes[-1]
        labels = np.array([1 if y == positive else 0 for y in y_eval])
        return Baseline("logistic regression", "auc", metrics.value("auc", labels,
                                                                    probabilities[:, classes.index(positive)]))
    return Baseline("logistic regression", task.gate_metric, metrics.value(task.gate_metric, np.array(known),
                                                                           probabilities))
