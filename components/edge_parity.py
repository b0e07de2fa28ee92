"""The parity gate of a TF Lite variant: its outputs on the eval split against the SavedModel's,
the largest difference and each head's gate metric. Numpy only."""
import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from components import gate_metrics as metrics
from components.features import PREDICTIONS
from components.tasks import get_task

# Per variant: largest allowed metric drop (AUC/accuracy points as fractions; RMSE relative) and
# largest output difference from the SavedModel (None: not checked), absolute for outputs within
# [-1, 1] and relative to the largest output beyond: a float32 model of prices near 180,000 differs
# from its SavedModel by float32's own rounding (~0.4), which an absolute 1e-4 refused.
DEFAULT_TOLERANCES: Dict[str, Dict[str, Optional[float]]] = {
    "float32": {"metric_drop": 0.001, "max_abs_diff": 1e-4},
    "float16": {"metric_drop": 0.005, "max_abs_diff": 1e-2},
    "dynamic_range": {"metric_drop": 0.01, "max_abs_diff": None},
    "int8": {"metric_drop": 0.01, "max_abs_diff": None},
}


class EdgeExportError(ValueError):
    """An edge model that cannot be built or compared; the message says why, in the user's terms."""


def task_metric(task: str, labels: Optional[np.ndarray], predictions: np.ndarray) -> Tuple[str, Optional[float]]:
    """(name, value) of the task's gate metric, which the parity gate compares; none without labels."""
    if labels is None:
        return "", None
    name = get_task(task).gate_metric
    return name, metrics.value(name, labels, predictions)


Head = Tuple[str, str, Optional[np.ndarray]]  # (output key, task, labels) of one target


def _metric_check(head: Head, edge: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                  limit: Optional[float], prefix: str = "") -> Tuple[Dict[str, Any], str]:
    """One head's gate metric on the edge outputs against the SavedModel's: the facts and, when
    it dropped past ``limit``, the reason."""
    key, task, labels = head
    if labels is not None:  # rows without this head's label are not scored
        known = ~np.isnan(labels) if labels.dtype.kind == "f" else labels >= 0
        labels, edge, reference = labels[known], {key: edge[key][known]}, {key: reference[key][known]}
    name, value = task_metric(task, labels, edge[key])
    _, ref_value = task_metric(task, labels, reference[key])
    if not name or value is None or ref_value is None or math.isnan(ref_value):
        return {}, ""
    drop = metrics.worsening(name, ref_value, value)
    facts: Dict[str, Any] = {"metric": prefix + name, "value": value, "reference": ref_value, "metric_drop": drop}
    if limit is not None and name.endswith("accuracy"):
        # One row is the finest change an accuracy shows: on 66 eval rows a single row sitting on a
        # decision boundary (top scores 0.002 apart) moves it 1.5 points, past a 1-point limit.
        limit = max(limit, 1.0 / len(labels))
        facts["metric_drop_limit"] = limit
    if limit is not None and (math.isnan(value) or drop > limit + 1e-9):  # 1 - 0.98 is 0.020000000000000018
        return facts, f"{prefix}{name} {value:.4f} vs {ref_value:.4f} (drop {drop:.4f} > {limit:g})"
    return facts, ""


def parity(edge: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], task: str,
           labels: Optional[np.ndarray], tolerance: Mapping[str, Optional[float]],
           heads: Sequence[Head] = ()) -> Dict[str, Any]:
    """The edge outputs against the SavedModel's: the largest difference and the gate metric's drop
    (``heads``: one (output, task, labels) per target of a multitask model, each gated; else the
    task's one output with ``labels``)."""
    shared = sorted(set(edge) & set(reference))
    if not shared:
        raise EdgeExportError(f"edge outputs {sorted(edge)} share no name with the SavedModel's {sorted(reference)}")
    def rows(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float64).reshape(len(values), -1)

    # A 0/1 verdict (an anomaly flag: score > threshold) flips on a row whose score sits on the
    # threshold under any rounding, so it is not held to the absolute tolerance: the share of rows
    # that flipped is reported, and the task metric's drop still gates the variant.
    verdicts = [k for k in shared if np.isin(reference[k], (0, 1)).all() and np.isin(edge[k], (0, 1)).all()]
    continuous = [k for k in shared if k not in verdicts] or shared
    diff = max(float(np.max(np.abs(rows(edge[k]) - rows(reference[k])))) for k in continuous)
    scale = max([1.0] + [float(np.max(np.abs(rows(reference[k])), initial=0.0)) for k in continuous])
    result: Dict[str, Any] = {"max_abs_diff": diff}
    if scale > 1.0:
        result["output_scale"] = scale
    if verdicts and continuous is not shared:
        flipped = np.any(np.concatenate([rows(edge[k]) != rows(reference[k]) for k in verdicts], axis=1), axis=1)
        result["verdict_flips"] = float(flipped.mean())
    if not heads:
        key = get_task(task).prediction_key or PREDICTIONS
        heads = [(key if key in shared else shared[0], task, labels)]
    checks = [_metric_check(head, edge, reference, tolerance.get("metric_drop"),
                            f"{head[0]}/" if len(heads) > 1 else "") for head in heads if head[0] in shared]
    checks = [(facts, reason) for facts, reason in checks if facts]
    if checks:  # the worst head stands for the variant; each head's facts are kept
        result.update(max(checks, key=lambda check: check[0]["metric_drop"])[0])
        if len(heads) > 1:
            result["heads"] = {facts["metric"]: facts for facts, _ in checks}
    reasons = [reason for _, reason in checks if reason]
    limit = tolerance.get("max_abs_diff")
    if limit is not None and not diff <= limit * scale:
        relative = f" x {scale:.4g} (the largest output)" if scale > 1 else ""
        reasons.append(f"max |diff| {diff:.2e} > {limit:g}{relative}")
    result["accepted"] = not reasons
    result["reason"] = "; ".join(reasons)
    return result
