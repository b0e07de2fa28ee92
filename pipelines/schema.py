"""Curated schemas: ``schemas/<name>/schema.pbtxt`` replaces SchemaGen's inference when present."""
from pathlib import Path
from typing import Dict, Optional

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

REPO_SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
SCHEMA_FILE = "schema.pbtxt"


def curated_schema(name: str, schemas_dir: Optional[Path] = None) -> Optional[Path]:
    path = (schemas_dir or REPO_SCHEMAS) / name / SCHEMA_FILE
    return path if path.is_file() else None


def load_schema(path: Path) -> schema_pb2.Schema:
    try:
        return text_format.Parse(path.read_text(), schema_pb2.Schema())
    except text_format.ParseError as e:
        raise ValueError(f"{path}: not a valid TFMD schema ({e})") from None


def feature_kinds(path: Path) -> Dict[str, str]:
    """name -> 'numeric' or 'string', as the curated schema types each feature."""
    kinds = {}
    for feature in load_schema(path).feature:
        kinds[feature.name] = "string" if feature.type == schema_pb2.BYTES else "numeric"
    return kinds
