"""Built-in use cases: data the project writes itself from what packages ship or from generators
(nothing is downloaded at run time). ``mlops run <use case>`` materializes and runs one."""
import csv
import io
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from core.files import write_if_changed

Table = Tuple[List[str], List[List]]


@dataclass(frozen=True)
class UseCase:
    name: str
    task: str
    targets: Tuple[Tuple[str, str], ...]  # (label column, task) pairs; one unless multitask
    description: str
    make: Callable[[], object]  # a Table (CSV), a list of tf.Example dicts (TFRecord), or files (images)
    input_format: str = "csv"  # csv | tfrecord | series (a time series CSV per split, windowed by ExampleGen)
    # | images (class/file -> encoded bytes, a folder of class folders read as a user's would be)
    series: Mapping[str, Any] = field(default_factory=dict)  # column, lookback, horizon (series only)
    tensors: Mapping[str, Tuple[int, ...]] = field(default_factory=dict)  # multi-valued features' shapes
    family: str = "dnn"
    hparams: Mapping[str, Any] = field(default_factory=dict)  # the use case's tuned defaults for its family
    gate_thresholds: Optional[Mapping[str, float]] = None  # overrides the data-derived defaults


def _breast_cancer() -> Table:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    features = [name.replace(" ", "_") for name in data.feature_names]
    # scikit-learn's target is 1 = benign; the positive ("fraud-like", rare) class here is malignant.
    rows = [[*(float(v) for v in x), int(1 - y)] for x, y in zip(data.data, data.target)]
    return features + ["malignant"], rows


def _diabetes() -> Table:
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    return [*data.feature_names, "progression"], [[*map(float, x), float(y)] for x, y in zip(data.data, data.target)]


AGE_GROUPS = ((18, "18-29"), (30, "30-44"), (45, "45-59"), (60, "60-plus"))


def body_measurements(rows: int = 3000, seed: int = 7) -> List[Dict]:
    """People with non-linear age and gender effects: height peaks in the twenties and shrinks
    after fifty, weight rises to middle age then falls, and nose surface area keeps growing
    (cartilage grows for life), faster for men."""
    rng = random.Random(seed)
    people = []
    for _ in range(rows):
        age = rng.uniform(18, 85)
        male = rng.random() < 0.5
        height = (176 if male else 163) + 2 * math.exp(-((age - 25) / 10) ** 2) \
            - 0.12 * max(0.0, age - 50) + rng.gauss(0, 5)
        weight = (68 if male else 56) + 14 * math.sin(math.pi * min(age - 18, 60) / 80) + 0.35 * (height - 165) \
            + rng.gauss(0, 5)
        nose = (9.5 if male else 8.2) + (0.055 if male else 0.045) * (age - 18) \
            + 0.0004 * (age - 18) ** 2 + rng.gauss(0, 0.35)
        group = [label for start, label in AGE_GROUPS if age >= start][-1]
        people.append({"height_cm": round(height, 1), "weight_kg": round(weight, 1),
                       "nose_surface_cm2": round(nose, 2), "gender": int(male), "age_group": group})
    return people


def _age() -> Table:
    people = body_measurements()
    header = ["height_cm", "weight_kg", "nose_surface_cm2", "gender", "age_group"]
    return header, [[p[h] for h in header] for p in people]


def _age_gender() -> Table:
    people = body_measurements()
    header = ["height_cm", "weight_kg", "nose_surface_cm2", "age_group", "gender"]
    return header, [[p[h] for h in header] for p in people]


def _anomalies(rows: int = 2000, share: float = 0.05, seed: int = 11) -> Table:
    """Machine telemetry: 8 sensors driven by 2 hidden factors; anomalies break the correlations."""
    rng = random.Random(seed)
    loadings = [[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(8)]
    table = []
    for _ in range(rows):
        anomalous = rng.random() < share
        factors = [rng.gauss(0, 1), rng.gauss(0, 1)]
        values = [sum(w * f for w, f in zip(ws, factors)) + rng.gauss(0, 0.1) for ws in loadings]
        if anomalous:
            values = [rng.gauss(0, 1.2) for _ in values]
        table.append([round(v, 4) for v in values] + [int(anomalous)])
    return [f"sensor_{i}" for i in range(8)] + ["is_anomaly"], table


def _digits() -> List[Dict]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return [{"pixels": [float(v) for v in x], "digit": int(y)} for x, y in zip(data.data, data.target)]


PHOTO_REGIONS = {  # class -> (photo, (left, top, right, bottom) in the 640x427 photo)
    "sky": ("china.jpg", (380, 0, 640, 150)),
    "pagoda": ("china.jpg", (135, 60, 325, 390)),
    "trees": ("china.jpg", (440, 250, 640, 427)),
    "petals": ("flower.jpg", (205, 110, 420, 320)),
    "leaves": ("flower.jpg", (0, 0, 160, 427)),
}


def _photos(per_class: int = 60, seed: int = 5) -> Dict[str, bytes]:
    """Patches of scikit-learn's two sample photographs, labelled by what the region shows, of
    varied sizes (24 to 80 px a side) and formats (JPEG and PNG): class/NNN.jpg -> encoded bytes."""
    import io

    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = {Path(name).name: Image.fromarray(array) for name, array in
              zip(*(lambda d: (d.filenames, d.images))(load_sample_images()))}
    rng = random.Random(seed)
    files = {}
    for label, (photo, (left, top, right, bottom)) in PHOTO_REGIONS.items():
        for i in range(per_class):
            width, height = rng.randint(24, 80), rng.randint(24, 80)
            width, height = min(width, right - left), min(height, bottom - top)
            x, y = rng.randint(left, right - width), rng.randint(top, bottom - height)
            patch = photos[photo].crop((x, y, x + width, y + height))
            out = io.BytesIO()
            fmt = "JPEG" if i % 3 else "PNG"
            patch.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            files[f"{label}/{label}_{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"] = out.getvalue()
    return files


def _digit_pngs(side: int = 32) -> Dict[str, bytes]:
    """scikit-learn's 8x8 digits as RGB PNG files in class folders, upscaled to ``side`` px (the same
    labels as the ``digits`` TFRecord use case, through the image-folder path)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    files = {}
    for i, (pixels, digit) in enumerate(zip(data.images, data.target)):
        gray = Image.fromarray((np.asarray(pixels) * (255.0 / 16.0)).astype(np.uint8), mode="L")
        out = io.BytesIO()
        gray.resize((side, side), Image.BILINEAR).convert("RGB").save(out, format="PNG")
        files[f"{digit}/{i:04d}.png"] = out.getvalue()
    return files


SUNSPOTS = {"column": "sunspots", "lookback": 24, "horizon": 3}
SUNSPOTS_EVAL_YEARS = 60


def _sunspots() -> Dict[str, Table]:
    """statsmodels' yearly sunspot numbers (1700-2008): the last 60 years are the eval split; its
    file starts `lookback` years earlier so that every eval window forecasts an eval year."""
    from statsmodels.datasets import sunspots

    frame = sunspots.load_pandas().data
    rows = [[int(year), float(value)] for year, value in zip(frame["YEAR"], frame["SUNACTIVITY"])]
    cut = len(rows) - SUNSPOTS_EVAL_YEARS
    header = ["year", SUNSPOTS["column"]]
    return {"train": (header, rows[:cut]), "eval": (header, rows[cut - SUNSPOTS["lookback"]:])}


def naive_forecast_mae(splits: Dict[str, Table], column: str, lookback: int, horizon: int) -> float:
    """MAE of repeating each window's last value, on the eval windows, in the Transform's scaled
    units (train windows' min/max): the bar a forecaster has to beat."""
    def values(split):
        header, rows = splits[split]
        return [row[header.index(column)] for row in rows]

    train, evaluation = values("train"), values("eval")
    span = max(max(train) - min(train), 1e-6)
    errors = [abs(evaluation[start + lookback + step] - evaluation[start + lookback - 1]) / span
              for start in range(len(evaluation) - lookback - horizon + 1) for step in range(horizon)]
    return sum(errors) / len(errors)


USE_CASES: Dict[str, UseCase] = {case.name: case for case in (
    UseCase("fraud", "binary", (("malignant", "binary"),),
            "binary classifier on scikit-learn's breast_cancer data (the default job)", _breast_cancer),
    UseCase("housing", "regression", (("progression", "regression"),),
            "regression on scikit-learn's diabetes data", _diabetes,
            # 442 nearly linear rows: one layer beside the linear path and patience match Ridge (the
            # label is standardized for training, so the default learning rate fits).
            hparams={"width": 32, "depth": 1, "dropout": 0.1, "batch_size": 16, "epochs": 200, "patience": 15}),
    UseCase("age", "multiclass", (("age_group", "multiclass"),),
            "age group from body measurements and gender (generated)", _age),
    UseCase("age_gender", "multitask", (("age_group", "multiclass"), ("gender", "binary")),
            "age group and gender heads from body measurements (generated)", _age_gender),
    UseCase("anomaly", "anomaly", (("is_anomaly", "anomaly"),),
            "autoencoder on sensor telemetry, trained on normal rows (generated)", _anomalies,
            family="autoencoder"),
    UseCase("digits", "multiclass", (("digit", "multiclass"),),
            "8x8 digit images from scikit-learn, as TFRecord read by ImportExampleGen", _digits,
            input_format="tfrecord", tensors={"pixels": (8, 8, 1)}, family="cnn",
            gate_thresholds={"digit": 0.9}),
    UseCase("photos", "multiclass", (("label", "multiclass"),),
            "what a patch of scikit-learn's two sample photos shows (sky, pagoda, trees, petals, leaves): JPEG and "
            "PNG files of varied sizes in class folders", _photos, input_format="images", family="cnn",
            hparams={"epochs": 40, "patience": 8}),
    UseCase("digits_png", "multiclass", (("label", "multiclass"),),
            "scikit-learn's digits as 32x32 RGB PNG files in class folders (the digits use case's labels, "
            "through the image-folder path)", _digit_pngs, input_format="images", family="cnn",
            hparams={"epochs": 30, "patience": 6}),
    UseCase("sunspots", "forecast", (("target", "forecast"),),
            f"{SUNSPOTS['horizon']}-year forecast of statsmodels' yearly sunspots from {SUNSPOTS['lookback']}-year "
            "windows built by the pipeline's ExampleGen", _sunspots, input_format="series", series=SUNSPOTS,
            tensors={"window": (SUNSPOTS["lookback"], 1)}, family="rnn"),
)}
DEFAULT_USE_CASE = "fraud"


def table_to_csv(table: Table) -> str:
    header, rows = table
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _tfrecord_bytes(records: List[Dict]) -> bytes:
    """Uncompressed TFRecord of tf.Examples (floats -> float_list, ints -> int64_list)."""
    import tempfile

    import tensorflow as tf

    from serving.codec.examples import encode

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "records")
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(encode(record))
        return Path(path).read_bytes()


def data_path(case: UseCase, data_dir: Path) -> Path:
    """What ExampleGen reads of the use case under ``data_dir``: its file, or for a series the
    folder holding train/ and eval/ (nothing is written here)."""
    if case.input_format in ("series", "images"):
        return data_dir / "images" if case.input_format == "images" else data_dir
    return data_dir / f"{case.name}.{'tfrecord' if case.input_format == 'tfrecord' else 'csv'}"


def materialize(case: UseCase, data_dir: Path) -> Path:
    """Writes the use case's data under ``data_dir`` (unchanged files are kept); returns ``data_path``."""
    path = data_path(case, data_dir)
    if case.input_format == "series":
        for split, table in case.make().items():
            write_if_changed(path / split / f"{case.name}.csv", table_to_csv(table).encode())
    elif case.input_format == "images":
        for relative, data in case.make().items():
            write_if_changed(path / relative, data)
    elif case.input_format == "tfrecord":
        write_if_changed(path, _tfrecord_bytes(case.make()))
    else:
        write_if_changed(path, table_to_csv(case.make()).encode())
    return path
