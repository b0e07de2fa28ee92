"""Training foundation shared by every family: early stopping, a checkpoint each epoch, resume after
a killed run, learning-rate schedules, class weights, TensorBoard logs, a distribution strategy."""
import hashlib
import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components import libraries_are_not_autographed
from components.progress_records import log_epoch

libraries_are_not_autographed()
CHECKPOINTS = "checkpoints"  # in the model-run dir: the weights after each epoch


class EpochProgress(keras.callbacks.Callback):
    """Reports each finished epoch (number, planned epochs, losses) through ``components.progress_records``,
    so `mlops run` can show a live counter; ``stage`` names a part such as a tuning trial."""

    def __init__(self, epochs: int, stage: str = ""):
        super().__init__()
        self.epochs, self.stage = epochs, stage
        self.seconds: List[float] = []  # wall seconds per epoch: the first holds tracing and the input's start
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self._started, 4))
        metrics = {k: float(v) for k, v in (logs or {}).items() if k in ("loss", "val_loss")}
        log_epoch(epoch + 1, self.epochs, metrics, self.stage)


class PeriodicBackup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, writing its backup at an epoch's end only once ``seconds`` passed
    since the last one (0: every epoch): a small model's backup (model and optimizer) costs a good
    share of its short epoch; slow epochs are still backed up every time."""

    def __init__(self, backup_dir: str, seconds: float, clock: Callable[[], float] = time.monotonic):
        super().__init__(backup_dir)
        self.seconds, self._clock = seconds, clock
        self._last = 0.0

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._last = self._clock()

    def on_epoch_end(self, epoch, logs=None):
        if self._clock() - self._last >= self.seconds:
            super().on_epoch_end(epoch, logs)
            self._last = self._clock()


_STRATEGY: List[tf.distribute.Strategy] = []  # made once per process: a collective one cannot be made twice


def strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names several workers (components.train_workers),
    else MirroredStrategy over every GPU there is, else the default strategy (a CPU-only machine)."""
    if not _STRATEGY:
        from components.tf_config import cluster_from_env

        if cluster_from_env() is not None:
            _STRATEGY.append(tf.distribute.MultiWorkerMirroredStrategy())
        elif tf.config.list_logical_devices("GPU"):
            _STRATEGY.append(tf.distribute.MirroredStrategy())
        else:
            _STRATEGY.append(tf.distribute.get_strategy())
    return _STRATEGY[0]


def shard_for_workers(data: tf.data.Dataset) -> tf.data.Dataset:
    """Under several workers each reads every n-th batch of the data (DATA sharding: a split may be
    one file, fewer than the workers, which file sharding refuses); unchanged otherwise."""
    if not isinstance(strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return data
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


def learning_rate_at(epoch: int, hp: Mapping[str, Any]) -> float:
    """The learning rate for a (0-based) epoch: constant, cosine decay, or linear warm-up then cosine
    (``hp`` resolved: components.models.families.resolve_hparams refuses any other schedule)."""
    base, epochs, schedule = hp["learning_rate"], max(1, hp["epochs"]), hp["lr_schedule"]
    if schedule == "constant":
        return base
    warmup = hp["warmup_epochs"] if schedule == "warmup_cosine" else 0
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    progress = (epoch - warmup) / max(1, epochs - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def balanced_class_weights(labels: np.ndarray) -> Dict[int, float]:
    """n / (k * count) per class, as scikit-learn's 'balanced'."""
    classes, counts = np.unique(labels.astype(int).reshape(-1), return_counts=True)
    return {int(c): float(len(labels) / (len(classes) * n)) for c, n in zip(classes, counts)}


def class_weights(train: tf.data.Dataset, hp: Mapping[str, Any], task_name: str) -> Optional[Dict[int, float]]:
    if hp["class_weight"] == "none" or task_name not in ("binary", "multiclass"):
        return None
    labels = np.concatenate([np.asarray(y).reshape(-1) for _, y in train])
    return balanced_class_weights(labels)


def resume_key(*parts: Any) -> str:
    """A stable name for one training job, so a rerun after a kill finds its backup."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fit(model: keras.Model, train: tf.data.Dataset, evaluation: tf.data.Dataset, hp: Mapping[str, Any],
        run_dir: str, backup_dir: str, task_name: str,
        extra_callbacks: Optional[List[keras.callbacks.Callback]] = None) -> keras.callbacks.History:
    """Fits with every callback of the foundation. ``backup_dir`` must outlive a killed process:
    Keras' BackupAndRestore resumes from its last backup there (``PeriodicBackup``) and deletes it
    when training ends."""
    stop_early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=hp["patience"],
                                               restore_best_weights=True)
    callbacks = [
        PeriodicBackup(backup_dir, hp["backup_seconds"]),
        # TF checkpoint format (``model.load_weights(<run>/checkpoints/epoch-007)``): faster than
        # .weights.h5, for which tf_keras walks every layer in Python
        keras.callbacks.ModelCheckpoint(os.path.join(run_dir, CHECKPOINTS, "epoch-{epoch:03d}"),
                                        save_weights_only=True),
        keras.callbacks.LearningRateScheduler(lambda epoch, _: learning_rate_at(epoch, hp)),
        keras.callbacks.TensorBoard(log_dir=os.path.join(run_dir, "logs")),
        stop_early,
        progress := EpochProgress(hp["epochs"]),
        *(extra_callbacks or []),
    ]
    history = model.fit(train, validation_data=evaluation, epochs=hp["epochs"], callbacks=callbacks,
                        class_weight=class_weights(train, hp, task_name), verbose=2)
    history.epoch_seconds = progress.seconds
    history.best_epoch = stop_early.best_epoch + 1 if stop_early.best is not None else len(history.epoch)
    if os.path.isdir(backup_dir) and not os.listdir(backup_dir):
        os.rmdir(backup_dir)  # Keras empties it when training completes; leave no trace
    return history
