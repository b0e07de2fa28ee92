"""Checks a CSV before any pipeline runs, so bad input fails in a second with a one-line error
naming the file and column, and nothing already stored is touched. No TensorFlow import here.
"""
import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from components.tasks import TaskSpec

MIN_ROWS = 20  # fewer leave the hash-split eval set empty or meaningless
FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InputDataError(ValueError):
    """Bad user input: the message is one line naming the file, column or value."""


@dataclass(frozen=True)
class TargetProfile:
    values: Tuple[str, ...]  # distinct label values, most frequent first (classification)
    majority_share: float
    std: float  # regression


@dataclass(frozen=True)
class DataProfile:
    path: Path
    rows: int
    numeric: Tuple[str, ...]
    strings: Tuple[str, ...]
    targets: Mapping[str, TargetProfile]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read(path: Path) -> Tuple[List[str], List[List[str]]]:
    if not path.exists():
        raise InputDataError(f"data file not found: {path}")
    if not path.is_file():
        raise InputDataError(f"data path is not a file: {path}")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputDataError(f"{path}: not a readable UTF-8 CSV ({e})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputDataError(f"{path}: the CSV is empty (no header, no rows)")
    return [h.strip() for h in rows[0]], rows[1:]


def _column_kind(path: Path, name: str, values: List[Tuple[int, str]], schema_kind: Optional[str]) -> str:
    """'numeric' or 'string'. A stray text in a mostly numeric column is an error, not a string column."""
    present = [(line, v) for line, v in values if v != ""]
    bad = [(line, v) for line, v in present if not _is_number(v)]
    if schema_kind == "numeric" or (bad and len(bad) < len(present) / 2):
        if bad:
            line, value = bad[0]
            raise InputDataError(
                f"{path}: column '{name}' is numeric but line {line} holds {value!r} "
                f"({len(bad)} non-numeric value(s); leave a cell empty for a missing value)")
        return "numeric"
    return "numeric" if present and not bad else "string"


def _profile_target(path: Path, label: str, task: TaskSpec, labels: List[str], kind: str) -> TargetProfile:
    missing = [index + 2 for index, v in enumerate(labels) if v == ""]
    if missing:
        raise InputDataError(f"{path}: label column '{label}' is empty on {len(missing)} line(s), "
                             f"first on line {missing[0]}")
    counts: Dict[str, int] = {}
    for v in labels:
        counts[v] = counts.get(v, 0) + 1
    ordered = tuple(sorted(counts, key=lambda v: (-counts[v], v)))
    std = 0.0
    if task.label_encoding == "float":
        if kind != "numeric":
            raise InputDataError(f"{path}: task '{task.name}' needs a numeric label; '{label}' holds text")
        numbers = [float(v) for v in labels]
        mean = sum(numbers) / len(numbers)
        std = (sum((x - mean) ** 2 for x in numbers) / len(numbers)) ** 0.5
    elif task.label_encoding == "binary":
        if len(ordered) != 2:
            raise InputDataError(f"{path}: task '{task.name}' needs exactly 2 label values in '{label}', "
                                 f"found {len(ordered)}")
        if kind == "numeric" and set(ordered) != {"0", "1"}:
            raise InputDataError(f"{path}: task '{task.name}' needs numeric labels 0/1 in '{label}', "
                                 f"found {', '.join(ordered)}")
    elif len(ordered) < 2:
        raise InputDataError(f"{path}: task '{task.name}' needs at least 2 classes in '{label}'")
    if kind == "numeric" and task.label_encoding == "vocabulary":
        if not all(float(v).is_integer() for v in ordered):
            raise InputDataError(f"{path}: task '{task.name}' needs integer or text class labels in '{label}'")
    return TargetProfile(values=ordered if task.label_encoding != "float" else (),
                         majority_share=counts[ordered[0]] / len(labels), std=std)


def profile_csv(path: Path, targets: Sequence[Tuple[str, TaskSpec]],
                schema_kinds: Optional[Dict[str, str]] = None) -> DataProfile:
    """Validates the CSV for its targets, (label column, task) pairs; ``schema_kinds``
    (name -> numeric/string) come from a curated schema."""
    return profile_table(path, *_read(path), targets, schema_kinds)


def profile_table(path: Path, header: List[str], rows: List[List[str]], targets: Sequence[Tuple[str, TaskSpec]],
                  schema_kinds: Optional[Dict[str, str]] = None) -> DataProfile:
    """``profile_csv`` of a table already in memory (cells as CSV text); ``path`` names it in errors."""
    if not rows:
        raise InputDataError(f"{path}: the CSV has a header but no data rows")
    if len(rows) < MIN_ROWS:
        raise InputDataError(f"{path}: {len(rows)} data rows; at least {MIN_ROWS} are needed to train and evaluate")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise InputDataError(f"{path}: duplicate column name(s): {', '.join(duplicates)}")
    for name in header:
        if not FEATURE_NAME.match(name):
            raise InputDataError(f"{path}: column name {name!r} must match {FEATURE_NAME.pattern} (rename it)")
    label_names = [label for label, _ in targets]
    for label in label_names:
        if label not in header:
            raise InputDataError(f"{path}: label column '{label}' not found; columns: {', '.join(header)}")
    features = [h for h in header if h not in label_names]
    if not features:
        raise InputDataError(f"{path}: no feature columns besides the label(s) {', '.join(label_names)}")
    for index, row in enumerate(rows):
        if len(row) != len(header):
            raise InputDataError(f"{path}: line {index + 2} has {len(row)} fields, the header has {len(header)}")

    kinds = {}
    schema_kinds = schema_kinds or {}
    for col, name in enumerate(header):
        values = [(index + 2, row[col].strip()) for index, row in enumerate(rows)]
        kinds[name] = _column_kind(path, name, values, schema_kinds.get(name))
    profiles = {label: _profile_target(path, label, task, [row[header.index(label)].strip() for row in rows],
                                       kinds[label]) for label, task in targets}
    return DataProfile(
        path=path,
        rows=len(rows),
        numeric=tuple(h for h in features if kinds[h] == "numeric"),
        strings=tuple(h for h in features if kinds[h] == "string"),
        targets=profiles,
    )
