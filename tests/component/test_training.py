"""The training foundation: schedules, class weights, per-epoch checkpoints, resume after a kill."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from components import training_loop
from components.models.families import resolve_hparams

REPO = Path(__file__).resolve().parents[2]


def _lr(schedule: str, epoch: int, epochs: int = 10) -> float:
    hp = resolve_hparams("dnn", {"lr_schedule": schedule, "epochs": epochs, "learning_rate": 1.0,
                                 "warmup_epochs": 3})
    return training_loop.learning_rate_at(epoch, hp)


def test_learning_rate_schedules():
    assert [_lr("constant", e) for e in (0, 5, 9)] == [1.0, 1.0, 1.0]
    cosine = [_lr("cosine", e) for e in range(10)]
    assert cosine[0] == 1.0 and all(a > b for a, b in zip(cosine, cosine[1:])) and cosine[-1] < 0.05
    warm = [_lr("warmup_cosine", e) for e in range(10)]
    assert warm[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert warm[4] == pytest.approx(0.5 * (1 + math.cos(math.pi / 7)))
    with pytest.raises(ValueError, match="lr_schedule='step': choose one of constant, cosine, warmup_cosine"):
        _lr("step", 0)


def test_balanced_class_weights_match_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0] * 90 + [1] * 10)
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=labels)
    assert training_loop.balanced_class_weights(labels) == pytest.approx({0: expected[0], 1: expected[1]})


def _job(backup: Path, run_dir: Path, kill_after: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.component.train_job", str(backup), str(run_dir),
                           str(kill_after)], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_a_killed_training_resumes_from_its_last_epoch(tmp_path):
    backup = tmp_path / "backup"
    killed = _job(backup, tmp_path / "run1", kill_after=3)
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert backup.exists() and any(backup.iterdir())
    saved = {p.name for p in (tmp_path / "run1" / training_loop.CHECKPOINTS).iterdir()}
    assert {f"epoch-00{n}.index" for n in (1, 2, 3)} <= saved and "epoch-004.index" not in saved
    assert any((tmp_path / "run1" / "logs").rglob("events.out.tfevents.*"))  # TensorBoard

    resumed = _job(backup, tmp_path / "run2", kill_after=0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["epochs"] == [3, 4, 5]  # epochs 1-3 were not trained again
    assert not backup.exists()  # removed once training completed


def test_warm_start_only_from_a_model_of_the_same_architecture(tmp_path):
    from components.trainer import MODEL_DESCRIPTION, warm_start

    description = {"family": "dnn", "task": "binary", "hparams": {"width": 32, "epochs": 10, "learning_rate": 0.01},
                   "inputs": {"numeric": ["amount"], "categorical": {}, "tensors": {}},
                   "head": {"task": "binary", "units": 1, "subheads": []}}
    base = tmp_path / "base"
    assert warm_start(None, str(base), description)["reason"] == "base model has no description"

    def refusal(**changes) -> str:
        (base / "assets.extra").mkdir(parents=True, exist_ok=True)
        base_description = json.loads(json.dumps(description))
        for key, value in changes.items():
            base_description[key] = value
        (base / "assets.extra" / MODEL_DESCRIPTION).write_text(json.dumps(base_description))
        return warm_start(None, str(base), description)["reason"]

    assert refusal(head={"task": "binary", "units": 2, "subheads": []}) == "different head"
    assert refusal(inputs={"numeric": ["amount", "age"], "categorical": {}, "tensors": {}}) == "different inputs"
    assert refusal(hparams={**description["hparams"], "width": 16}) == "different architecture hyperparameters"


@pytest.mark.parametrize("seconds, backed_up", [(0, [0, 1, 2, 3, 4, 5]), (1.0, [2, 5])])
def test_the_resume_backup_is_written_once_its_interval_passed(tmp_path, seconds, backed_up):
    """Epochs of 0.4 s (a clock the test moves): with a 1 s interval the backup is written after the
    third and the sixth epoch, with 0 after every one; the backup is still deleted at the end."""
    import tensorflow as tf
    import tf_keras as keras

    now = [0.0]
    written = []

    class Recorded(training_loop.PeriodicBackup):
        def _backup(self, epoch, batch=0):
            written.append(epoch)
            super()._backup(epoch, batch)

    class Tick(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            now[0] += 0.4

    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    model.compile("sgd", "mse")
    data = tf.data.Dataset.from_tensor_slices((np.ones((8, 2), "float32"), np.ones((8, 1), "float32"))).batch(4)
    backup = tmp_path / "backup"
    model.fit(data, epochs=6, verbose=0, callbacks=[Tick(), Recorded(str(backup), seconds, clock=lambda: now[0])])
    assert written == backed_up
    assert not backup.exists() or not any(backup.iterdir())


@pytest.mark.parametrize("family, windows, truth, kept", [
    ("dnn", 40, 0.0, 0.0), ("dnn", 40, 0.5, 0.5), ("dnn", 40, 1.0, 1.0), ("dnn", 40, 0.45, 0.5),
    ("dnn", 29, 1.0, 0.5), ("dnn", 29, 0.0, 0.5), ("seq2seq", 40, 0.0, 0.0)])  # seq2seq: a per-step head
def test_a_forecaster_keeps_the_share_of_its_correction_the_validation_windows_favour(family, windows, truth, kept):
    """The head's last layer is scaled by the kept share, so the model's output is that share of what
    it was; the validation MAE of every share is reported; under 30 windows the share is a half."""
    import tensorflow as tf

    from components.models.base import FeatureSpec, HeadSpec
    from components.models.builder import build_model
    from components.trainer import CORRECTION_SHARES, weigh_correction

    spec = FeatureSpec(tensors={"window_xf": (8, 1)})
    model = build_model(family, HeadSpec("forecast", units=4, zero_start=False), spec, {"seed": 1})
    inputs = np.random.default_rng(3).normal(size=(windows, 8, 1)).astype("float32")
    before = model({"window_xf": inputs}).numpy()
    validation = tf.data.Dataset.from_tensor_slices(({"window_xf": inputs}, truth * before)).batch(16)
    report = weigh_correction(model, validation)
    assert (report["correction_kept"], report["validation_windows"]) == (kept, windows)
    assert report["chosen_by"] == ("validation" if windows >= 30 else "combination")
    assert set(report["validation_mae"]) == {str(w) for w in CORRECTION_SHARES}
    np.testing.assert_allclose(model({"window_xf": inputs}).numpy(), kept * before, rtol=1e-5, atol=1e-6)
