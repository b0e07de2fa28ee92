"""Hyperparameter tuning for TFX's Tuner component (``components.tuning.tuner_fn``).

KerasTuner's oracles (random, Bayesian, Hyperband) search a family's space from
``registry.SEARCH_SPACES``. KerasTuner 1.4 builds only Keras 3 models, so trials run through
``FamilyTuner.run_trial``, which builds our tf_keras model and reports its best eval loss; the
oracle, trial bookkeeping and TFX's best-hyperparameters output are KerasTuner's and TFX's own.
"""
from typing import Any, Mapping

import keras_tuner
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from components.models.builder import build_model
from components.models.families import SEARCH_SPACES, TUNER_KEYS_PREFIX, TUNERS, resolve_hparams, tuned_values
from components.specs import TuneSpec
from components.trainer import load_transform_output, make_datasets, spec_classes_head
from components.training_loop import EpochProgress

TUNE_EPOCHS = 10  # the epochs of each trial


def search_space(family: str, fixed: Mapping[str, Any]) -> keras_tuner.HyperParameters:
    space = keras_tuner.HyperParameters()
    for key, choices in SEARCH_SPACES[family].items():
        if key not in fixed:
            space.Choice(key, list(choices))
    return space


class FamilyTuner(keras_tuner.Tuner):
    """Builds and fits one family per trial; the objective is the best eval loss."""

    def __init__(self, build, fixed: Mapping[str, Any], epochs: int, **kwargs):
        super().__init__(**kwargs)
        self._build, self._fixed, self._epochs = build, dict(fixed), epochs

    def run_trial(self, trial, train, evaluation, **_):
        values = {**self._fixed, **tuned_values(trial.hyperparameters.values)}
        model = self._build(values)
        epochs = trial.hyperparameters.values.get(f"{TUNER_KEYS_PREFIX}epochs", self._epochs)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
        planned = self.oracle.max_trials or "?"  # Hyperband plans by epochs, not trials
        progress = EpochProgress(epochs, f"trial {len(self.oracle.trials)}/{planned}")
        history = model.fit(train, validation_data=evaluation, epochs=epochs, callbacks=[stop, progress], verbose=0)
        return {"val_loss": min(history.history["val_loss"])}


def _oracle(name: str, space: keras_tuner.HyperParameters, max_trials: int, epochs: int, seed: int):
    objective = keras_tuner.Objective("val_loss", "min")
    if name == "random":
        return keras_tuner.oracles.RandomSearchOracle(objective, max_trials, hyperparameters=space, seed=seed)
    if name == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(objective, max_trials, hyperparameters=space, seed=seed)
    if name == "hyperband":
        return keras_tuner.oracles.HyperbandOracle(objective, max_epochs=epochs, factor=3, hyperparameters=space,
                                                   seed=seed)
    raise ValueError(f"tuner '{name}': choose one of {', '.join(TUNERS)}")


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    config = TuneSpec.from_dict(fn_args.custom_config)
    family, fixed = config.family, dict(config.hparams)
    base = resolve_hparams(family, fixed)
    tft_output = load_transform_output(fn_args)
    spec, _, head = spec_classes_head(tft_output, config)
    train, evaluation = make_datasets(fn_args, tft_output, config, base)
    tuner = FamilyTuner(
        build=lambda values: build_model(family, head, spec, values), fixed=fixed, epochs=TUNE_EPOCHS,
        oracle=_oracle(config.tuner, search_space(family, fixed), config.max_trials, TUNE_EPOCHS, base["seed"]),
        directory=fn_args.working_dir, project_name="tuning", overwrite=True)
    return TunerFnResult(tuner=tuner, fit_kwargs={"train": train, "evaluation": evaluation})
