"""Which versions are loaded, and hot swaps between them.

A poll (every ``poll_seconds``) reads ``models.config`` and lists each model's base dir. A version
the policy wants is loaded and warmed up *before* it is published; versions the policy no longer
wants are unpublished only once a wanted version is available (TF Serving's availability-
preserving policy). Requests hold a reference to the servable they resolved, so a request in
flight finishes on the version it started on. A version that fails to load (or to warm up) is
reported in its status and never takes traffic; it is retried only when its files change.

Labels follow TF Serving's rule: a label may only point at an available version. A label moved to
a version that is still loading keeps its old target until the new one is available, so label
traffic never sees an error during a swap.
"""
import functools
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from serving.errors import invalid, not_found
from serving.runtime import model_config
from serving.runtime.heap import FrozenHeap, UnmanagedHeap

log = logging.getLogger("mlops.serving")

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"
DEFAULT_POLICY_LATEST = 1  # TF Serving's default when a model has no policy


@dataclass
class VersionStatus:
    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""
    files_key: Tuple = ()


@dataclass
class ModelEntry:
    name: str
    base_path: Path
    policy: model_config.ModelConfig
    versions: Dict[int, VersionStatus] = field(default_factory=dict)
    labels: Dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Routing:
    """An immutable snapshot read by request threads without a lock."""
    servables: Dict[str, Dict[int, object]]
    labels: Dict[str, Dict[str, int]]

    @functools.cached_property
    def latest(self) -> Dict[str, object]:
        """Each model's newest available version: where a request naming no version goes."""
        return {name: versions[max(versions)] for name, versions in self.servables.items() if versions}


def _files_key(version_dir: Path) -> Tuple:
    """Changes when the version's files change: a failed load is retried only then."""
    key = []
    for path in sorted(version_dir.rglob("*")):
        if path.is_file():
            stat = path.stat()
            key.append((str(path.relative_to(version_dir)), stat.st_size, stat.st_mtime_ns))
    return tuple(key)


def all_serving(serving: Dict[str, bool]) -> bool:
    """The server is ready: it has models, and every one has a version taking traffic."""
    return bool(serving) and all(serving.values())


def list_versions(base_path: Path) -> List[int]:
    """Numeric subdirectories that hold a saved_model.pb (a copy in progress has none yet)."""
    if not base_path.is_dir():
        return []
    return sorted(int(p.name) for p in base_path.iterdir()
                  if p.name.isdigit() and p.is_dir() and (p / "saved_model.pb").exists())


def wanted_versions(policy: model_config.ModelConfig, versions: List[int]) -> List[int]:
    which = policy.model_version_policy.WhichOneof("policy_choice")
    if which == "all":
        return list(versions)
    if which == "specific":
        pinned = set(policy.model_version_policy.specific.versions)
        return [v for v in versions if v in pinned]
    latest = policy.model_version_policy.latest.num_versions if which == "latest" else DEFAULT_POLICY_LATEST
    return versions[-max(1, latest):] if versions else []


class ModelManager:
    def __init__(self, serving_dir: Path, load: Callable[[str, int, Path], object], poll_seconds: float = 1.0,
                 heap: Optional[FrozenHeap] = None):
        """``load(name, version, path)`` returns a ready (warmed-up) servable or raises. ``heap``: kept
        frozen between the polls that load or unload a version (a server's; None: left alone,
        ``UnmanagedHeap``)."""
        self.serving_dir = Path(serving_dir)
        self.config_path = model_config.config_path(self.serving_dir)
        self._load = load
        self.poll_seconds = poll_seconds
        self._models: Dict[str, ModelEntry] = {}
        self._servables: Dict[Tuple[str, int], object] = {}
        self._routing = Routing({}, {})
        self._desired_labels: Dict[str, Dict[str, int]] = {}
        self._lock = threading.RLock()  # guards the model table; never held during a load
        self._poll_lock = threading.Lock()  # one reconciliation at a time
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.config_error: Optional[str] = None
        self._heap = heap or UnmanagedHeap()
        self.on_unload: Callable[[object], None] = lambda servable: None
        self.on_publish: Callable[[], None] = lambda: None  # after every change of what takes traffic

    # --- polling ---------------------------------------------------------------------------------
    def _read_models(self) -> Dict[str, Tuple[Path, model_config.ModelConfig]]:
        config = model_config.read(self.config_path)
        if config is None:  # no config: every model dir under the serving dir, latest version
            models = {}
            if self.serving_dir.is_dir():
                for path in sorted(self.serving_dir.iterdir()):
                    if path.is_dir() and model_config.is_valid_name(path.name):
                        models[path.name] = (path, model_config.ModelConfig(name=path.name, base_path=str(path)))
            return models
        return {m.name: (model_config.resolve_base_path(m, self.serving_dir), m)
                for m in config.model_config_list.config}

    def poll(self) -> None:
        """One reconciliation pass. A bad config keeps the previous one in force (and is reported)."""
        with self._poll_lock:
            try:
                models = self._read_models()
                self.config_error = None
            except model_config.ModelConfigError as e:
                if self.config_error != str(e):
                    log.error("%s; keeping the previous configuration", e)
                self.config_error = str(e)
                models = {name: (entry.base_path, entry.policy) for name, entry in self._models.items()}
            for name in list(self._models):
                if name not in models:  # removed from the config: unload all its versions
                    for version in list(self._models[name].versions):
                        self._unload(name, version)
                    with self._lock:
                        del self._models[name]
            for name, (base_path, policy) in models.items():
                with self._lock:
                    entry = self._models.get(name)
                    if entry is None:
                        entry = self._models[name] = ModelEntry(name, base_path, policy)
                    entry.base_path, entry.policy = base_path, policy
                    self._desired_labels[name] = dict(policy.version_labels)
                self._reconcile(entry)
            self._publish()
            self._heap.settle()

    def _reconcile(self, entry: ModelEntry) -> None:
        on_disk = list_versions(entry.base_path)
        wanted = wanted_versions(entry.policy, on_disk)
        for version in wanted:
            status = entry.versions.get(version)
            if status and status.state == AVAILABLE:
                continue
            version_dir = entry.base_path / str(version)
            files_key = _files_key(version_dir)
            if status and status.state == END and status.files_key == files_key:
                continue  # failed before, unchanged since
            with self._lock:
                entry.versions[version] = VersionStatus(version, LOADING, files_key=files_key)
            try:
                servable = self._load(entry.name, version, version_dir)
            except Exception as e:  # any load or warmup failure is reported, never served
                message = f"{type(e).__name__}: {e}".splitlines()[0][:500]
                with self._lock:
                    entry.versions[version] = VersionStatus(version, END, "UNKNOWN", message, files_key)
                log.error("model %s version %d failed to load: %s", entry.name, version, message)
                continue
            with self._lock:
                self._servables[(entry.name, version)] = servable
                entry.versions[version] = VersionStatus(version, AVAILABLE, files_key=files_key)
            self._heap.loaded()
            log.info("model %s version %d is available", entry.name, version)
            self._publish()  # the new version takes traffic now; the old one is still loaded
        wanted_available = [v for v in wanted if entry.versions.get(v) and entry.versions[v].state == AVAILABLE]
        for version, status in list(entry.versions.items()):
            if version in wanted:
                continue
            if status.state == AVAILABLE and (wanted_available or not wanted):
                self._unload(entry.name, version)
            elif status.state != AVAILABLE:
                with self._lock:
                    del entry.versions[version]  # a failed version the policy no longer wants

    def _unload(self, name: str, version: int) -> None:
        entry = self._models[name]
        with self._lock:
            entry.versions[version].state = UNLOADING
            servable = self._servables.pop((name, version), None)
        self._publish()  # no new request resolves to it; those in flight keep their reference
        if servable is not None:
            self.on_unload(servable)
            self._heap.unloaded(servable)
        with self._lock:
            entry.versions[version] = VersionStatus(version, END)
        log.info("model %s version %d unloaded", name, version)

    def _publish(self) -> None:
        with self._lock:
            self._publish_locked()
        self.on_publish()

    def _publish_locked(self) -> None:
        servables: Dict[str, Dict[int, object]] = {}
        for (name, version), servable in self._servables.items():
            servables.setdefault(name, {})[version] = servable
        labels: Dict[str, Dict[str, int]] = {}
        for name, entry in self._models.items():
            available = servables.get(name, {})
            for label, version in self._desired_labels.get(name, {}).items():
                if version in available:
                    entry.labels[label] = version
                elif label in entry.labels and entry.labels[label] in available:
                    pass  # moved to a version that is not available yet: keep the old target for now
                else:
                    entry.labels.pop(label, None)
            for label in list(entry.labels):
                if label not in self._desired_labels.get(name, {}):
                    del entry.labels[label]
            labels[name] = dict(entry.labels)
        self._routing = Routing(servables, labels)

    def start(self) -> None:
        """First reconciliation, then polling. A config that cannot be read at start is an error (as
        in TF Serving); later, a bad edit keeps the last good one in force."""
        self.poll()
        if self.config_error:
            raise model_config.ModelConfigError(self.config_error)
        self._thread = threading.Thread(target=self._poll_loop, name="model-poller", daemon=True)
        self._thread.start()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except OSError as e:  # e.g. the base dir vanished for a moment
                log.error("poll failed: %s", e)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self._heap.release()

    # --- requests --------------------------------------------------------------------------------
    def resolve(self, name: str, version: Optional[int] = None, label: Optional[str] = None):
        """The servable a request goes to, with TF Serving's errors for unknown names."""
        routing = self._routing
        if version is None and not label:
            latest = routing.latest.get(name)
            if latest is not None:  # a served model's name: valid
                return latest
        if not model_config.is_valid_name(name):
            raise invalid(f"Invalid model name: {name!r}")
        versions = routing.servables.get(name)
        if version is not None and label:
            raise invalid("Give either a version or a label, not both")
        if label:
            if not model_config.LABEL_PATTERN.match(label):
                raise invalid(f"Invalid version label: {label!r}")
            target = routing.labels.get(name, {}).get(label)
            if target is None:
                raise invalid(f"Unrecognized servable version label: {label}")
            version = target
        if not versions:
            spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise not_found(f"Servable not found for request: {spec}")
        if version is None:
            return versions[max(versions)]
        servable = versions.get(version)
        if servable is None:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return servable

    def routing(self, name: str) -> Tuple[Dict[int, object], Dict[str, int]]:
        """The model's available versions and its labels, from one snapshot (for traffic splits)."""
        routing = self._routing
        return routing.servables.get(name, {}), routing.labels.get(name, {})

    def status(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> List[VersionStatus]:
        if not model_config.is_valid_name(name):
            raise invalid(f"Invalid model name: {name!r}")
        with self._lock:
            entry = self._models.get(name)
            if entry is None or not entry.versions:
                raise not_found(f"Could not find any versions of model {name}")
            if label:
                if label not in entry.labels:
                    raise invalid(f"Unrecognized servable version label: {label}")
                version = entry.labels[label]
            if version is not None:
                if version not in entry.versions:
                    raise not_found(f"Could not find version {version} of model {name}")
                return [VersionStatus(**vars(entry.versions[version]))]
            return [VersionStatus(**vars(s)) for _, s in sorted(entry.versions.items(), reverse=True)]

    def models(self) -> Dict[str, Dict[str, object]]:
        """Every model's versions, states and labels (for /healthz and the CLI)."""
        with self._lock:
            return {name: {"versions": {str(v): s.state for v, s in sorted(e.versions.items())},
                           "labels": dict(e.labels),
                           "errors": {str(v): s.error_message for v, s in e.versions.items() if s.error_message}}
                    for name, e in self._models.items()}

    def serving_models(self) -> Dict[str, bool]:
        """Each configured model: whether a version of it takes traffic."""
        routing = self._routing
        with self._lock:
            return {name: bool(routing.servables.get(name)) for name in self._models}

    def ready(self) -> bool:
        return all_serving(self.serving_models())
