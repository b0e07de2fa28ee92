"""The family registry and task table, without TensorFlow."""
import pytest

from components.models.families import (
    TRAINING_DEFAULTS,
    UnsupportedModelError,
    default_family,
    get_family,
    resolve_hparams,
)
from components.tasks import UnknownTaskError, get_task


def test_defaults_merge_training_and_family():
    hp = resolve_hparams("dnn", {})
    assert hp["epochs"] == TRAINING_DEFAULTS["epochs"]
    assert hp["width"] == 64


def test_overrides_are_coerced_to_the_default_type():
    hp = resolve_hparams("dnn", {"width": "16", "dropout": "0.25", "batch_norm": "true", "activation": "tanh"})
    assert (hp["width"], hp["dropout"], hp["batch_norm"], hp["activation"]) == (16, 0.25, True, "tanh")


def test_unknown_or_mistyped_hparams_are_refused():
    with pytest.raises(UnsupportedModelError, match="unknown hyperparameter.*wdth.*known: .*width"):
        resolve_hparams("dnn", {"wdth": "3"})
    with pytest.raises(UnsupportedModelError, match="depth='two': expected a int"):
        resolve_hparams("dnn", {"depth": "two"})


def test_unsupported_family_or_task_lists_what_is_supported():
    with pytest.raises(UnsupportedModelError, match="unknown model family 'nope'; supported: dnn: binary"):
        get_family("nope")
    with pytest.raises(UnsupportedModelError, match="family 'dnn' does not support task 'anomaly'"):
        get_family("dnn", "anomaly")
    tasks = "anomaly, binary, forecast, multiclass, multilabel, multitask, regression"
    with pytest.raises(UnknownTaskError, match=f"unknown task 'foo'; choose one of: {tasks}"):
        get_task("foo")


def test_default_family_per_task():
    assert default_family("binary") == "dnn"
    assert default_family("anomaly") == "autoencoder"
