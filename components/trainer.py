"""The Trainer's run_fn: build the configured family, fit with early stopping, export with signatures.

Referenced by TFX as ``components.trainer.run_fn``. ``custom_config`` holds label, task, family,
hyperparameter overrides and ``backup_root`` (where an interrupted training resumes from).
Besides the SavedModel, the run writes ``history.json`` (per-epoch metrics) and ``model.json``
(what was built) into the model-run dir, for tracking after the run.
"""
import json
import os
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx_bsl.public import tfxio

from components import training
from components.export import serving_signatures
from components.features import LABEL_VOCABULARY, raw_name, transformed_name, vocabulary_name
from components.models.builder import build_model
from components.models.base import FeatureSpec, HeadSpec
from components.models.registry import resolve_hparams
from components.tasks import get_task
from components.transform import OOV_BUCKETS

HISTORY_FILE = "history.json"
MODEL_FILE = "model.json"


def feature_spec_from_transform(tft_output: tft.TFTransformOutput, label: str) -> FeatureSpec:
    """Numeric and categorical model inputs, read from the Transform's output spec."""
    numeric, categorical = [], {}
    for name, feature in sorted(tft_output.transformed_feature_spec().items()):
        if name == transformed_name(label):
            continue
        if feature.dtype == tf.int64:
            size = tft_output.vocabulary_size_by_name(vocabulary_name(raw_name(name)))
            categorical[name] = size + OOV_BUCKETS
        else:
            numeric.append(name)
    return FeatureSpec(numeric=tuple(numeric), categorical=categorical)


def class_names(tft_output: tft.TFTransformOutput, task_name: str) -> list:
    if get_task(task_name).label_encoding == "float":
        return []
    try:
        return [v.decode() if isinstance(v, bytes) else str(v)
                for v in tft_output.vocabulary_by_name(LABEL_VOCABULARY)]
    except (ValueError, tf.errors.NotFoundError):
        return ["0", "1"]  # a binary 0/1 label is used as it is, without a vocabulary


def _dataset(fn_args: FnArgs, files: Any, tft_output: tft.TFTransformOutput, label: str,
             batch_size: int, shuffle: bool) -> tf.data.Dataset:
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size, label_key=transformed_name(label), num_epochs=1, shuffle=shuffle,
        shuffle_seed=7 if shuffle else None,
    )
    return fn_args.data_accessor.tf_dataset_factory(files, options, tft_output.transformed_metadata.schema)


def run_fn(fn_args: FnArgs) -> None:
    config: Dict[str, Any] = fn_args.custom_config
    label, task_name, family = config["label"], config["task"], config["family"]
    hp = resolve_hparams(family, config.get("hparams", {}))
    keras.utils.set_random_seed(hp["seed"])

    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    spec = feature_spec_from_transform(tft_output, label)
    classes = class_names(tft_output, task_name)
    with training.strategy().scope():
        model = build_model(family, HeadSpec(task_name, units=max(2, len(classes))), spec, hp)

    train = _dataset(fn_args, fn_args.train_files, tft_output, label, hp["batch_size"], shuffle=True)
    evaluation = _dataset(fn_args, fn_args.eval_files, tft_output, label, hp["batch_size"], shuffle=False)
    backup_dir = os.path.join(config["backup_root"], training.resume_key(
        fn_args.train_files, fn_args.transform_output, family, task_name, hp))
    history = training.fit(model, train, evaluation, hp, fn_args.model_run_dir, backup_dir, task_name)

    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as f:
        json.dump({k: [float(v) for v in vs] for k, vs in history.history.items()}, f)
    with open(os.path.join(fn_args.model_run_dir, MODEL_FILE), "w") as f:
        json.dump({"family": family, "task": task_name, "hparams": hp, "class_names": classes,
                   "parameters": int(model.count_params()), "epochs_run": len(history.epoch),
                   "best_epoch": int(history.best_epoch)}, f, indent=1)

    model.save(fn_args.serving_model_dir, save_format="tf",
               signatures=serving_signatures(model, tft_output, label))
