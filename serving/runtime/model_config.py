"""``models.config``: TF Serving's ModelServerConfig in text format, beside the models it names.

One file is read by both servers (ours and the official ``tensorflow_model_server`` with
``--model_config_file``), so it uses TF Serving's own proto. Base paths are written relative to
the file's directory: our server resolves them against that directory, and the official image
runs with that directory as its working directory (``infra/``), so one file works for both.

Writers (the pipeline's pusher, ``mlops promote``) take an exclusive lock and replace the file
atomically, so a reader never sees half a file and two writers never lose each other's change.
No TensorFlow import: this module is used by commands that must stay fast.
"""
import fcntl
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

CONFIG_FILE = "models.config"
DEFAULT_LATEST_VERSIONS = 2  # the new version and the one before it: a rollback or canary needs no load
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LABEL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfig = model_server_config_pb2.ModelConfig


class ModelConfigError(ValueError):
    """models.config cannot be read or would become invalid; the message names the file and field."""


def config_path(serving_dir: Path) -> Path:
    return Path(serving_dir) / CONFIG_FILE


def is_valid_name(name: str) -> bool:
    """A model name as a path component: no separators, no '..', nothing hidden."""
    return bool(NAME_PATTERN.match(name)) and ".." not in name


def parse(text: str, source: str = CONFIG_FILE) -> ModelServerConfig:
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ModelConfigError(f"{source}: not a TF Serving ModelServerConfig: {e}") from None
    validate(config, source)
    return config


def validate(config: ModelServerConfig, source: str = CONFIG_FILE) -> None:
    if config.WhichOneof("config") == "custom_model_config":
        raise ModelConfigError(f"{source}: custom_model_config is not supported; use model_config_list")
    seen = set()
    for model in config.model_config_list.config:
        if not is_valid_name(model.name):
            raise ModelConfigError(f"{source}: model name {model.name!r} is not a valid name")
        if model.name in seen:
            raise ModelConfigError(f"{source}: model {model.name!r} is listed twice")
        seen.add(model.name)
        if not model.base_path:
            raise ModelConfigError(f"{source}: model {model.name!r} has no base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise ModelConfigError(f"{source}: model {model.name!r}: platform {model.model_platform!r} "
                                   "is not supported (tensorflow only)")
        for label, version in model.version_labels.items():
            if not LABEL_PATTERN.match(label):
                raise ModelConfigError(f"{source}: model {model.name!r}: label {label!r} is not a valid label")
            if version <= 0:
                raise ModelConfigError(f"{source}: model {model.name!r}: label {label!r} -> {version} "
                                       "is not a version number")


def read(path: Path) -> Optional[ModelServerConfig]:
    """The config at ``path``, or None when there is no file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return parse(text, str(path))


def to_text(config: ModelServerConfig) -> str:
    return text_format.MessageToString(config)


def find_model(config: ModelServerConfig, name: str) -> Optional[ModelConfig]:
    for model in config.model_config_list.config:
        if model.name == name:
            return model
    return None


def resolve_base_path(model: ModelConfig, config_dir: Path) -> Path:
    """A relative base_path is relative to the config file's directory."""
    base = Path(model.base_path)
    return base if base.is_absolute() else (Path(config_dir) / base)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on a serving config file (``.<name>.lock`` beside it), for read-modify-write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def replace_text(path: Path, text: str) -> None:
    """Writes beside, then renames over: a reader sees the old file or the new one, never half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@contextmanager
def editing(path: Path) -> Iterator[ModelServerConfig]:
    """Read-modify-write under an exclusive lock; the new text replaces the file atomically.

    An exception inside the block leaves the file as it was."""
    path = Path(path)
    with locked(path):
        config = read(path) or ModelServerConfig()
        config.model_config_list.SetInParent()
        yield config
        validate(config, str(path))
        replace_text(path, to_text(config))


def ensure_model(path: Path, name: str, latest_versions: int = DEFAULT_LATEST_VERSIONS,
                 new_version: Optional[int] = None) -> None:
    """Adds ``name`` (base path ``<dir of path>/<name>``) with a latest-N policy if it is not listed;
    an existing entry keeps its policy and labels, except that a pinned (specific) policy, which
    promotion sets, also serves ``new_version`` instead of the unlabelled versions before it."""
    if not is_valid_name(name):
        raise ModelConfigError(f"model name {name!r} is not a valid name")
    with editing(path) as config:
        model = find_model(config, name)
        if model is None:
            model = config.model_config_list.config.add(name=name, base_path=name, model_platform="tensorflow")
            model.model_version_policy.latest.num_versions = latest_versions
        elif new_version is not None and model.model_version_policy.WhichOneof("policy_choice") == "specific":
            keep = set(model.version_labels.values()) | {int(new_version)}
            model.model_version_policy.specific.ClearField("versions")
            model.model_version_policy.specific.versions.extend(sorted(keep))


def set_labels(path: Path, name: str, labels: Dict[str, Optional[int]]) -> None:
    """Sets (or, with None, removes) version labels of a listed model."""
    with editing(path) as config:
        model = find_model(config, name)
        if model is None:
            raise ModelConfigError(f"{path}: model {name!r} is not listed")
        for label, version in labels.items():
            if version is None:
                model.version_labels.pop(label, None)
            else:
                model.version_labels[label] = int(version)


def set_specific_versions(path: Path, name: str, versions: Sequence[int]) -> None:
    """Pins the versions that are served (e.g. stable and canary), replacing a latest-N policy."""
    with editing(path) as config:
        model = find_model(config, name)
        if model is None:
            raise ModelConfigError(f"{path}: model {name!r} is not listed")
        model.model_version_policy.specific.ClearField("versions")
        model.model_version_policy.specific.versions.extend(sorted({int(v) for v in versions}))
