"""`mlops run --train-workers 2`: the Trainer's executor starts two worker processes on loopback
ports under MultiWorkerMirroredStrategy (components.train_workers); the chief's model is pushed, it
records two replicas in sync, its eval AUC is within noise of one worker's on the same data and
epochs, the served SavedModel answers, and no worker leaves files in the temporary folder."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import DNN_ALONE

pytestmark = pytest.mark.pipeline
MLOPS = str(Path(sys.executable).with_name("mlops"))
EPOCHS = ("--hparam", "epochs=4", *DNN_ALONE)


def _run(home: Path, csv: Path, *extra: str) -> str:
    done = subprocess.run([MLOPS, "run", "--data", str(csv), "--label", "is_fraud", "--name", "fraud", "--home",
                           str(home), "--no-edge", "--no-tracking", *EPOCHS, *extra],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _model_info(home: Path) -> dict:
    found = sorted(home.glob("pipelines/fraud/Trainer/model_run/*/model.json"))
    return json.loads(found[-1].read_text())


def _auc(out: str) -> float:
    line = next(line for line in out.splitlines() if line.strip().startswith("auc "))
    return float(line.split()[1])


def test_two_workers_train_the_pushed_model_within_noise_of_one(tmp_path, transactions_csv):
    import tensorflow as tf

    before = set(os.listdir(tempfile.gettempdir()))
    two = _run(tmp_path / "two", transactions_csv, "--train-workers", "2")
    after = {name for name in set(os.listdir(tempfile.gettempdir())) - before
             if name.startswith(("mlops-train-workers-", "mlops-worker-"))}
    one = _run(tmp_path / "one", transactions_csv)
    assert _model_info(tmp_path / "two")["replicas_in_sync"] == 2 and _model_info(tmp_path / "one")[
        "replicas_in_sync"] == 1
    assert "on 2 workers" in next(line for line in two.splitlines() if line.lstrip().startswith("[") and "Trainer" in
                                  line)
    assert abs(_auc(two) - _auc(one)) < 0.03, (_auc(two), _auc(one))
    assert not after, after
    pushed = sorted((tmp_path / "two" / "serving" / "fraud").iterdir())[-1]
    signature = tf.saved_model.load(str(pushed)).signatures["serving_default"]
    row = {"amount": 12.5, "age_days": 300.0, "risk_score": 1.5, "segment": "online"}
    specs = signature.structured_input_signature[1]
    inputs = {name: tf.constant([row[name]], spec.dtype) for name, spec in specs.items()}
    scores = signature(**inputs)["predictions"].numpy()
    assert scores.shape == (1, 1) and 0.0 <= float(scores[0, 0]) <= 1.0
