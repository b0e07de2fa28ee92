"""The gate metrics, one name each (TFMA's): what the Evaluator's thresholds name
(``components.tasks``), and what promotion's fresh evaluation and the edge parity gate compute
outside TFMA. Pure numpy, so the release path needs neither TFMA nor scikit-learn."""
from typing import Optional

import numpy as np

EVAL_ROWS, EVAL_ROWS_USED = "eval_rows", "eval_rows_used"  # the Evaluator's output: eval split rows, rows read

OVERALL = "overall"  # the slice of all rows (TFMA's empty slice key)
MIN_SLICE_ROWS = 10  # slices with fewer eval rows are shown but never gated (too few rows to judge)
MAX_SLICE_DROP = 0.05  # the most a slice's gate metric may worsen against the baseline model's
HIGHER_IS_BETTER = {"auc": True, "sparse_categorical_accuracy": True,
                    "root_mean_squared_error": False, "mean_absolute_error": False}


def auc(labels: np.ndarray, scores: np.ndarray) -> Optional[float]:
    """ROC AUC from ranks (ties averaged); None when the rows hold one class (AUC is undefined)."""
    labels, scores = np.asarray(labels).reshape(-1), np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def value(name: str, labels: np.ndarray, predictions: np.ndarray) -> Optional[float]:
    """The metric ``name`` of predictions against labels (class ids, 0/1, or numbers)."""
    labels = np.asarray(labels)
    rows = len(labels)
    predictions = np.asarray(predictions).reshape(rows, -1)
    if name == "auc":
        return auc(labels, predictions[:, -1])
    if name == "sparse_categorical_accuracy":
        return float(np.mean(np.argmax(predictions, axis=1) == labels.reshape(-1)))
    difference = predictions - labels.reshape(rows, -1)
    if name == "root_mean_squared_error":
        return float(np.sqrt(np.mean(difference ** 2)))
    if name == "mean_absolute_error":
        return float(np.mean(np.abs(difference)))
    raise ValueError(f"no gate metric named '{name}'; known: {', '.join(HIGHER_IS_BETTER)}")


def worsening(name: str, reference: float, candidate: float) -> float:
    """How much worse ``candidate`` is than ``reference``: points for scores (AUC, accuracy),
    relative for errors (RMSE, MAE); negative when it is better."""
    if HIGHER_IS_BETTER[name]:
        return reference - candidate
    return (candidate - reference) / max(reference, 1e-12)
