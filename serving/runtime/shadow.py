"""Shadow traffic: each request, once answered, is run again on the ``shadow`` version by one worker
thread behind a bounded queue (a full queue drops the copy and counts it; the caller never waits
for it and never sees its errors). Both outputs go, one JSON line per request, to
``<shadow logs>/<name>.jsonl``; ``shadow_report`` (`mlops shadow NAME`) compares them."""
import json
import logging
import queue
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

log = logging.getLogger("mlops.serving")

SHADOW_QUEUE = 256  # copies waiting for the shadow model; beyond it they are dropped (and counted)
COMPARED_OUTPUT = "predictions"  # the output compared when the signature has it
CLASS_TASKS = ("binary", "multiclass", "multilabel")


def compared_output(names) -> Optional[str]:
    names = sorted(names)
    return COMPARED_OUTPUT if COMPARED_OUTPUT in names else (names[0] if names else None)


class ShadowRunner:
    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.dropped = 0
        self.queued = 0
        self.done = 0
        self._queue: "queue.Queue" = queue.Queue(maxsize=SHADOW_QUEUE)
        self._counts = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="shadow", daemon=True)
        self._thread.start()

    def submit(self, primary, shadow, key: str, inputs: Mapping[str, np.ndarray],
               outputs: Mapping[str, np.ndarray], primary_seconds: float) -> bool:
        """Queues a copy of an answered request (False: the queue was full and it was dropped)."""
        with self._counts:
            try:
                self._queue.put_nowait((primary, shadow, key, dict(inputs), dict(outputs), primary_seconds))
                self.queued += 1
                return True
            except queue.Full:
                self.dropped += 1
                return False

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._compare(*item)
            self.done += 1

    def _compare(self, primary, shadow, key: str, inputs: Mapping[str, np.ndarray],
                 outputs: Mapping[str, np.ndarray], primary_seconds: float) -> None:
        """Runs the shadow version on a copy and appends the record to the model's shadow log."""
        name = compared_output(outputs)
        started, error, theirs = time.perf_counter(), None, None
        try:
            theirs = shadow.servable.run(key, inputs, (name,) if name else ())
        except Exception as e:  # the shadow's failure is recorded, never raised to anyone
            error = f"{type(e).__name__}: {e}"[:300]
        record = {"at": time.time(), "model": primary.name, "primary_version": primary.version,
                  "shadow_version": shadow.version, "signature": key, "output": name,
                  "primary_ms": primary_seconds * 1000, "shadow_ms": (time.perf_counter() - started) * 1000,
                  "primary": np.asarray(outputs[name]).tolist() if name else None,
                  "shadow": np.asarray(theirs[name]).tolist() if theirs is not None and name else None,
                  "error": error}
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{primary.name}.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            log.warning("shadow log not written: %s", e)

    def drain(self, timeout_s: float = 10.0) -> None:
        """Waits until every queued copy is done (tests, a stopping server)."""
        deadline = time.monotonic() + timeout_s
        while self.done < self.queued and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.drain()
        self._queue.put(None)
        self._thread.join(timeout=10)


def _classes(values: np.ndarray, task: str) -> List[Any]:
    if task == "multiclass":
        return values.reshape(len(values), -1).argmax(-1).tolist()
    if task == "binary":
        return (values.reshape(len(values), -1)[:, -1] >= 0.5).astype(int).tolist()
    return [tuple(row) for row in (values.reshape(len(values), -1) >= 0.5).astype(int).tolist()]


def _percentile(values: List[float], q: float) -> Optional[float]:
    return float(np.percentile(values, q)) if values else None


def shadow_report(path: Path, task: str, since: float = 0.0) -> Dict[str, Any]:
    """Agreement of the shadow with the serving version on the requests mirrored since ``since``:
    for classes the agreement rate and the confusion (serving class -> shadow class -> rows), else
    the mean absolute difference; each side's latency; counts of requests, rows and shadow errors."""
    records = []
    if Path(path).is_file():
        with open(path) as f:
            records = [r for r in map(json.loads, f) if r["at"] >= since]
    compared = [r for r in records if r["error"] is None and r["primary"] is not None]
    report: Dict[str, Any] = {
        "requests": len(records), "compared": len(compared), "shadow_errors": len(records) - len(compared),
        "versions": sorted({(r["primary_version"], r["shadow_version"]) for r in records}), "task": task,
        "primary_ms_p50": _percentile([r["primary_ms"] for r in compared], 50),
        "primary_ms_p99": _percentile([r["primary_ms"] for r in compared], 99),
        "shadow_ms_p50": _percentile([r["shadow_ms"] for r in compared], 50),
        "shadow_ms_p99": _percentile([r["shadow_ms"] for r in compared], 99)}
    mine = [np.asarray(r["primary"], dtype=float) for r in compared]
    theirs = [np.asarray(r["shadow"], dtype=float) for r in compared]
    report["rows"] = int(sum(len(m) for m in mine))
    if not compared:
        return report
    if task in CLASS_TASKS:
        pairs = [(a, b) for m, t in zip(mine, theirs) for a, b in zip(_classes(m, task), _classes(t, task))]
        report["agreement"] = sum(a == b for a, b in pairs) / len(pairs)
        confusion: Dict[str, Counter] = {}
        for a, b in pairs:
            confusion.setdefault(str(a), Counter())[str(b)] += 1
        report["confusion"] = {k: dict(v) for k, v in sorted(confusion.items())}
    else:
        report["mean_abs_difference"] = float(np.mean(np.concatenate(
            [np.abs(m.reshape(-1) - t.reshape(-1)) for m, t in zip(mine, theirs)])))
    return report
