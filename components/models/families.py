"""The model-family registry as data: each family's tasks and meta-parameter defaults.

Pure Python (no TensorFlow), so the CLI validates a family, task and ``--hparam`` in a second.
Adding a family is one module with ``build(inputs, feature_spec, hparams, head)`` (the learner between
the stem it builds and the task head the builder adds) and one line here.
"""
import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Tuple

# Training hyperparameters every family accepts.
TRAINING_DEFAULTS: Mapping[str, Any] = {
    "epochs": 60,
    "batch_size": 32,
    "learning_rate": 3e-3,
    "patience": 8,  # early stopping on the eval split's loss
    "seed": 42,
    "lr_schedule": "constant",  # constant | cosine | warmup_cosine (per epoch)
    "warmup_epochs": 3,  # for warmup_cosine
    "class_weight": "none",  # none | balanced (classification)
    # the resume backup is written at an epoch's end once this many seconds passed since the last
    # (0: every epoch); a killed run loses at most that much training plus the epoch it was in
    "backup_seconds": 1.0,
    # transfer learning (--pretrained): phase 2 unfreezes the base's top layers at learning_rate / 10
    "fine_tune_layers": 20,
    "fine_tune_epochs": 10,
    # distillation (--distill-from): softened teacher outputs mixed with the true labels
    "temperature": 2.0,
    "distill_alpha": 0.5,  # the true labels' share of the loss (the rest: the teacher's); T=2, 0.5 best on photos
}


@dataclass(frozen=True)
class FamilySpec:
    name: str
    tasks: Tuple[str, ...]
    defaults: Mapping[str, Any]  # the family's meta-parameters
    module: str  # where its build() lives


_TABULAR = ("binary", "multiclass", "regression", "multilabel", "multitask", "forecast")
_IMAGE = ("binary", "multiclass", "regression", "multilabel", "multitask")
_LAYER = {"l1": 0.0, "l2": 0.0}

FAMILIES: Dict[str, FamilySpec] = {spec.name: spec for spec in (
    FamilySpec("dnn", _TABULAR,
               {"width": 64, "depth": 2, "taper": 0.5, "dropout": 0.1, "batch_norm": False, "activation": "relu",
                "l1": 0.0, "l2": 1e-4, "wide": True, "text_learner": "tfidf", "text_dim": 32}, "components.models.dnn"),
    FamilySpec("cnn", _IMAGE, {"filters": 32, "groups": 2, "convs_per_group": 2, "dropout": 0.1, **_LAYER},
               "components.models.cnn"),
    FamilySpec("vgg", _IMAGE, {"depth": 11, "width": 0.125, "top_units": 128, "dropout": 0.3, **_LAYER},
               "components.models.vgg"),
    FamilySpec("resnet", _IMAGE, {"depth": 18, "version": 2, "width": 0.25, "stem": "auto", "l1": 0.0, "l2": 1e-4},
               "components.models.resnet"),
    # warmup_cosine: at a constant 3e-3 its eval accuracy swung between 0.42 and 0.80 from epoch to epoch
    # (photos, 32 px, 15 epochs) and int8 lost 2 of 66 eval rows; with it, 0.86 and int8 lost none.
    FamilySpec("mobilenet", _IMAGE, {"alpha": 0.5, "groups": 7, "last_filters": 1280, "stem": "auto",
                                     "lr_schedule": "warmup_cosine", **_LAYER}, "components.models.mobilenet"),
    FamilySpec("transfer", _IMAGE, {"dropout": 0.2, **_LAYER}, "components.models.transfer"),
    FamilySpec("rnn", ("binary", "multiclass", "regression", "multitask", "forecast"),
               {"cell": "lstm", "units": 32, "layers": 1, "bidirectional": False, "dropout": 0.0},
               "components.models.rnn"),
    FamilySpec("seq2seq", ("forecast",), {"cell": "lstm", "units": 32, "dropout": 0.0}, "components.models.seq2seq"),
    FamilySpec("autoencoder", ("anomaly",),
               {"width": 32, "depth": 2, "latent": 4, "filters": 16, "threshold_quantile": 0.95, **_LAYER},
               "components.models.autoencoder"),
)}


# Meta-parameters that name a choice, and the names each accepts: checked with the others before a run starts.
CHOICES: Mapping[str, Tuple[str, ...]] = {
    "text_learner": ("tfidf", "pool", "conv", "lstm"),  # components.models.text
    "cell": ("simple", "lstm", "gru"),  # components.models.rnn
    "lr_schedule": ("constant", "cosine", "warmup_cosine"),  # components.training_loop
    "class_weight": ("none", "balanced"),
    "stem": ("auto", "small", "imagenet"),  # components.models.base.image_stem
}


# What `--tune` searches, per family: meta-parameter -> choices (a key fixed with --hparam is left out).
SEARCH_SPACES: Dict[str, Mapping[str, Tuple[Any, ...]]] = {
    "dnn": {"width": (32, 64, 128), "depth": (1, 2, 3), "dropout": (0.0, 0.1, 0.3),
            "learning_rate": (1e-3, 3e-3, 1e-2)},
    "cnn": {"filters": (16, 32), "groups": (1, 2), "dropout": (0.0, 0.2), "learning_rate": (1e-3, 3e-3)},
    "vgg": {"depth": (11, 16), "width": (0.0625, 0.125), "learning_rate": (1e-3, 3e-3)},
    "resnet": {"depth": (18, 34), "version": (1, 2), "width": (0.125, 0.25), "learning_rate": (1e-3, 3e-3)},
    "mobilenet": {"alpha": (0.35, 0.5, 1.0), "learning_rate": (1e-3, 3e-3)},
    "rnn": {"cell": ("lstm", "gru"), "units": (16, 32, 64), "layers": (1, 2), "learning_rate": (1e-3, 3e-3)},
    "seq2seq": {"units": (16, 32, 64), "learning_rate": (1e-3, 3e-3)},
    "autoencoder": {"width": (16, 32, 64), "latent": (2, 4, 8), "learning_rate": (1e-3, 3e-3)},
}
TUNERS = ("random", "bayesian", "hyperband")
# Pretrained bases (--pretrained): Keras Applications with ImageNet weights, or a registered model of ours
KERAS_BASES = ("mobilenet_v2", "resnet50", "efficientnet_b0")
KERAS_PREFIX, MODELS_PREFIX = "keras:", "models:/"
TRANSFER_FAMILY = "transfer"


def imagenet_weights_name(base: str) -> str:
    """The file a Keras application's headless ImageNet weights are kept in (under <home>/weights)."""
    return f"{base}_imagenet_notop.h5"
TUNER_KEYS_PREFIX = "tuner/"  # Hyperband's own bookkeeping values (epochs, bracket, round)


def tuned_values(hyperparameters: Mapping[str, Any]) -> Dict[str, Any]:
    """The values a Tuner found, from its HyperParameters config, without Hyperband's bookkeeping."""
    values = hyperparameters.get("values", hyperparameters)
    return {k: v for k, v in values.items() if not k.startswith(TUNER_KEYS_PREFIX)}


class UnsupportedModelError(ValueError):
    pass


def supported_pairs() -> str:
    return "; ".join(f"{f.name}: {', '.join(f.tasks)}" for f in FAMILIES.values())


def default_family(task: str) -> str:
    """dnn where it fits the task, else the first family that does."""
    return next(f.name for f in FAMILIES.values() if task in f.tasks)


def get_family(name: str, task: str = "") -> FamilySpec:
    if name not in FAMILIES:
        raise UnsupportedModelError(f"unknown model family '{name}'; supported: {supported_pairs()}")
    family = FAMILIES[name]
    if task and task not in family.tasks:
        raise UnsupportedModelError(f"family '{name}' does not support task '{task}'; supported: {supported_pairs()}")
    return family


# Image input: the augmentation layers (training only) and the smallest side each family takes
AUGMENTATIONS = ("flip", "rotate", "zoom", "contrast")
DEFAULT_AUGMENT = ("flip", "rotate", "zoom")
_MIN_IMAGE_SIZE = {"vgg": 32, "mobilenet": 32}


def min_image_size(family: str, hparams: Mapping[str, Any] = {}) -> int:
    """The smallest image side a family is built for (a 7x7 stem on fewer than 65 px loses too much)."""
    if hparams.get("stem") == "imagenet":
        return 64
    return _MIN_IMAGE_SIZE.get(family, 8)


TRAIN_SHARE = 0.75  # of a table's rows, in the train split (pipeline's hash split 3:1)
MIN_STEPS = 1500  # optimizer steps a small table is trained for at least (up to MAX_EPOCHS)
MAX_EPOCHS = 300


def small_data_defaults(rows: int) -> Dict[str, Any]:
    """Training defaults that fit a table's size (given hyperparameters win): a batch that gives an
    epoch at least 16 steps (8 to 32 rows), enough epochs for MIN_STEPS steps, patience to match.
    A 150-row table otherwise stops after a few hundred steps, well short of a linear model."""
    if rows <= 0:
        return {}
    train_rows = max(1, int(rows * TRAIN_SHARE))
    batch = 8
    while batch < TRAINING_DEFAULTS["batch_size"] and train_rows / (batch * 2) >= 16:
        batch *= 2
    steps = max(1, math.ceil(train_rows / batch))
    epochs = min(MAX_EPOCHS, max(TRAINING_DEFAULTS["epochs"], math.ceil(MIN_STEPS / steps)))
    return {"batch_size": batch, "epochs": epochs, "patience": max(TRAINING_DEFAULTS["patience"], epochs // 8)}


def resolve_hparams(family_name: str, overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """Training and family defaults, with overrides coerced to each default's type."""
    defaults = {**TRAINING_DEFAULTS, **get_family(family_name).defaults}
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise UnsupportedModelError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for family '{family_name}'; "
            f"known: {', '.join(sorted(defaults))}")
    resolved = dict(defaults)
    for key, value in overrides.items():
        resolved[key] = _coerce(key, value, type(defaults[key]))
        if key in CHOICES and resolved[key] not in CHOICES[key]:
            raise UnsupportedModelError(f"hyperparameter {key}={resolved[key]!r}: choose one of "
                                        f"{', '.join(CHOICES[key])}")
    return resolved


def _coerce(key: str, value: Any, kind: type) -> Any:
    if not isinstance(value, str) or kind is str:
        return value
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        return kind(value)
    except ValueError:
        raise UnsupportedModelError(f"hyperparameter {key}={value!r}: expected a {kind.__name__}") from None
