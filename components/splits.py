"""Reading a split of an Examples artifact (the gzipped tf.Example TFRecords TFX writes)."""
from pathlib import Path
from typing import Any, List

from tfx.types import artifact_utils

from serving.codec.examples import read_records


def read_split(examples_artifact: Any, split: str, limit: int) -> List[bytes]:
    """The first ``limit`` serialized tf.Examples of one split (e.g. "eval"), in file order."""
    uri = artifact_utils.get_split_uri([examples_artifact], split)
    return read_records(sorted(str(p) for p in Path(uri).iterdir() if p.is_file()), limit)
