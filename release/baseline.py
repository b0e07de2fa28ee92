"""A simple baseline on the very same split: scikit-learn's logistic regression (binary,
multiclass) or ridge (regression) on standardized numbers, one-hot categories and the TF-IDF of
text columns (words and word pairs), scored with the
task's gate metric. The run summary and MLflow show it beside the model's: a model that does not
beat a linear baseline on a small table is worth a second look."""
import glob
import os
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from components import gate_metrics as metrics
from components.tasks import get_task
from core.config import PipelineConfig
from core.run_report import RunReport
from release.run_files import examples_uri

MAX_ROWS = 100_000  # per split: a sample beyond this (the baseline is a yardstick, not a model)
MAX_CATEGORIES = 50  # one-hot columns per categorical feature (the most frequent values)


@dataclass(frozen=True)
class Baseline:
    model: str  # what was fitted
    metric: str
    value: Optional[float]


def _columns(uri: str, split: str, keys: Sequence[str]) -> Dict[str, list]:
    """Each key's first value per row (None where missing), decoded in C++ by tfx_bsl: a Python
    decode of 200,000 tf.Examples per split took 100 s of a million-row run."""
    import pyarrow as pa
    from tfx_bsl.coders.example_coder import ExamplesToRecordBatchDecoder

    from serving.codec.examples import read_records

    records = read_records(sorted(glob.glob(os.path.join(uri, f"Split-{split}", "*"))), MAX_ROWS)
    if not records:
        return {key: [] for key in keys}
    batch = ExamplesToRecordBatchDecoder().DecodeBatch(records)
    columns = {}
    for key in keys:
        index = batch.schema.get_field_index(key)
        if index < 0 or pa.types.is_null(batch.column(index).type):
            columns[key] = [None] * len(records)
            continue
        lists = batch.column(index)
        offsets, lengths = lists.offsets.to_numpy(), lists.value_lengths().fill_null(0).to_numpy()
        values = lists.flatten().to_pylist()
        base = offsets[0]
        columns[key] = [values[o - base] if n else None for o, n in zip(offsets[:-1].tolist(), lengths.tolist())]
    return columns


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _tfidf(train: Dict[str, list], evaluation: Dict[str, list], key: str):
    """A text column's TF-IDF of words and word pairs (a pair or word in at least 2 train rows)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    def texts(rows):
        return ["" if v is None else _text(v) for v in rows[key]]

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    try:
        return vectorizer.fit_transform(texts(train)), vectorizer.transform(texts(evaluation))
    except ValueError:  # no word seen twice: nothing to learn from this column
        return None


def _matrix(train: Dict[str, list], evaluation: Dict[str, list], kinds: Dict[str, str]):
    """Standardized numbers (missing -> 0, the mean), one-hot categories and TF-IDF of text, fitted
    on train; sparse when a text column is in it."""
    from scipy import sparse

    blocks_train, blocks_eval = [], []
    for key, kind in sorted(kinds.items()):
        if kind == "text":
            tfidf = _tfidf(train, evaluation, key)
            if tfidf is not None:
                blocks_train.append(tfidf[0])
                blocks_eval.append(tfidf[1])
        elif kind in ("numeric", "integer"):
            def column(rows, key=key):
                return np.array([np.nan if v is None else float(v) for v in rows[key]])
            x_train, x_eval = column(train), column(evaluation)
            mean, std = np.nanmean(x_train), np.nanstd(x_train) or 1.0
            blocks_train.append(np.nan_to_num((x_train - mean) / std)[:, None])
            blocks_eval.append(np.nan_to_num((x_eval - mean) / std)[:, None])
        else:
            def values(rows, key=key):
                return np.array(["" if v is None else _text(v).strip().lower() for v in rows[key]], dtype=object)
            v_train, v_eval = values(train), values(evaluation)
            found, counts = np.unique(v_train, return_counts=True)
            top = found[np.argsort(-counts, kind="stable")][:MAX_CATEGORIES]
            blocks_train.append((v_train[:, None] == top[None, :]).astype(float))
            blocks_eval.append((v_eval[:, None] == top[None, :]).astype(float))
    if not blocks_train:
        return None, None
    if any(sparse.issparse(block) for block in blocks_train):
        return sparse.hstack(blocks_train, format="csr"), sparse.hstack(blocks_eval, format="csr")
    return np.hstack(blocks_train), np.hstack(blocks_eval)


def _labelled(columns: Dict[str, list], label: str) -> Dict[str, list]:
    keep = [v is not None for v in columns[label]]
    return {key: [v for v, k in zip(values, keep) if k] for key, values in columns.items()}


def _named(model: str, kinds: Dict[str, str]) -> str:
    return f"TF-IDF + {model}" if "text" in kinds.values() else model


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
    keys = [*kinds, label]
    train, evaluation = _labelled(_columns(uri, "train", keys), label), _labelled(_columns(uri, "eval", keys), label)
    if not train[label] or not evaluation[label]:
        return None
    x_train, x_eval = _matrix(train, evaluation, kinds)
    if x_train is None:
        return None
    task = get_task(config.task_name)
    y_train = [_text(v) for v in train[label]]
    y_eval = [_text(v) for v in evaluation[label]]
    if task.name == "regression":
        from sklearn.linear_model import RidgeCV

        model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x_train, np.array(y_train, float))
        value = metrics.value(task.gate_metric, np.array(y_eval, float), model.predict(x_eval))
        return Baseline(_named("ridge", kinds), task.gate_metric, value)
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
        value = metrics.value("auc", labels, probabilities[:, classes.index(positive)])
        return Baseline(_named("logistic regression", kinds), "auc", value)
    value = metrics.value(task.gate_metric, np.array(known), probabilities)
    return Baseline(_named("logistic regression", kinds), task.gate_metric, value)
