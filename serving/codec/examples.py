"""The one tf.Example codec: rows (feature name -> value or list of values) to serialized
tf.Examples and back, and the first N records of TFRecord files.

It lives in ``serving`` (the leaf package, which imports nothing else of ours) so that serving,
components, release and ops all share it. Types follow TFX's CSV reading: Python/numpy integers ->
int64_list, other numbers -> float_list, text and bytes -> bytes_list.
"""
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf


def is_missing(value: Any) -> bool:
    """None, an empty string or a float NaN: left out of the example (TFX reads a missing cell so)."""
    return value is None or (isinstance(value, (str, bytes)) and value in ("", b"")) or \
        (isinstance(value, float) and math.isnan(value))


def feature(values: Sequence[Any]) -> tf.train.Feature:
    """A tf.train.Feature for a list of values of one kind (empty: an empty Feature)."""
    values = list(values)
    if not values:
        return tf.train.Feature()
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    return tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[v if isinstance(v, bytes) else str(v).encode() for v in values]))


def encode(row: Mapping[str, Any]) -> bytes:
    """A serialized tf.Example of one row; missing values (``is_missing``) are left out. Deterministic
    (a map's order otherwise varies): the same rows give the same file, so TFX's cache holds."""
    features = {}
    for name, value in row.items():
        values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
        values = [v for v in values if not is_missing(v)]
        if values:
            features[name] = feature(values)
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)


def decode(serialized: bytes, names: Optional[Iterable[str]] = None, text: bool = True) -> Dict[str, List[Any]]:
    """name -> its list of values ([] when absent); bytes become str when ``text``. ``names``:
    only these features (each present in the result), else every feature of the example."""
    features = tf.train.Example.FromString(serialized).features.feature
    row: Dict[str, List[Any]] = {}
    for name in (features.keys() if names is None else names):
        found = features.get(name) if name in features else None
        kind = found.WhichOneof("kind") if found is not None else None
        values = list(getattr(found, kind).value) if kind else []
        if text and kind == "bytes_list":
            values = [v.decode(errors="replace") for v in values]
        row[name] = values
    return row


def scalar_or_list(values: Sequence[Any]) -> Any:
    """A decoded feature as a row cell: None when empty, the value when single, else the list."""
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


def record_dataset(files: Sequence[str], compression: Optional[str] = None) -> tf.data.TFRecordDataset:
    """TFRecord files, in order. Compression: GZIP when the first file ends in .gz (TFX's Examples
    payload), else none, unless given."""
    files = [str(f) for f in files]
    if compression is None:
        compression = "GZIP" if files and files[0].endswith(".gz") else ""
    return tf.data.TFRecordDataset(files, compression_type=compression)


def read_records(files: Sequence[str], limit: Optional[int] = None, compression: Optional[str] = None) -> List[bytes]:
    """The first ``limit`` (all when None) records of TFRecord files (``record_dataset``), in order."""
    if not files:
        return []
    dataset = record_dataset(files, compression)
    if limit is not None:
        dataset = dataset.take(limit)
    # In batches: an eager step per record would cost more than the reading.
    return [record for batch in dataset.batch(4096) for record in batch.numpy().tolist()]
