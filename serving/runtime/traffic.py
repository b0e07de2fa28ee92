"""Traffic split (canary) and shadow traffic per model, in ``traffic.json`` beside ``models.config``.

``models.config`` is TF Serving's own proto and has no place for a split, so the split lives in
this file of ours, which both a running server (it re-reads it) and a restart keep. The versions
come from ``models.config``'s labels: ``stable`` (else the newest version that is not the canary),
``canary`` and ``shadow``. A request that names no version or label goes to the canary with the
split's probability: sticky per client when it sends CLIENT_KEY_HEADER (a hash of the key picks the
side), random otherwise. With shadow on, every request is also run on the ``shadow`` version off the
request's path. The official TF Serving image cannot split or mirror traffic: a gateway does it
there (docs/serving.md, infra/serving/). No TensorFlow import."""
import json
import os
import random
import threading
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional

from serving.runtime.model_config import ModelConfigError, is_valid_name, locked, replace_text

TRAFFIC_FILE = "traffic.json"
STABLE_LABEL, CANARY_LABEL, SHADOW_LABEL = "stable", "canary", "shadow"
CLIENT_KEY_HEADER = "X-Client-Key"  # REST header; gRPC metadata key "x-client-key"
RECHECK_SECONDS = 0.5  # how often a server looks at the file's mtime
_RANDOM = random.Random()


@dataclass(frozen=True)
class Split:
    canary_percent: float = 0.0  # of the requests that name no version or label
    shadow: bool = False  # mirror every request to the `shadow` label's version


def traffic_path(serving_dir: Path) -> Path:
    return Path(serving_dir) / TRAFFIC_FILE


def parse(text: str, source: str = TRAFFIC_FILE) -> Dict[str, Split]:
    try:
        document = json.loads(text or "{}")
    except ValueError as e:
        raise ModelConfigError(f"{source}: not JSON: {e}") from None
    if not isinstance(document, dict):
        raise ModelConfigError(f"{source}: expected an object of model name -> split")
    splits = {}
    for name, entry in document.items():
        if not is_valid_name(name) or not isinstance(entry, dict) or set(entry) - {"canary_percent", "shadow"}:
            raise ModelConfigError(f"{source}: entry {name!r}: expected {{\"canary_percent\": P, \"shadow\": B}}")
        percent = entry.get("canary_percent", 0.0)
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
            raise ModelConfigError(f"{source}: {name}.canary_percent {percent!r}: a number from 0 to 100")
        if not isinstance(entry.get("shadow", False), bool):
            raise ModelConfigError(f"{source}: {name}.shadow: true or false")
        splits[name] = Split(float(percent), entry.get("shadow", False))
    return splits


def read(path: Path) -> Dict[str, Split]:
    try:
        return parse(Path(path).read_text(), str(path))
    except FileNotFoundError:
        return {}


def set_split(path: Path, name: str, canary_percent: Optional[float] = None, shadow: Optional[bool] = None) -> Split:
    """Changes a model's split (under the lock, replaced atomically); returns the new one. Once a model
    has an entry, requests that name no version go to ``stable`` (or the canary), not to the newest
    version as TF Serving's rule for a model without one has it: a pushed challenger takes no traffic
    before its promotion."""
    path = Path(path)
    with locked(path):
        splits = read(path)
        current = splits.get(name, Split())
        new = Split(current.canary_percent if canary_percent is None else float(canary_percent),
                    current.shadow if shadow is None else bool(shadow))
        parse(json.dumps({name: asdict(new)}), str(path))  # the same checks as a reader's
        splits[name] = new  # kept at 0% too: the model's unaddressed requests stay on `stable`
        replace_text(path, json.dumps({k: asdict(v) for k, v in sorted(splits.items())}, indent=1) + "\n")
    return new


def to_canary(percent: float, client_key: Optional[str] = None, rng: random.Random = _RANDOM) -> bool:
    """Whether a request goes to the canary: by the key's hash (sticky), else at random."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    if client_key:
        return zlib.crc32(client_key.encode()) % 10_000 < percent * 100
    return rng.random() * 100 < percent


def metadata_client_key(metadata) -> Optional[str]:
    """The client key of a gRPC call, from its invocation metadata (lower-case keys)."""
    wanted = CLIENT_KEY_HEADER.lower()
    return next((value for key, value in metadata or () if key == wanted), None)


class TrafficTable:
    """The splits a server routes by: the file re-read when its mtime changes (checked at most every
    RECHECK_SECONDS); a bad file keeps the last good table and is reported in ``error``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.error: Optional[str] = None
        self._splits: Dict[str, Split] = {}
        self._mtime: Optional[int] = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def split(self, name: str) -> Optional[Split]:
        """The model's split; None when it has no entry (TF Serving's routing: the newest version)."""
        now = time.monotonic()
        if now - self._checked >= RECHECK_SECONDS:
            with self._lock:
                self._checked = now
                try:
                    mtime = os.stat(self.path).st_mtime_ns
                except FileNotFoundError:
                    mtime = None
                if mtime != self._mtime:
                    try:
                        self._splits, self.error = read(self.path), None
                    except ModelConfigError as e:
                        self.error = str(e)
                    self._mtime = mtime
        return self._splits.get(name)
