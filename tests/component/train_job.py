"""A small training job run as its own process by test_training, which kills and resumes it.

Usage: python -m tests.component.train_job BACKUP_DIR RUN_DIR KILL_AFTER_EPOCH(0 = never)
Prints the epochs it trained, one JSON line.
"""
import json
import os
import sys

import components  # noqa: E402,F401 (sets the legacy-Keras switch before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from components import training_loop  # noqa: E402
from components.models.base import FeatureSpec, HeadSpec  # noqa: E402
from components.models.builder import build_model  # noqa: E402
from components.models.families import resolve_hparams  # noqa: E402


class KillAfter(keras.callbacks.Callback):
    """Ends the process abruptly (as a kill would) after an epoch's backup was written."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            os._exit(9)


def main(backup_dir: str, run_dir: str, kill_after: int) -> None:
    hp = resolve_hparams("dnn", {"epochs": 6, "patience": 100, "width": 8, "class_weight": "balanced",
                                 "lr_schedule": "warmup_cosine", "backup_seconds": 0})  # a backup every epoch
    keras.utils.set_random_seed(hp["seed"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0.5).astype("int64")
    data = tf.data.Dataset.from_tensor_slices(({"a_xf": x[:, :1], "b_xf": x[:, 1:]}, y)).batch(16)
    model = build_model("dnn", HeadSpec("binary"), FeatureSpec(numeric=("a_xf", "b_xf")), hp)
    extra = [KillAfter(kill_after)] if kill_after else []
    history = training_loop.fit(model, data, data, hp, run_dir, backup_dir, "binary", extra_callbacks=extra)
    print(json.dumps({"epochs": history.epoch, "lr": [float(v) for v in history.history["lr"]]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
