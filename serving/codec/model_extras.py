"""The JSON files a SavedModel carries in ``assets.extra/`` beside its graph (TF Serving ignores the
folder): its columns, image input, series. One place for where they go and how they are read."""
import json
from pathlib import Path
from typing import Any, Optional, Union

EXTRAS_DIR = "assets.extra"
SERVING_MODEL_DIR = "Format-Serving"  # where TFX's Trainer writes the SavedModel in its Model artifact
# the metadata fields a server of ours adds to TF Serving's one (SIGNATURE_DEF), over REST and gRPC
# alike: each the JSON document of one of these files
SIGNATURE_DEF, EXTRA_FIELDS = "signature_def", ("columns", "image", "series")


def write_extra(model_dir: Union[str, Path], name: str, document: Any) -> Path:
    path = Path(model_dir) / EXTRAS_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1))
    return path


def read_extra(model_dir: Union[str, Path], name: str) -> Optional[Any]:
    """The document, or None when the model carries no such file."""
    path = Path(model_dir) / EXTRAS_DIR / name
    return json.loads(path.read_text()) if path.exists() else None
