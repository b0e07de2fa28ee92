"""File writes every store of the home shares."""
from pathlib import Path


def write_if_changed(path: Path, payload: bytes) -> Path:
    """Atomic (write aside, then rename); unchanged content keeps the file and its mtime, so
    ExampleGen's fingerprint and TFX's cache hold."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != payload:
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(payload)
        tmp.replace(path)
    return path
