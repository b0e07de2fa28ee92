"""The pushed SavedModel as an MLflow pyfunc model (the SavedModel kept as an artifact).

``mlflow.tensorflow.log_model`` cannot save our models: it writes Keras' ``.keras`` format, which
the TFT layer cannot be serialized to. A pyfunc that loads the SavedModel and calls its
raw-feature signature works with ``mlflow models serve`` and ``models:/NAME@alias``.
"""
from pathlib import Path
from typing import Any, Dict, Optional

import mlflow.pyfunc
import numpy as np

SAVED_MODEL = "saved_model"


class SavedModelPyfunc(mlflow.pyfunc.PythonModel):
    """DataFrame rows in (one column per raw feature), the signature's outputs out."""

    def load_context(self, context: Any) -> None:
        import tensorflow as tf

        model = tf.saved_model.load(context.artifacts[SAVED_MODEL])
        self._model = model
        self._signature = model.signatures["serving_default"]
        self._inputs = self._signature.structured_input_signature[1]

    def predict(self, context: Any, model_input: Any, params: Optional[Dict[str, Any]] = None) -> Any:
        import tensorflow as tf

        missing = sorted(set(self._inputs) - set(model_input.columns))
        if missing:
            raise ValueError(f"missing input column(s): {', '.join(missing)}")
        feed = {}
        for name, spec in self._inputs.items():
            values = model_input[name].to_numpy()
            if spec.dtype == tf.string:
                feed[name] = tf.constant(["" if v is None else str(v) for v in values])
            else:
                feed[name] = tf.constant(np.asarray(values, dtype=spec.dtype.as_numpy_dtype))
        outputs = self._signature(**feed)
        if len(outputs) == 1:
            return next(iter(outputs.values())).numpy()
        import pandas as pd

        return pd.DataFrame({k: list(v.numpy()) for k, v in outputs.items()})


def save_pyfunc(model_dir: Path, destination: Path) -> Path:
    """An MLflow model directory wrapping ``model_dir`` (a TF SavedModel)."""
    mlflow.pyfunc.save_model(str(destination), python_model=SavedModelPyfunc(),
                             artifacts={SAVED_MODEL: str(model_dir)},
                             pip_requirements=["tensorflow==2.16.2", "tf-keras==2.16.0"])
    return destination
