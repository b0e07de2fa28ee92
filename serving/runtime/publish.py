"""Publishing a model version into a serving base dir so a polling server never sees half of it:
copied into a hidden staging directory, given its warmup records, renamed into place (atomic on
one file system), then listed in ``models.config``."""
import json
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional

from serving.edge_runtime import SIDECAR
from serving.runtime import model_config
from serving.runtime.warmup import build_warmup_records, write_warmup


def next_version(base_dir: Path) -> int:
    existing = [int(p.name) for p in base_dir.iterdir() if p.name.isdigit()] if base_dir.is_dir() else []
    return max([int(time.time()), *(v + 1 for v in existing)])


def push_version(model_path: Path, base_dir: Path, name: str, warmup_examples: List[bytes],
                 extra: Optional[Dict[str, Path]] = None) -> Path:
    """Stage, add warmup records (and ``extra`` dirs, e.g. ``tflite/``), rename into place, list in
    models.config; returns the version dir."""
    base_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(base_dir)
    staging = base_dir / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_path, staging)
    write_warmup(staging, build_warmup_records(staging, warmup_examples))
    for subdir, source in (extra or {}).items():
        shutil.copytree(source, staging / subdir, ignore=shutil.ignore_patterns("*.json"))
        sidecar = source / SIDECAR
        if sidecar.exists():  # the sidecar learns which model version it belongs to
            described = json.loads(sidecar.read_text())
            (staging / subdir / SIDECAR).write_text(json.dumps(
                {**described, "model_name": name, "model_version": version}, indent=1))
    destination = base_dir / str(version)
    os.rename(staging, destination)
    model_config.ensure_model(model_config.config_path(base_dir.parent), name, new_version=version)
    return destination
