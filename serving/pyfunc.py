"""The pushed SavedModel as an MLflow pyfunc model (the SavedModel kept as an artifact).

``mlflow.tensorflow.log_model`` cannot save our models: it writes Keras' ``.keras`` format, which
the TFT layer cannot be serialized to. A pyfunc "model from code" (``pyfunc_model.py``) that loads
the SavedModel and calls its raw-feature signature works with ``mlflow models serve`` and
``models:/NAME@alias``, without this project installed where it is loaded.
"""
import shutil
import tempfile
from pathlib import Path

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
SAVED_MODEL = "saved_model"  # the artifact name pyfunc_model.py reads
# MLflow's inferred requirements miss tensorflow and add stray cloud packages: stated here.
REQUIREMENTS = ["tensorflow==2.16.2", "tf-keras==2.16.0", "pandas", "numpy<2"]


def save_pyfunc(model_dir: Path, destination: Path) -> Path:
    """An MLflow model directory wrapping ``model_dir`` (a TF SavedModel), which it holds as
    ``artifacts/saved_model`` (MLflow names an artifact dir after its source)."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / SAVED_MODEL
        shutil.copytree(model_dir, staged)
        mlflow.pyfunc.save_model(str(destination), python_model=str(MODEL_CODE),
                                 artifacts={SAVED_MODEL: str(staged)}, pip_requirements=REQUIREMENTS)
    return destination
