"""Built-in use cases: data the project writes itself (nothing is downloaded at run time)."""
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple

Table = Tuple[List[str], List[List]]


@dataclass(frozen=True)
class UseCase:
    name: str
    label: str
    task: str
    description: str
    make_table: Callable[[], Table]


def _breast_cancer() -> Table:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    features = [name.replace(" ", "_") for name in data.feature_names]
    # scikit-learn's target is 1 = benign; the positive ("fraud-like", rare) class here is malignant.
    rows = [[*(float(v) for v in x), int(1 - y)] for x, y in zip(data.data, data.target)]
    return features + ["malignant"], rows


USE_CASES: Dict[str, UseCase] = {
    "fraud": UseCase("fraud", "malignant", "binary",
                     "binary classifier on scikit-learn's breast_cancer data (the default job)", _breast_cancer),
}
DEFAULT_USE_CASE = "fraud"


def table_to_csv(table: Table) -> str:
    header, rows = table
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_if_changed(path: Path, text: str) -> Path:
    """Unchanged content keeps the file (and its mtime), so ExampleGen's fingerprint and the cache hold."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def materialize(use_case: UseCase, data_dir: Path) -> Path:
    return write_if_changed(data_dir / f"{use_case.name}.csv", table_to_csv(use_case.make_table()))
