"""A table as users bring them: NA cells, a category of 3 rows, a column of 10^9-scale values and
two label columns. A slice too small to judge never refuses a good model (on the first run and on
a run with a baseline); the edge never blocks serving (an EdgeExport that fails still pushes, every
variant left out with the reason); float32 TF Lite equals the served SavedModel within 1e-5 on
such a table, single-task and multitask.

One fault is injected: the second run's TF Lite export raises (``export_edge`` replaced in this
process), as a converter crash would."""
import csv
import glob
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli_config

pytestmark = pytest.mark.pipeline

RARE = "kiosk"


def write_listings_csv(path: Path, rows: int = 420, seed: int = 4) -> Path:
    """Orders: an amount with NA cells, a turnover near 10^9, a year (a mean ~1,400 standard
    deviations from 0), a segment with NA cells and a value on 3 rows only; labels: fraud (binary)
    and a tier (multiclass) that both follow the features."""
    rng = random.Random(seed)
    rare_rows = set(rng.sample(range(rows), 3))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Amount", "Turnover", "Year", "Risk Score", "Segment", "Fraud?", "Tier"])
        for i in range(rows):
            amount, risk = rng.lognormvariate(4, 1), rng.gauss(0, 1)
            segment = RARE if i in rare_rows else rng.choice(("retail", "online", "wholesale"))
            turnover = rng.uniform(0.6e9, 3.4e9)
            logit = 1.8 * risk + 0.8 * (segment == "online") + 0.9 * (turnover - 2e9) / 1e9 + rng.gauss(0, 0.4)
            tier = "gold" if amount > 90 else "silver" if amount > 35 else "bronze"
            writer.writerow(["NA" if i % 7 == 3 else f"{amount:.2f}", f"{turnover:.0f}", rng.randint(2015, 2019),
                             f"{risk:.4f}",
                             "" if i % 9 == 5 and i not in rare_rows else segment, "yes" if logit > 0 else "no",
                             tier])
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> (config, report): a first run, a second (its own hyperparameters, so the first is
    its baseline) whose TF Lite export fails, and a multitask run, in one home."""
    import components.edge_export
    from pipelines.runners.local import run_pipeline

    home, data = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("data")
    path = str(write_listings_csv(data / "listings.csv"))
    first = run_cli_config("--data", path, "--label", "Fraud?", "--name", "listings", home=home)
    second = run_cli_config("--data", path, "--label", "Fraud?", "--name", "listings", "--hparam", "epochs=25",
                            home=home)
    multitask = run_cli_config("--data", path, "--label", "Fraud?:binary,Tier:multiclass", "--task", "multitask",
                               "--name", "listings_multitask", home=home)
    out = {"first": (first, run_pipeline(first))}

    def crash(*args, **kwargs):
        raise RuntimeError("converter crashed\nin a native frame")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(components.edge_export, "export_edge", crash)
        out["second"] = (second, run_pipeline(second))
    out["multitask"] = (multitask, run_pipeline(multitask))
    return out


@pytest.mark.parametrize("name", ["first", "second"])
def test_a_three_row_category_never_refuses_a_good_model(runs, name):
    from pipelines.summary import format_summary

    config, report = runs[name]
    assert report.succeeded and report.blessed and report.pushed_now, report.blessing_reason
    assert report.blessing_reason == "passed every threshold"
    rows = report.unjudged_slices.get(f"segment={RARE}")
    assert list(report.unjudged_slices) == [f"segment={RARE}"] and 0 < rows < 10
    assert f"slices not judged (fewer than 10 eval rows; shown, never gated): segment={RARE} ({rows} rows)" \
        in format_summary(config, report)
    if name == "second":  # judged against the first run's model
        assert "auc_change" in report.metrics["overall"]
    candidates = report.model_info["candidates"]  # a small table: the dnn and its linear rival, the better kept
    better = max(("dnn", "linear"), key=lambda c: candidates[c])
    assert candidates["metric"] == "auc" and candidates["chosen"] == better
    shown = f"dnn {candidates['dnn']:.4f}, linear {candidates['linear']:.4f} (auc on the eval split); kept: {better}"
    assert f"model candidates: {shown}" in format_summary(config, report)
    assert report.card_path and shown in Path(report.card_path).read_text()  # the card said "model: dnn" alone


def test_an_edge_export_that_fails_still_pushes_and_names_what_was_left_out(runs):
    import mlflow

    from pipelines.summary import format_summary

    config, report = runs["second"]
    assert report.succeeded and report.pushed_now and report.state_of("EdgeExport") == "COMPLETE"
    assert not (Path(report.pushed_path) / "tflite").exists()
    reason = "the export failed: RuntimeError: converter crashed"
    assert {v: (e["accepted"], e["reason"]) for v, e in report.edge["variants"].items()} == \
        {v: (False, reason) for v in ("float32", "float16", "dynamic_range", "int8")}
    assert f"edge (TF Lite): no variant shipped, every one left out: {reason}" in format_summary(config, report)
    tags = mlflow.MlflowClient(config.mlflow_uri).get_run(report.mlflow_run_id).data.tags
    assert tags["edge_int8"] == f"left out: {reason}"
    card = json.loads((Path(report.pushed_path) / "assets.extra" / "model_card.json").read_text())
    assert [(v["variant"], v["shipped"]) for v in card["edge"]] == \
        [("float32", False), ("float16", False), ("dynamic_range", False), ("int8", False)]
    assert [c for c in card["caveats"] if c.startswith("TF Lite")] == \
        [f"TF Lite float32, float16, dynamic_range, int8 left out: {reason}"]  # once, not once per variant


def _edge_vs_saved_model(report):
    """The pushed float32 TF Lite model on raw eval rows against the SavedModel on the same
    tf.Examples: (edge outputs, SavedModel outputs) by output name."""
    import tensorflow as tf

    from serving.codec.examples import read_records
    from serving.edge_runtime import EdgeModel, read_sidecar, rows_to_inputs

    uri = next(outputs["Examples"] for node, outputs in report.artifact_uris.items() if node.endswith("ExampleGen"))
    serialized = read_records(sorted(glob.glob(os.path.join(uri, "Split-eval", "*"))))
    model_path = Path(report.pushed_path) / "tflite" / "float32.tflite"
    sidecar = read_sidecar(model_path)
    names = {spec.get("source", spec["name"]) for spec in sidecar["inputs"]}
    rows = []
    for i in range(len(serialized)):
        example = tf.train.Example.FromString(serialized[i])
        row = {}
        for name in names:
            feature = example.features.feature.get(name)
            values = list(getattr(feature, feature.WhichOneof("kind")).value) if feature is not None else []
            row[name] = (values[0].decode() if isinstance(values[0], bytes) else values[0]) if values else ""
        rows.append(row)
    edge = EdgeModel(model_path).predict(rows_to_inputs(sidecar, rows))
    saved = tf.saved_model.load(report.pushed_path).signatures["serving_tf_example"]
    reference = {k: v.numpy() for k, v in saved(examples=tf.constant(serialized)).items()}
    assert any(not row[name] for row in rows for name in names), "no NA cell among the eval rows"
    return edge, reference


@pytest.mark.parametrize("name", ["first", "multitask"])
def test_float32_tf_lite_equals_the_saved_model_on_na_cells_categories_and_heads(runs, name):
    _, report = runs[name]
    assert report.edge["variants"]["float32"]["accepted"], report.edge["variants"]["float32"]
    edge, reference = _edge_vs_saved_model(report)
    shared = sorted(set(edge) & set(reference))
    assert shared == (["fraud", "tier"] if name == "multitask" else ["predictions"])
    for key in shared:
        np.testing.assert_allclose(edge[key].reshape(len(edge[key]), -1),
                                   reference[key].reshape(len(reference[key]), -1), rtol=0, atol=1e-5)
    if name == "multitask":  # each head gated by its own metric
        assert sorted(report.edge["variants"]["int8"]["heads"]) == ["fraud/auc", "tier/sparse_categorical_accuracy"]


def test_the_billion_scale_column_is_folded_around_its_mean(runs):
    _, report = runs["first"]
    sidecar = json.loads(Path(glob.glob(os.path.join(report.pushed_path, "tflite", "edge.json"))[0]).read_text())
    turnover = next(spec for spec in sidecar["inputs"] if spec["name"] == "turnover")
    assert 1.5e9 < turnover["centre"] < 2.5e9 and abs(turnover["shift"]) < 1e-3
    assert abs(turnover["fill"] - turnover["centre"]) < 1e6
