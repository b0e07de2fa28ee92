"""Messy tables as other tools write them, made from data installed packages ship (no downloads):
the fixtures of the "any CSV" tests. Each writer returns (path, label as the user names it)."""
import datetime
import gzip
import random
from pathlib import Path
from typing import Tuple


def clinic_visits_csv(path: Path, seed: int = 1) -> Tuple[Path, str]:
    """A spreadsheet export: BOM, `;` delimiters, CRLF, headers with spaces and capitals, `NA` cells,
    an ID column, a visit date, a text column with quoted delimiters, a yes/no label missing on a
    few rows (scikit-learn's breast cancer measurements)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rng = random.Random(seed)
    header = ["Patient ID", *(name.title() for name in data.feature_names[:8]), "Visit Date", "Clinic",
              "Doctor's Note", "Malignant?"]
    lines = [";".join(header)]
    for i, (x, y) in enumerate(zip(data.data, data.target)):
        cells = [f"P{i:05d}"] + ["NA" if rng.random() < 0.03 else f"{v:.4f}" for v in x[:8]]
        day = datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randint(0, 900))
        note = rng.choice(['"seen; ok"', '"follow-up; 2 weeks"', "none", "null"])
        label = "" if rng.random() < 0.02 else ("Yes" if y == 0 else "no")
        cells += [day.isoformat(), rng.choice(["North", "South", "East", "null"]), note, label]
        lines.append(";".join(cells))
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8-sig"))
    return path, "Malignant?"


def r_iris_csv_gz(path: Path) -> Tuple[Path, str]:
    """R's write.csv of iris, gzipped: dotted names, quoted strings, a row-number column."""
    from sklearn.datasets import load_iris

    data = load_iris()
    species = ["setosa", "versicolor", "virginica"]
    lines = ['"","Sepal.Length","Sepal.Width","Petal.Length","Petal.Width","Species"']
    for i, (x, y) in enumerate(zip(data.data, data.target)):
        lines.append(f'"{i + 1}",{x[0]},{x[1]},{x[2]},{x[3]},"{species[y]}"')
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path, "Species"


def diabetes_parquet(path: Path) -> Tuple[Path, str]:
    """A pandas export to Parquet: a regression label with a dash in its name and a boolean column."""
    import pandas as pd
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    frame = pd.DataFrame(data.data, columns=[f"Serum {n.upper()}" if n[1:].isdigit() else n.upper()
                                             for n in data.feature_names])
    frame["Is Male"] = frame["SEX"] > 0
    frame = frame.drop(columns=["SEX"])
    frame["Disease-Progression"] = data.target
    frame.to_parquet(path, index=False)
    return path, "Disease-Progression"
