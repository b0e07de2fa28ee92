"""TFX components and the model code they run. Model code is Keras 2 (``import tf_keras as
keras``); TFX 1.16 and TFT resolve ``tf.keras`` from this switch, so it is set here, once, before
anything in this package can load TensorFlow. Every process that trains, transforms or exports
imports this package first (the CLI, the pipeline runners, the Airflow DAG file, the tests)."""
import os

LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"
os.environ.setdefault(LEGACY_KERAS_ENV, "1")


def libraries_are_not_autographed() -> None:
    """TensorFlow's AutoGraph leaves the ``keras`` package alone but not ``tf_keras`` or
    ``tensorflow_transform``, so it rewrote tf_keras's whole train step, losses, metrics and
    optimizers on every first ``fit`` and every traced signature (seconds of AST work before the
    first epoch), and TFT's transform layer in every exported signature. Both are graph code,
    written to run in TF1 graphs, and were never meant to be converted; our own models still are.
    Called where tf_keras is imported for training or export (idempotent)."""
    from tensorflow.python.autograph.core import config

    for package in ("tf_keras", "tensorflow_transform"):
        rule = config.DoNotConvert(package)
        if not any(type(r) is type(rule) and vars(r) == vars(rule) for r in config.CONVERSION_RULES):
            config.CONVERSION_RULES = (rule,) + tuple(config.CONVERSION_RULES)
