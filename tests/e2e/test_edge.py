"""TF Lite for the edge: the session's shared pipeline run exports parity-gated variants beside
the pushed SavedModel; the edge runtime (LiteRT, no TFX) answers like the SavedModel on raw rows;
a variant built from a broken representative data set is refused and not shipped."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TRANSACTIONS

pytestmark = pytest.mark.pipeline
VARIANTS = ("float32", "float16", "dynamic_range", "int8")


@pytest.fixture(scope="module")
def run(transactions_runs):
    home, config, first, _ = transactions_runs
    assert first.pushed_path, first.blessing_reason
    return config, first, Path(first.pushed_path)


def test_blessed_model_ships_parity_gated_variants_beside_the_saved_model(run):
    config, report, version_dir = run
    assert report.state_of("EdgeExport") == "COMPLETE"
    variants = report.edge["variants"]
    assert set(variants) == set(VARIANTS)
    sidecar = json.loads((version_dir / "tflite" / "edge.json").read_text())
    assert sidecar["model_version"] == int(version_dir.name) and sidecar["model_name"] == TRANSACTIONS
    assert [spec["name"] for spec in sidecar["inputs"]] == ["age_days", "amount", "risk_score", "segment"]
    segment = next(spec for spec in sidecar["inputs"] if spec["name"] == "segment")
    assert segment["kind"] == "string" and set(segment["vocabulary"]) <= {"retail", "online", "wholesale", ""}
    amount = next(spec for spec in sidecar["inputs"] if spec["name"] == "amount")
    assert amount["scale"] > 0 and amount["fill"] > 0  # z-score folded in; missing -> the train mean
    for variant, entry in variants.items():
        assert {"size_bytes", "max_abs_diff", "metric", "value", "reference", "metric_drop"} <= set(entry), variant
        shipped = (version_dir / "tflite" / f"{variant}.tflite").exists()
        assert shipped == entry["accepted"] == (variant in sidecar["variants"]), (variant, entry)
    assert variants["float32"]["accepted"] and variants["float32"]["max_abs_diff"] <= 1e-4
    for variant in ("dynamic_range", "int8"):
        assert variants[variant]["accepted"] or variants[variant]["metric_drop"] > 0.01, variants[variant]


def test_edge_predict_on_raw_csv_rows_matches_the_saved_model(run, transactions_csv, tmp_path):
    _, _, version_dir = run
    rows_csv = tmp_path / "rows.csv"
    rows_csv.write_text("".join(transactions_csv.read_text().splitlines(keepends=True)[:41]))
    result = subprocess.run([sys.executable, "-m", "cli.main", "edge", "predict",
                             str(version_dir / "tflite" / "float32.tflite"), str(rows_csv)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    edge = np.array([json.loads(line.split("\t")[1]) for line in result.stdout.splitlines()])
    with rows_csv.open() as f:
        rows = list(csv.DictReader(f))
    model = tf.saved_model.load(str(version_dir))
    expected = model.signatures["serving_default"](
        amount=tf.constant([float(r["amount"]) for r in rows], tf.float32),
        age_days=tf.constant([float(r["age_days"] or "nan") for r in rows], tf.float64),
        risk_score=tf.constant([float(r["risk_score"]) for r in rows], tf.float32),
        segment=tf.constant([r["segment"] for r in rows]))["predictions"].numpy()
    assert any(r["age_days"] == "" for r in rows) and any(r["segment"] == "" for r in rows)
    np.testing.assert_allclose(edge, expected, atol=1e-4)
    timing = subprocess.run([sys.executable, "-m", "cli.main", "edge", "bench", "--runs", "200",
                             str(version_dir / "tflite" / "float32.tflite")], capture_output=True, text=True,
                            timeout=300)
    assert timing.returncode == 0 and "p50" in timing.stdout, timing.stderr[-2000:]


def test_edge_runtime_imports_neither_tfx_nor_tensorflow():
    code = ("import sys, cli.main, serving.edge_runtime; serving.edge_runtime.interpreter_class(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tfx', 'tensorflow')); assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_variant_from_a_broken_representative_set_is_refused(run, tmp_path):
    import tensorflow_transform as tft
    from tfx.types import standard_artifacts

    from components.edge_export import export_edge, read_split

    config, report, _ = run
    examples = standard_artifacts.Examples()
    examples.uri = report.artifact_uris["CsvExampleGen"]["Examples"]
    examples.split_names = '["train", "eval"]'
    train, evaluation = read_split(examples, "train", 200), read_split(examples, "eval", 2000)
    # calibrating int8 on values a thousand times too large leaves no resolution for real ones
    broken = [{"amount": 1e5 * (i + 1), "age_days": 1e6 * (i + 1), "risk_score": 1e4 * (i - 50), "segment": "online"}
              for i in range(100)]
    out = tmp_path / "edge"
    result = export_edge(Path(report.artifact_uris["Trainer"]["Model"]) / "Format-Serving",
                         tft.TFTransformOutput(report.artifact_uris["Transform"]["TransformGraph"]),
                         config.task_name, config.targets, train, evaluation, out, representative_rows=broken)
    int8 = result["variants"]["int8"]
    assert not int8["accepted"] and "auc" in int8["reason"], int8
    assert not (out / "int8.tflite").exists()
    assert "int8" not in json.loads((out / "edge.json").read_text())["variants"]
    assert result["variants"]["float32"]["accepted"]
