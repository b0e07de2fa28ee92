"""The Trainer's run_fn: build the configured family, fit with the training foundation, export
with serving signatures.

Referenced by TFX as ``components.trainer.run_fn``. ``custom_config`` is a
``components.specs.TrainSpec``: the Transform's spec plus family, hyperparameter overrides and
``backup_root`` (where an interrupted training resumes from), parsed once at the top. Besides the
SavedModel, the run writes ``history.json`` (per-epoch metrics) and ``model.json`` (what was
built) into the model-run dir, for tracking after the run.
"""
import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx_bsl.public import tfxio

from components import train_workers, training_loop
from components.export import mark_signature_methods, save_model, serving_signatures
from components.features import (
    FORECAST_BASE,
    KNOWN_AHEAD,
    LABEL_OFFSET,
    LABEL_SCALE,
    feature_vocabularies,
    is_model_input,
    label_vocabulary,
    raw_name,
    transformed_name,
)
from components.forecast_bases import BASE_NAMES
from components.gate_metrics import HIGHER_IS_BETTER
from components.gate_metrics import value as gate_metric_value
from components.image_layers import augmentation
from components.models import autoencoder, distillation, transfer
from components.models.base import LOSSES, FeatureSpec, HeadSpec, forecast_head_layer, task_metrics
from components.models.builder import build_model
from components.models.families import TRAINING_DEFAULTS, resolve_hparams, small_data_defaults, tuned_values
from components.specs import VALIDATION_WINDOWS, TrainSpec, TransformSpec
from components.tasks import get_task
from components.text_features import TEXT_RESERVED_IDS, TFIDF_SUFFIX, text_vocabulary, tfidf_column
from components.transform import OOV_BUCKETS
from serving.codec.columns import write_columns
from serving.codec.images import ImageInfo, write_image_info
from serving.codec.periods import SeriesInfo, write_series_info

HISTORY_FILE = "history.json"
MODEL_FILE = "model.json"
CACHE_BYTES = 4 << 20  # a split up to this size on disk (GZIP tf.Examples) is held in memory after one read
SHUFFLE_BUFFER = 10_000  # rows, as TFX's reader shuffles
MODEL_DESCRIPTION = "mlops_model.json"  # in the SavedModel's assets.extra (TF Serving ignores it)
TRAINING_ONLY = (*TRAINING_DEFAULTS, "threshold_quantile")  # hyperparameters that leave the architecture as is


def feature_spec_from_transform(tft_output: tft.TFTransformOutput, labels: Tuple[str, ...]) -> FeatureSpec:
    """Numeric, categorical and tensor model inputs, read from the Transform's output spec."""
    numeric, categorical, tensors, texts, known_ahead, weights = [], {}, {}, {}, {}, set()
    label_keys = {transformed_name(label) for label in labels}
    vocabularies = feature_vocabularies(tft_output)
    for name, feature in sorted(tft_output.transformed_feature_spec().items()):
        if not is_model_input(name, label_keys):
            continue
        if name == transformed_name(KNOWN_AHEAD):
            known_ahead[name] = tuple(feature.shape)
        elif feature.dtype == tf.int64 and len(feature.shape) == 1 and feature.shape[0] > 1:  # word ids
            words = tft_output.vocabulary_size_by_name(text_vocabulary(raw_name(name)))
            texts[name] = (int(feature.shape[0]), int(words) + TEXT_RESERVED_IDS)
        elif raw_name(name).endswith(TFIDF_SUFFIX) and len(feature.shape) == 1 and feature.shape[0] > 1:
            weights.add(name)
        elif list(feature.shape) != [1]:
            tensors[name] = tuple(feature.shape)
        elif feature.dtype == tf.int64:
            categorical[name] = len(vocabularies.get(raw_name(name), ())) + OOV_BUCKETS
        else:
            numeric.append(name)
    text_weights = {name: transformed_name(tfidf_column(raw_name(name))) for name in texts}
    return FeatureSpec(numeric=tuple(numeric), categorical=categorical, tensors=tensors, texts=texts,
                       known_ahead=known_ahead,
                       text_weights={name: key for name, key in text_weights.items() if key in weights})


def class_names(tft_output: tft.TFTransformOutput, label: str, task_name: str) -> List[str]:
    encoding = get_task(task_name).label_encoding
    if encoding == "float":
        return []
    try:
        return [v.decode() if isinstance(v, bytes) else str(v)
                for v in tft_output.vocabulary_by_name(label_vocabulary(label))]
    except (ValueError, tf.errors.NotFoundError):
        return ["0", "1"]  # a 0/1 label is used as it is, without a vocabulary


def head_spec(config: TransformSpec, classes: Mapping[str, List[str]],
              tft_output: tft.TFTransformOutput) -> HeadSpec:
    if config.task == "forecast":
        label = transformed_name(config.targets[0][0])
        return HeadSpec("forecast", units=int(tft_output.transformed_feature_spec()[label].shape[0]),
                        zero_start=config.season > 0)  # a user's series: a correction to the Transform's base forecast
    if config.task == "multilabel":
        return HeadSpec("multilabel", units=len(config.targets))
    if config.task == "multitask":
        return HeadSpec("multitask", subheads=tuple((label, subtask, max(2, len(classes[label])))
                                                    for label, subtask in config.targets))
    label = config.targets[0][0]
    return HeadSpec(config.task, units=max(2, len(classes[label])))


def spec_classes_head(tft_output: tft.TFTransformOutput, config: TransformSpec):
    """Model inputs, class names per label and the head, all read from the Transform's output."""
    spec = feature_spec_from_transform(tft_output, config.labels)
    classes = {label: class_names(tft_output, label, subtask) for label, subtask in config.targets}
    return spec, classes, head_spec(config, classes, tft_output)


def files_bytes(patterns: Any) -> int:
    """The size on disk of the files a TFX split's patterns name."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    return sum(tf.io.gfile.stat(path).length for pattern in patterns for path in tf.io.gfile.glob(pattern))


def _dataset(fn_args: FnArgs, files: Any, tft_output: tft.TFTransformOutput, config: TransformSpec,
             batch_size: int, shuffle: bool) -> tf.data.Dataset:
    """(model inputs, label) batches read by TFX's data accessor. A split of at most CACHE_BYTES on
    disk is read and parsed once and kept in memory, its rows shuffled each epoch from there (with
    the buffer TFX's reader uses): re-reading was a fifth of a small table's epoch.
    Larger splits are read each epoch, shuffled by the reader (per-row work in tf.data would cost
    more than the parsing it saves: 8.8 s an epoch at 800,000 rows of 30 features)."""
    cached = files_bytes(files) <= CACHE_BYTES
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=1, shuffle=shuffle and not cached,
                                             shuffle_buffer_size=SHUFFLE_BUFFER, shuffle_seed=7 if shuffle else None)
    data = fn_args.data_accessor.tf_dataset_factory(files, options, tft_output.transformed_metadata.schema)
    # not AutoGraph'd: its Python branches are on the config, not on tensors; converting it (and what it
    # calls) was 0.35 s of AST work per Trainer, 7% of the default job's
    data = data.map(tf.autograph.experimental.do_not_convert(lambda features: inputs_and_label(features, config)))
    data = training_loop.shard_for_workers(data)
    if not cached:
        return data
    data = data.cache()
    if shuffle:
        data = data.unbatch().shuffle(SHUFFLE_BUFFER, seed=7, reshuffle_each_iteration=True).batch(batch_size)
    return data


def inputs_and_label(features: Mapping[str, tf.Tensor], config: TransformSpec) -> Tuple[Dict[str, tf.Tensor], Any]:
    """A batch of transformed features as (model inputs, label): the label is a dict by head name
    for multitask, a [batch, labels] matrix for multilabel."""
    labels = config.labels
    keys = {transformed_name(label) for label in labels}
    x = {k: v for k, v in features.items() if is_model_input(k, keys)}
    if config.task == "multitask":
        return x, {label: features[transformed_name(label)] for label in labels}
    if config.task == "multilabel":  # [batch, labels] of 0/1
        return x, tf.concat([tf.cast(features[transformed_name(label)], tf.float32) for label in labels], axis=1)
    if LABEL_SCALE in features:  # regression: the model learns the standardized label
        return x, (features[transformed_name(labels[0])] - features[LABEL_OFFSET]) / features[LABEL_SCALE]
    return x, features[transformed_name(labels[0])]


@tf.autograph.experimental.do_not_convert
def _is_normal(features, label):
    return tf.reduce_all(tf.equal(label, 0))


@tf.autograph.experimental.do_not_convert
def _features_only(features, label):
    return features


def _normal_rows_only(data: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """An autoencoder learns what normal looks like: label 0 rows, features only."""
    return data.unbatch().filter(_is_normal).map(_features_only).batch(batch_size)


def _fit_anomaly_threshold(model: keras.Model, evaluation: tf.data.Dataset, hp: Mapping[str, Any]) -> float:
    scores, labels = [], []
    for x, y in evaluation:
        scores.append(model(x, training=False)[autoencoder.SCORE].numpy().reshape(-1))
        labels.append(np.asarray(y).reshape(-1))
    threshold = autoencoder.choose_threshold(np.concatenate(scores), np.concatenate(labels),
                                             quantile=hp["threshold_quantile"])
    autoencoder.set_threshold(model, threshold)
    return threshold


def load_transform_output(fn_args: FnArgs) -> tft.TFTransformOutput:
    return tft.TFTransformOutput(fn_args.transform_graph_path)


def make_datasets(fn_args: FnArgs, tft_output: tft.TFTransformOutput, config: TransformSpec,
                  hp: Mapping[str, Any]) -> Tuple[tf.data.Dataset, tf.data.Dataset]:
    train = _dataset(fn_args, fn_args.train_files, tft_output, config, hp["batch_size"], shuffle=True)
    evaluation = _dataset(fn_args, fn_args.eval_files, tft_output, config, hp["batch_size"], shuffle=False)
    return train, evaluation


def model_description(family: str, task_name: str, hp: Mapping[str, Any], spec: FeatureSpec,
                      head: HeadSpec) -> dict:
    """What a model is, for warm starts: a base model must match family, inputs and head."""
    return {"family": family, "task": task_name, "hparams": dict(hp),
            "inputs": {"numeric": list(spec.numeric), "categorical": dict(spec.categorical),
                       "tensors": {k: list(v) for k, v in spec.tensors.items()},
                       **({"texts": {k: list(v) for k, v in spec.texts.items()}} if spec.texts else {}),
                       **({"text_weights": dict(spec.text_weights)} if spec.text_weights else {})},
            "head": {"task": head.task, "units": head.units, "subheads": [list(h) for h in head.subheads]}}


def warm_start(model: keras.Model, base_model_dir: str, description: dict) -> Dict[str, Any]:
    """Loads the weights of the base model (the last blessed one) when it has the same family,
    input signature, head and architecture; otherwise trains from scratch and says why."""
    meta_path = os.path.join(base_model_dir, "assets.extra", MODEL_DESCRIPTION)
    if not os.path.exists(meta_path):
        return {"from": base_model_dir, "loaded": False, "reason": "base model has no description"}
    with open(meta_path) as f:
        base = json.load(f)
    for key in ("family", "inputs", "head"):
        if base.get(key) != description[key]:
            return {"from": base_model_dir, "loaded": False, "reason": f"different {key}"}
    architecture = {k: v for k, v in description["hparams"].items() if k not in TRAINING_ONLY}
    if {k: v for k, v in base["hparams"].items() if k not in TRAINING_ONLY} != architecture:
        return {"from": base_model_dir, "loaded": False, "reason": "different architecture hyperparameters"}
    model.load_weights(os.path.join(base_model_dir, "variables", "variables")).expect_partial()
    return {"from": base_model_dir, "loaded": True}


def _transfer(model, base, head: HeadSpec, train, evaluation, hp: Mapping[str, Any], run_dir: str, backup_dir: str,
              task_name: str, info: Dict[str, Any]):
    """Phase 1 trains the head on the frozen base; phase 2 unfreezes the base's top layers at a
    learning rate ten times lower. One history, both phases (``info["transfer"]`` says where)."""
    before = transfer.weights_digest(base)
    history = training_loop.fit(model, train, evaluation, hp, run_dir, backup_dir, task_name)
    report = {"head_epochs": len(history.epoch), "base_parameters": int(base.count_params()),
              "base_unchanged_in_head_phase": transfer.weights_digest(base) == before}
    if hp["fine_tune_layers"] > 0 and hp["fine_tune_epochs"] > 0:
        rate = hp["learning_rate"] / 10.0
        report["unfrozen_layers"] = transfer.unfreeze_top(model, base, hp["fine_tune_layers"], head, rate)
        phase2 = {**hp, "learning_rate": rate, "epochs": hp["fine_tune_epochs"]}
        tuned = training_loop.fit(model, train, evaluation, phase2, run_dir, backup_dir + "-fine-tune", task_name)
        for key, values in tuned.history.items():
            history.history.setdefault(key, []).extend(values)
        history.epoch_seconds = list(history.epoch_seconds) + list(tuned.epoch_seconds)
        report.update(fine_tune_epochs=len(tuned.epoch), fine_tune_learning_rate=rate)
        history.best_epoch = len(history.epoch) + tuned.best_epoch
        history.epoch = list(history.epoch) + [len(history.epoch) + e for e in tuned.epoch]
    info["transfer"] = report
    return history


def _distill(student, teacher_dir: str, train, evaluation, hp: Mapping[str, Any], run_dir: str, backup_dir: str,
             task_name: str, info: Dict[str, Any], augment=()):
    """Trains ``student`` on the teacher's softened outputs and the true labels; records both models'
    accuracy on this run's eval split and their sizes (the edge sizes come from EdgeExport)."""
    teacher = distillation.teacher_model(teacher_dir)
    layers = augmentation(augment, hp["seed"]) if augment else None
    history = training_loop.fit(distillation.distiller(student, teacher, hp, task_name, layers), train, evaluation,
                                hp, run_dir, backup_dir, task_name)

    def accuracy(model):
        model.compile(loss=LOSSES[task_name], metrics=task_metrics(task_name))
        return {k: float(v) for k, v in model.evaluate(evaluation, verbose=0, return_dict=True).items()}

    info["distillation"] = {
        "teacher": {"model_dir": teacher_dir, "parameters": int(teacher.count_params()), **accuracy(teacher)},
        "student": {"parameters": int(student.count_params()), **accuracy(student)},
        "temperature": hp["temperature"], "alpha": hp["distill_alpha"]}
    student.compile(optimizer=keras.optimizers.Adam(hp["learning_rate"]), loss=LOSSES[task_name],
                    metrics=task_metrics(task_name))
    return history


def image_info(config: TransformSpec, class_names: List[str]) -> Optional[ImageInfo]:
    image = config.image
    return ImageInfo(feature=image.feature, size=image.size, class_names=tuple(class_names)) if image else None


def _hparams(config: TrainSpec, fn_args: FnArgs) -> Dict[str, Any]:
    """The family's defaults, then the data's size, then --hparam, then the Tuner's best values."""
    overrides = {**small_data_defaults(config.rows), **config.hparams}
    if fn_args.hyperparameters:  # the Tuner's best values (--tune)
        overrides.update(tuned_values(fn_args.hyperparameters))
    return resolve_hparams(config.family, overrides)


def _build(config: TrainSpec, spec: FeatureSpec, head: HeadSpec, hp: Mapping[str, Any],
           description: Dict[str, Any]) -> Tuple[keras.Model, Any]:
    """(model, pretrained base or None) under the training strategy."""
    augment = config.image.augment if config.image else ()
    with training_loop.strategy().scope():
        if config.pretrained:
            model, base = transfer.build_model(spec, head, hp, dict(config.pretrained), augment)
            description["pretrained"] = transfer.describe(dict(config.pretrained))
            return model, base
        # a student gets its augmentation from the distiller (the teacher sees the same images)
        return build_model(config.family, head, spec, hp, () if config.distill_from else augment), None


def _fit(config: TrainSpec, fn_args: FnArgs, model: keras.Model, base: Any, head: HeadSpec, train: Any,
         evaluation: Any, hp: Mapping[str, Any], info: Dict[str, Any]) -> Any:
    """The training the task and the model's origin call for; its history."""
    backup_dir = os.path.join(config.backup_root, training_loop.resume_key(
        fn_args.train_files, fn_args.transform_graph_path, config.family, config.task, hp, fn_args.base_model))
    run_dir, task_name = fn_args.model_run_dir, config.task
    if task_name == "anomaly":
        normal_eval = _normal_rows_only(evaluation, hp["batch_size"])
        history = training_loop.fit(model, _normal_rows_only(train, hp["batch_size"]), normal_eval, hp, run_dir,
                                    backup_dir, task_name)
        info["anomaly_threshold"] = _fit_anomaly_threshold(model, evaluation, hp)
        return history
    if base is not None:
        return _transfer(model, base, head, train, evaluation, hp, run_dir, backup_dir, task_name, info)
    if config.distill_from:
        return _distill(model, config.distill_from, train, evaluation, hp, run_dir, backup_dir, task_name, info,
                        config.image.augment if config.image else ())
    return training_loop.fit(model, train, evaluation, hp, run_dir, backup_dir, task_name)


def _export(config: TrainSpec, fn_args: FnArgs, model: keras.Model, tft_output: tft.TFTransformOutput,
            classes: Mapping[str, List[str]], description: Dict[str, Any]) -> None:
    """The SavedModel with its serving signatures, and what servers and clients read beside it."""
    labels = config.labels
    image = image_info(config, classes.get(labels[0], []))
    save_model(model, fn_args.serving_model_dir, serving_signatures(
        model, tft_output, labels, config.task, classes.get(labels[0], []) if len(labels) == 1 else (),
        ignored=config.image.ignore if config.image else (), image=image))
    mark_signature_methods(fn_args.serving_model_dir)
    extra = os.path.join(fn_args.serving_model_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, MODEL_DESCRIPTION), "w") as f:
        json.dump(description, f, indent=1)
    if image is not None:  # clients and the edge host decode and resize as the graph does
        write_image_info(fn_args.serving_model_dir, image)
    if config.series_info:  # a forecaster: how clients turn a history CSV into windows and date the answers
        write_series_info(fn_args.serving_model_dir, SeriesInfo.parse(config.series_info))
    if config.names:  # a user's table: servers and clients accept its original column names
        write_columns(fn_args.serving_model_dir, [list(pair) for pair in config.names], dict(config.left_out), labels,
                      {key: vars(column) for key, column in (config.columns or {}).items()},
                      {label: names for label, names in classes.items() if names})


AUTO_LINEAR_ROWS = 5000  # tables up to this size also fit the linear model and keep the better on the eval split
CANDIDATE_TASKS = ("binary", "multiclass", "regression")


def _tries_linear(config: TrainSpec, fn_args: FnArgs) -> bool:
    """A small table's dnn has a linear rival (the same family at depth 0: the head on the stem),
    unless the user or the Tuner chose the depth, or the model starts from another."""
    return (config.family == "dnn" and 0 < config.rows <= AUTO_LINEAR_ROWS and config.task in CANDIDATE_TASKS
            and "depth" not in config.hparams and not fn_args.hyperparameters and not fn_args.base_model
            and not config.pretrained and not config.distill_from)


def labels_and_predictions(model: keras.Model, evaluation: Any) -> Tuple[np.ndarray, np.ndarray]:
    """([rows, outputs] labels, [rows, outputs] predictions) of ``model`` over a (features, label) dataset."""
    labels, predictions = [], []
    for x, y in evaluation:
        labels.append(np.reshape(y.numpy(), (len(y), -1)))
        predictions.append(np.reshape(model(x, training=False).numpy(), (len(y), -1)))
    return np.concatenate(labels), np.concatenate(predictions)


def eval_score(model: keras.Model, evaluation: Any, task_name: str, scale: float = 1.0) -> Tuple[str, float]:
    """The task's gate metric of ``model`` on the eval split (what the Evaluator will judge); a
    regression's in the label's units (``scale``: label_scale), not the standardized label's the
    model learns."""
    labels, predictions = labels_and_predictions(model, evaluation)
    name = get_task(task_name).gate_metric
    score = gate_metric_value(name, scale * labels.reshape(-1), scale * predictions)
    worst = -np.inf if HIGHER_IS_BETTER[name] else np.inf
    return name, float(worst if score is None else score)


def linear_rival_hparams(hp: Mapping[str, Any], spec: FeatureSpec, head: HeadSpec) -> Dict[str, Any]:
    """The dnn's hyperparameters at depth 0; with text, one weight per word and output (text_dim =
    the head's outputs), so that with ``tfidf`` the rival is TF-IDF + logistic (or ridge)
    regression itself. The dnn's wide word vectors at depth 0 are the same model factorized: Adam
    moves each word's effective weight through every one of its dimensions at once, so it overfits
    within an epoch or two and early stopping keeps a model short of the regression's
    (docs/models.md)."""
    return {**hp, "depth": 0, **({"text_dim": head.units} if spec.texts else {})}


def _better_of_linear(config: TrainSpec, fn_args: FnArgs, dnn: Tuple[keras.Model, Any, Dict[str, Any]],
                      spec: FeatureSpec, head: HeadSpec, train: Any, evaluation: Any,
                      info: Dict[str, Any], scale: float) -> Tuple[keras.Model, Any, Dict[str, Any]]:
    """(model, history, hyperparameters) of the better of the dnn and its linear rival by the gate
    metric on the eval split; both scores go into model.json (MLflow and the card read them)."""
    model, history, hp = dnn
    linear_hp = linear_rival_hparams(hp, spec, head)
    with training_loop.strategy().scope():
        linear = build_model(config.family, head, spec, linear_hp, ())
    backup_dir = os.path.join(config.backup_root, training_loop.resume_key(
        fn_args.train_files, fn_args.transform_graph_path, config.family, config.task, linear_hp, None))
    linear_history = training_loop.fit(linear, train, evaluation, linear_hp,
                                       os.path.join(fn_args.model_run_dir, "linear"), backup_dir, config.task)
    name, deep_score = eval_score(model, evaluation, config.task, scale)
    _, linear_score = eval_score(linear, evaluation, config.task, scale)
    linear_wins = linear_score > deep_score if HIGHER_IS_BETTER[name] else linear_score < deep_score
    info["candidates"] = {"metric": name, "dnn": deep_score, "linear": linear_score,
                          "chosen": "linear" if linear_wins else "dnn"}
    return (linear, linear_history, linear_hp) if linear_wins else dnn


CORRECTION_SHARES = (0.0, 0.5, 1.0)  # a forecaster's share of its learned correction; 0 is the base alone
COMBINED_SHARE = 0.5  # base and model forecasts averaged, where the validation windows are too few to choose


def _first_eval_value(fn_args: FnArgs, tft_output: tft.TFTransformOutput, name: str) -> float:
    """A constant the Transform writes on every row (an analyzer's result), from the first eval row."""
    options = tfxio.TensorFlowDatasetOptions(batch_size=1, num_epochs=1)
    data = fn_args.data_accessor.tf_dataset_factory(fn_args.eval_files, options, tft_output.transformed_metadata.schema)
    return float(np.reshape(next(iter(data))[name].numpy(), -1)[0])


def chosen_forecast_base(fn_args: FnArgs, tft_output: tft.TFTransformOutput) -> str:
    """The base forecast the Transform chose (components.forecast_bases), as its rows record it."""
    return BASE_NAMES[int(_first_eval_value(fn_args, tft_output, FORECAST_BASE))]


def label_scale(fn_args: FnArgs, tft_output: tft.TFTransformOutput) -> float:
    """A regression's label standard deviation over the train split (the model learns the label
    divided by it), so its errors read in the label's units; 1 for other tasks."""
    if LABEL_SCALE not in tft_output.transformed_feature_spec():
        return 1.0
    return _first_eval_value(fn_args, tft_output, LABEL_SCALE)


def weigh_correction(model: keras.Model, evaluation: Any) -> Dict[str, Any]:
    """A user's series: the model learns a correction to the Transform's base forecast, and on a
    short series (a few dozen train windows) that correction can fit their noise. The share of it
    kept is the one of CORRECTION_SHARES with the lowest MAE on the validation windows (the
    Evaluator's holdout is never seen; ties keep the larger share) when there are VALIDATION_WINDOWS
    of them. Fewer (a few short series: staging gives validation a small share of each) would let
    their noise make the choice: the forecast is then the average of the base's and the model's
    (COMBINED_SHARE), a combination of two forecasts that beat each alone on the bench
    (docs/models.md). The head's last layer is scaled by the share, so the served forecast is
    base + share x correction."""
    label, correction = labels_and_predictions(model, evaluation)
    errors = {share: float(np.mean(np.abs(label - share * correction))) for share in CORRECTION_SHARES}
    chooses = len(label) >= VALIDATION_WINDOWS
    chosen = min(sorted(errors, reverse=True), key=errors.get) if chooses else COMBINED_SHARE
    head = forecast_head_layer(model)
    head.set_weights([chosen * weights for weights in head.get_weights()])
    return {"correction_kept": chosen, "chosen_by": "validation" if chooses else "combination",
            "validation_windows": len(label),
            "validation_mae": {str(share): e for share, e in errors.items()}}


def run_fn(fn_args: FnArgs) -> None:
    """Trains and exports; a training worker other than the chief writes to a scratch folder."""
    with train_workers.worker_outputs(fn_args) as scratch:
        config = TrainSpec.from_dict(fn_args.custom_config)
        if scratch:
            config = dataclasses.replace(config, backup_root=os.path.join(scratch, "backups"))
        _train_and_export(config, fn_args)


def _train_and_export(config: TrainSpec, fn_args: FnArgs) -> None:
    hp = _hparams(config, fn_args)
    keras.utils.set_random_seed(hp["seed"])
    tft_output = load_transform_output(fn_args)
    spec, classes, head = spec_classes_head(tft_output, config)
    description = model_description(config.family, config.task, hp, spec, head)
    model, base = _build(config, spec, head, hp, description)
    info: Dict[str, Any] = {}
    if fn_args.base_model:
        info["warm_start"] = warm_start(model, fn_args.base_model, description)
    train, evaluation = make_datasets(fn_args, tft_output, config, hp)
    history = _fit(config, fn_args, model, base, head, train, evaluation, hp, info)
    if _tries_linear(config, fn_args):
        model, history, hp = _better_of_linear(config, fn_args, (model, history, hp), spec, head, train, evaluation,
                                               info, label_scale(fn_args, tft_output))
        description = model_description(config.family, config.task, hp, spec, head)
    if head.zero_start:
        info["forecast"] = {"base": chosen_forecast_base(fn_args, tft_output), **weigh_correction(model, evaluation)}
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as f:
        json.dump({k: [float(v) for v in vs] for k, vs in history.history.items()}, f)
    with open(os.path.join(fn_args.model_run_dir, MODEL_FILE), "w") as f:
        json.dump({**description, "class_names": classes, "parameters": int(model.count_params()),
                   "epochs_run": len(history.epoch), "best_epoch": int(history.best_epoch),
                   "epoch_seconds": list(getattr(history, "epoch_seconds", [])),
                   "replicas_in_sync": int(training_loop.strategy().num_replicas_in_sync), **info}, f, indent=1)
    _export(config, fn_args, model, tft_output, classes, description)
