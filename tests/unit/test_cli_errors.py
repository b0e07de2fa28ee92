"""`mlops run` on bad input: a one-line error, exit code 2, in about a second (no TensorFlow import),
and nothing written to the home's stores."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_transactions_csv


def _mlops(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def good_csv(tmp_path) -> Path:
    return write_transactions_csv(tmp_path / "good.csv")


def _bad_cases(tmp_path: Path, good: Path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    text_in_numbers = tmp_path / "text.csv"
    lines = good.read_text().splitlines()
    lines[10] = "n/a," + lines[10].split(",", 1)[1]
    text_in_numbers.write_text("\n".join(lines) + "\n")
    return [
        (["--data", str(tmp_path / "missing.csv"), "--label", "is_fraud", "--task", "binary"],
         "data file not found"),
        (["--data", str(empty), "--label", "is_fraud", "--task", "binary"], "the CSV is empty"),
        (["--data", str(good), "--label", "fraud", "--task", "binary"], "label column 'fraud' not found"),
        (["--data", str(text_in_numbers), "--label", "is_fraud", "--task", "binary"],
         "column 'amount' is numeric but line 11 holds 'n/a'"),
        (["--data", str(good), "--label", "is_fraud", "--task", "ranking"], "unknown task 'ranking'"),
        (["--data", str(good), "--label", "is_fraud"], "--data needs --task"),
        (["--data", str(good), "--label", "is_fraud", "--task", "binary", "--family", "gbdt"],
         "unknown model family 'gbdt'"),
        (["--data", str(good), "--label", "is_fraud", "--task", "binary", "--hparam", "depth=deep"],
         "depth='deep': expected a int"),
        (["nosuchcase"], "unknown use case 'nosuchcase'"),
    ]


def test_each_bad_input_is_one_line_and_exit_2(tmp_path, good_csv):
    home = tmp_path / "home"
    for args, message in _bad_cases(tmp_path, good_csv):
        result = _mlops(home, *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mlops: error: "), result.stderr
        assert message in lines[0], (message, lines[0])
        assert "Traceback" not in result.stderr
    assert not (home / "serving").exists()
    assert not (home / "metadata.sqlite").exists()
