"""TFX components and the model code they run. Model code is Keras 2 (``import tf_keras as
keras``); TFX 1.16 and TFT resolve ``tf.keras`` from this switch, so it is set here, once, before
anything in this package can load TensorFlow. Every process that trains, transforms or exports
imports this package first (the CLI, the pipeline runners, the Airflow DAG file, the tests)."""
import os

LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"
os.environ.setdefault(LEGACY_KERAS_ENV, "1")
