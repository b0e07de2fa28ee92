"""`mlops run` on bad input: a one-line error, exit code 2, in about a second (no TensorFlow import),
and nothing written to the home's stores."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_transactions_csv


def _mlops(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", "run", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def good_csv(tmp_path) -> Path:
    return write_transactions_csv(tmp_path / "good.csv")


def _text_in_numbers(tmp_path: Path, good: Path) -> Path:
    path = tmp_path / "text.csv"
    lines = good.read_text().splitlines()
    lines[10] = "n/a," + lines[10].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    return path


def _empty(tmp_path: Path, good: Path) -> Path:
    path = tmp_path / "empty.csv"
    path.write_text("")
    return path


def _good(tmp_path: Path, good: Path) -> Path:
    return good


def _ragged(tmp_path: Path, good: Path) -> Path:
    path = tmp_path / "ragged.csv"
    lines = good.read_text().splitlines()
    lines[4] += ",extra"
    path.write_text("\n".join(lines) + "\n")
    return path


def _binary(tmp_path: Path, good: Path) -> Path:
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    return path


def _image_folder(tmp_path: Path, good: Path) -> Path:
    for name in ("cats/a.png", "dogs/b.png"):
        (tmp_path / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "photos" / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    return tmp_path / "photos"


BINARY = ["--label", "is_fraud", "--task", "binary"]
# (case id, data file maker or None, arguments after --data FILE, the line's message)
BAD_INPUTS = [
    ("missing file", lambda tmp, good: tmp / "missing.csv", BINARY, "data file not found"),
    ("empty CSV", _empty, BINARY, "the CSV is empty"),
    ("no such label", _good, ["--label", "fraud", "--task", "binary"],
     "label column 'fraud' not found"),
    ("text in numbers", _text_in_numbers, BINARY, "column 'amount' is numeric but line 11 holds 'n/a'"),
    ("unknown task", _good, ["--label", "is_fraud", "--task", "ranking"], "unknown task 'ranking'"),
    ("no label", _good, ["--task", "binary"], "--data needs --label"),
    ("ragged row", _ragged, BINARY, "line 5 has 6 fields, the header has 5"),
    ("text label for regression", _good, ["--label", "segment", "--task", "regression"],
     "task 'regression' needs a numeric label; 'segment' holds text"),
    ("three values for binary", _good, ["--label", "segment", "--task", "binary"],
     "needs exactly 2 label values in 'segment', found 3"),
    ("not a CSV", _binary, BINARY, "not a CSV file (binary content)"),
    ("unknown --drop column", _good, [*BINARY, "--drop", "nope"], "--drop column 'nope' not found"),
    ("--text on the label", _good, [*BINARY, "--text", "is_fraud"], "--text names 'is_fraud', the label"),
    ("--text and --drop", _good, [*BINARY, "--text", "segment", "--drop", "segment"],
     "--text and --drop both name 'segment'; keep one"),
    ("--text and --categorical", _good, [*BINARY, "--text", "segment", "--categorical", "segment"],
     "--text and --categorical both name 'segment'; keep one"),
    ("--text on numbers", _good, [*BINARY, "--text", "amount"],
     "--text 'amount': its values are numbers, not words (--categorical reads codes as categories)"),
    ("--text-ngrams 4", _good, [*BINARY, "--text-ngrams", "4"], "--text-ngrams 4: choose one of 1, 2, 3"),
    ("--text-ngrams on a table without text", _good, [*BINARY, "--text-ngrams", "1"],
     "--text-ngrams shape how free-text columns are read; this input has none read as text"),
    ("text_learner on a table without text", _good, [*BINARY, "--hparam", "text_learner=conv"],
     "--hparam text_learner shape how free-text columns are read; this input has none read as text"),
    ("unknown family", _good, [*BINARY, "--family", "gbdt"], "unknown model family 'gbdt'"),
    ("bad hparam", _good, [*BINARY, "--hparam", "depth=deep"], "depth='deep': expected a int"),
    ("unknown text learner", _good, [*BINARY, "--hparam", "text_learner=bogus"],
     "text_learner='bogus': choose one of tfidf, pool, conv, lstm"),
    ("hparam without =", _good, [*BINARY, "--hparam", "depth"], "--hparam 'depth': expected KEY=VALUE"),
    ("unknown use case", None, ["nosuchcase"], "unknown use case 'nosuchcase'"),
    ("--time without forecast", _good, [*BINARY, "--time", "when"], "--time goes with --task forecast"),
    ("no such --time column", _good, ["--label", "amount", "--task", "forecast", "--time", "when", "--horizon", "3"],
     "--time column 'when' not found"),
    ("--time not a time", _good, ["--label", "amount", "--task", "forecast", "--time", "segment", "--horizon", "3"],
     "--time column 'segment':"),
    ("--text-ngrams on a series", _good, ["--label", "amount", "--task", "forecast", "--time", "when", "--horizon",
                                          "3", "--text-ngrams", "1"],
     "--text-ngrams: not read here; a series reads its values, --time, --series-id and --covariates"),
    ("--drop and --categorical on a series", _good,
     ["--label", "amount", "--task", "forecast", "--time", "when", "--horizon", "3", "--drop", "segment",
      "--categorical", "age_days"],
     "--drop and --categorical: not read here; a series reads its values"),
    ("--drop on images", _image_folder, ["--drop", "x"], "--drop: not read here; images are read from their files"),
    ("--image-size on a table", _good, [*BINARY, "--image-size", "64"],
     "--image-size: not read here; a table's columns are its features"),
    ("--text outside --features", _good, [*BINARY, "--features", "amount,risk_score", "--text", "segment"],
     "--text names 'segment', which --features leaves out; add it to --features or leave it out of --text"),
]
# Every --task against a table that does not fit it: refused by the preflight, never by a library
# halfway through the pipeline ('amount' is a continuous number, 'segment' text).
MISFITS = [
    ("binary", ["--label", "amount"], "task 'binary' needs exactly 2 label values in 'amount'"),
    ("multiclass", ["--label", "amount"], "task 'multiclass' needs integer or text class labels in 'amount'"),
    ("multiclass", ["--label", "age_days"], "more than one per 5 rows; a numeric label with many values is --task "
                                            "regression"),
    ("regression", ["--label", "segment"], "task 'regression' needs a numeric label; 'segment' holds text"),
    ("anomaly", ["--label", "amount"], "task 'anomaly' needs exactly 2 label values in 'amount'"),
    ("multilabel", ["--label", "is_fraud"], "--task multilabel needs two or more 0/1 label columns"),
    ("multilabel", ["--label", "is_fraud,amount"], "task 'binary' needs exactly 2 label values in 'amount'"),
    ("multitask", ["--label", "is_fraud,segment"], "multitask needs COLUMN:TASK pairs"),
    ("multitask", ["--label", "is_fraud:binary,segment:regression"],
     "task 'regression' needs a numeric label; 'segment' holds text"),
    ("forecast", ["--label", "amount"], "--task forecast on --data needs --time COL (the time column) and "
                                        "--horizon H"),
]
BAD_INPUTS += [(f"--task {task} on {' '.join(args)}", _good, [*args, "--task", task], message)
               for task, args, message in MISFITS]


@pytest.mark.parametrize("make_data, args, message", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_each_bad_input_is_one_line_and_exit_2(tmp_path, good_csv, make_data, args, message):
    home = tmp_path / "home"
    data = ["--data", str(make_data(tmp_path, good_csv))] if make_data else []
    result = _mlops(home, *data, *args)
    assert result.returncode == 2, (args, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlops: error: "), result.stderr
    assert message in lines[0], (message, lines[0])
    assert "Traceback" not in result.stderr
    assert not home.exists()  # nothing written, not even the home
