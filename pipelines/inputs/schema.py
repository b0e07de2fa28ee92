"""Curated schemas: ``schemas/<name>/schema.pbtxt`` replaces SchemaGen's inference when present."""
import hashlib
from pathlib import Path
from typing import Dict, Optional

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from core.files import write_if_changed

REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"  # the repo's schemas/
SCHEMA_FILE = "schema.pbtxt"


def curated_schema(name: str, schemas_dir: Optional[Path] = None) -> Optional[Path]:
    path = (schemas_dir or REPO_SCHEMAS) / name / SCHEMA_FILE
    return path if path.is_file() else None


def pinned_copy(path: Path, folder: Path) -> Path:
    """A copy of the curated schema at ``folder/<sha256[:16]>/schema.pbtxt``. ImportSchemaGen's cache
    key is the file's path, not its content: an edited schema gets a new path, so it is imported again."""
    return write_if_changed(pinned_path(path, folder), path.read_bytes())


def pinned_path(path: Path, folder: Path) -> Path:
    """Where ``pinned_copy`` puts the curated schema: computed from its content, nothing written."""
    return folder / hashlib.sha256(path.read_bytes()).hexdigest()[:16] / SCHEMA_FILE


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


class SchemaExistsError(FileExistsError):
    pass


def latest_pipeline_schema(metadata, pipeline: str) -> Path:
    """The schema.pbtxt of the newest schema SchemaGen inferred (or ImportSchemaGen imported) in
    ``pipeline`` (Transform's post-transform schemas are not it)."""
    from core.run_report import NODE_CONTEXT, open_store

    if not metadata.exists():
        raise FileNotFoundError(f"{metadata}: no ML Metadata store (run the pipeline first)")
    store = open_store(metadata)
    schemas = []
    for node in ("SchemaGen", "ImportSchemaGen"):
        context = store.get_context_by_type_and_name(NODE_CONTEXT, f"{pipeline}.{node}")
        if context is not None:
            schema_type_id = store.get_artifact_type("Schema").id  # exists once a schema node ran
            schemas += [a for a in store.get_artifacts_by_context(context.id) if a.type_id == schema_type_id]
    if not schemas:
        raise FileNotFoundError(f"{metadata}: pipeline '{pipeline}' has no schema yet (run it first)")
    return Path(max(schemas, key=lambda a: a.id).uri) / SCHEMA_FILE


def write_curated_schema(source: Path, target: Path, categorical: float, numeric: float, force: bool = False) -> Path:
    """``source`` with a drift comparator on every feature, written to ``target`` (atomically;
    an existing curated schema is kept unless ``force``)."""
    from components.comparators import DRIFT, set_comparators

    if target.exists() and not force:
        raise SchemaExistsError(f"{target}: a curated schema is already there (edit it, or --force to replace it)")
    schema = load_schema(source)
    set_comparators(schema, DRIFT, categorical, numeric)
    return write_if_changed(target, text_format.MessageToString(schema).encode())
