"""`mlops score`: batch scoring on Beam with a registered model of the session's shared run, on an
unlabelled CSV and on TFRecords of tf.Examples; predictions equal the SavedModel's own."""
import csv
import glob
import math

import numpy as np
import pytest
import tensorflow as tf

from cli.main import main
from tests.helpers import TRANSACTIONS

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def unlabelled(transactions_csv, tmp_path_factory):
    with transactions_csv.open() as f:
        rows = list(csv.DictReader(f))
    path = tmp_path_factory.mktemp("span") / "unlabelled.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[c for c in rows[0] if c != "is_fraud"])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k != "is_fraud"} for r in rows)
    return path


def _expected(model_dir: str, rows: list) -> np.ndarray:
    model = tf.saved_model.load(model_dir)
    return model.signatures["serving_default"](
        amount=tf.constant([float(r["amount"]) for r in rows], tf.float32),
        age_days=tf.constant([float(r["age_days"]) if r["age_days"] else math.nan for r in rows], tf.float64),
        risk_score=tf.constant([float(r["risk_score"]) for r in rows], tf.float32),
        segment=tf.constant([r["segment"] for r in rows]))["predictions"].numpy().reshape(-1)


def test_an_unlabelled_csv_is_scored_with_the_model_version_on_every_row(transactions_runs, unlabelled, tmp_path,
                                                                         capsys):
    home, _, first, _ = transactions_runs
    code = main(["score", TRANSACTIONS, "--home", str(home), "--alias", "challenger", "--data", str(unlabelled),
                 "--output", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert "scored 240 rows" in capsys.readouterr().out
    (csv_file,) = glob.glob(str(tmp_path / "out" / "predictions-*.csv"))
    with open(csv_file) as f:
        scored = list(csv.DictReader(f))
    serving_version = first.pushed_path.rsplit("/", 1)[-1]
    assert len(scored) == 240
    assert {(r["model_name"], r["model_version"], r["serving_version"]) for r in scored} == \
        {(TRANSACTIONS, "1", serving_version)}
    expected = _expected(first.pushed_path, scored)  # Beam does not keep the order: compare row by row
    np.testing.assert_allclose([float(r["predictions"]) for r in scored], expected, atol=1e-6)
    (tfrecord,) = glob.glob(str(tmp_path / "out" / "predictions-*.tfrecord.gz"))
    examples = [tf.train.Example.FromString(r.numpy())
                for r in tf.data.TFRecordDataset(tfrecord, compression_type="GZIP")]
    assert len(examples) == 240
    features = examples[0].features.feature
    assert features["model_version"].bytes_list.value == [b"1"] and features["predictions"].float_list.value


def test_tfrecords_of_examples_are_scored_too(transactions_runs, tmp_path, capsys):
    home, _, first, _ = transactions_runs
    eval_split = f"{first.artifact_uris['CsvExampleGen']['Examples']}/Split-eval"
    assert main(["score", TRANSACTIONS, "--home", str(home), "--version", "1", "--data", eval_split,
                 "--output", str(tmp_path / "out")]) == 0
    rows = sum(1 for _ in tf.data.TFRecordDataset(glob.glob(f"{eval_split}/*"), compression_type="GZIP"))
    assert f"scored {rows} rows" in capsys.readouterr().out


def test_no_champion_or_a_missing_column_is_one_line(transactions_runs, transactions_csv, tmp_path, capsys):
    home = transactions_runs[0]
    assert main(["score", TRANSACTIONS, "--home", str(home), "--data", str(transactions_csv),
                 "--output", str(tmp_path / "o")]) == 2
    assert "has no alias 'champion' (aliases: challenger)" in capsys.readouterr().err
    broken = tmp_path / "broken.csv"
    broken.write_text("amount,segment\n1.0,online\n")
    assert main(["score", TRANSACTIONS, "--home", str(home), "--alias", "challenger", "--data", str(broken),
                 "--output", str(tmp_path / "o")]) == 2
    assert "missing column(s) the model needs: age_days, risk_score" in capsys.readouterr().err
    # a pipeline a run with --no-tracking pushed: the registry has no such model, the home has its SavedModel
    pushed = sorted((home / "serving" / TRANSACTIONS).glob("[0-9]*"))[-1]
    assert main(["score", TRANSACTIONS, "--home", str(home), "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}",
                 "--data", str(transactions_csv), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"one run with --no-tracking does not); score a pushed SavedModel with --model-dir {pushed}" in err, err


def test_tab_separated_gzip_and_parquet_tables_and_quoted_line_breaks_are_scored_as_the_csv(
        transactions_runs, unlabelled, tmp_path, capsys):
    """A probe's .tsv and .parquet were read as TFRecords ('Not a valid TFRecord'); a quoted cell with
    a line break (any exported text) was split into broken rows ('could not convert string to float')."""
    import gzip

    import pandas as pd

    home, _, first, _ = transactions_runs
    frame = pd.read_csv(unlabelled, dtype=str, keep_default_na=False)
    frame.loc[0, "segment"] = "on\nline"  # a category the model never saw, with a line break inside
    with gzip.open(tmp_path / "rows.tsv.gz", "wt", newline="") as f:
        frame.to_csv(f, sep="\t", index=False)
    frame.to_parquet(tmp_path / "rows.parquet")
    for name in ("rows.tsv.gz", "rows.parquet"):
        out = tmp_path / name.replace(".", "_")
        assert main(["score", TRANSACTIONS, "--home", str(home), "--alias", "challenger", "--data",
                     str(tmp_path / name), "--output", str(out)]) == 0, capsys.readouterr().err
        assert "scored 240 rows" in capsys.readouterr().out, name
        (csv_file,) = glob.glob(str(out / "predictions-*.csv"))
        with open(csv_file, newline="") as f:
            scored = list(csv.DictReader(f))
        assert len(scored) == 240 and "on\nline" in {r["segment"] for r in scored}, name  # quoted on the way out
        np.testing.assert_allclose([float(r["predictions"]) for r in scored], _expected(first.pushed_path, scored),
                                   atol=1e-6)
    frame.loc[1, "amount"] = "lots"
    frame.to_csv(tmp_path / "worded.csv", index=False)
    assert main(["score", TRANSACTIONS, "--home", str(home), "--alias", "challenger", "--data",
                 str(tmp_path / "worded.csv"), "--output", str(tmp_path / "w")]) == 2
    assert "column 'amount': 'lots' is not a number" in capsys.readouterr().err
