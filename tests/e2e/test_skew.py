"""`mlops skew`: the rows a serving endpoint logged for the session's pushed version against the
training split that version was trained on (found by lineage in ML Metadata)."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from serving.runtime.request_log import RequestLogger
from tests.helpers import TRANSACTIONS

pytestmark = pytest.mark.pipeline


def _log_requests(root: Path, version: int, csv_path: Path, amount_scale: float) -> None:
    """What `mlops serve --log-requests 1` writes for these rows (8 per request)."""
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    inputs = {"amount": np.array([float(r["amount"]) * amount_scale for r in rows], np.float32),
              "age_days": np.array([float(r["age_days"]) if r["age_days"] else math.nan for r in rows]),
              "risk_score": np.array([float(r["risk_score"]) for r in rows], np.float32),
              "segment": np.array([r["segment"] for r in rows], object)}
    logger = RequestLogger(root, 1.0)
    for start in range(0, len(rows), 8):
        logger.log_rows(TRANSACTIONS, version, {k: v[start:start + 8] for k, v in inputs.items()})
    logger.close()
    assert logger.written == len(rows)


@pytest.fixture(scope="module")
def version(transactions_runs) -> int:
    return int(Path(transactions_runs[2].pushed_path).name)


def test_requests_like_the_training_data_show_no_skew(transactions_runs, transactions_csv, version, tmp_path,
                                                       capsys):
    home = transactions_runs[0]
    _log_requests(tmp_path / "logs", version, transactions_csv, amount_scale=1.0)
    code = main(["skew", TRANSACTIONS, "--home", str(home), "--request-log-dir", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"version {version}: 240 logged request rows" in out
    for feature in ("amount", "age_days", "risk_score", "segment"):
        assert feature in out
    assert "SKEWED" not in out and "is_fraud" not in out  # the label is never in requests


def test_a_shifted_feature_is_named_with_its_distance_and_threshold(transactions_runs, transactions_csv, version,
                                                                    tmp_path, capsys):
    home = transactions_runs[0]
    _log_requests(tmp_path / "logs", version, transactions_csv, amount_scale=10.0)
    code = main(["skew", TRANSACTIONS, "--home", str(home), "--request-log-dir", str(tmp_path / "logs"),
                 "--numeric-threshold", "0.2"])
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert code == 1
    assert "JENSEN_SHANNON_DIVERGENCE" in lines["amount"] and lines["amount"].endswith("SKEWED")
    assert float(lines["amount"].split()[2]) > 0.2 and " 0.2 " in lines["amount"]
    assert lines["segment"].endswith("ok") and lines["risk_score"].endswith("ok")


def test_no_logs_or_an_unknown_version_is_one_line(transactions_runs, version, tmp_path, capsys):
    home = transactions_runs[0]
    assert main(["skew", TRANSACTIONS, "--home", str(home), "--request-log-dir", str(tmp_path / "none")]) == 2
    assert "no request logs" in capsys.readouterr().err
    (tmp_path / "logs" / TRANSACTIONS / str(version)).mkdir(parents=True)
    (tmp_path / "logs" / TRANSACTIONS / str(version) / "requests-x.tfrecord").write_bytes(b"")
    assert main(["skew", TRANSACTIONS, "--home", str(home), "--request-log-dir", str(tmp_path / "logs"),
                 "--version", "7"]) == 2
    assert f"no request logs for version 7 (logged: {version})" in capsys.readouterr().err
