"""MLflow "model from code": the pyfunc that serves a TF SavedModel (kept as the model's artifact
``saved_model``). MLflow runs this file when it loads the model, so it stands alone: no import of
this project, only mlflow, numpy, pandas and tensorflow."""
from typing import Any

import mlflow.pyfunc
import numpy as np
from mlflow.models import set_model

SAVED_MODEL = "saved_model"


class SavedModelPyfunc(mlflow.pyfunc.PythonModel):
    """DataFrame rows in (one column per raw feature), the signature's outputs out."""

    def load_context(self, context: Any) -> None:
        import tensorflow as tf

        model = tf.saved_model.load(context.artifacts[SAVED_MODEL])
        self._model = model
        self._signature = model.signatures["serving_default"]
        self._inputs = self._signature.structured_input_signature[1]

    def predict(self, context, model_input, params=None):  # no hints: MLflow would validate inputs by them
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


set_model(SavedModelPyfunc())
