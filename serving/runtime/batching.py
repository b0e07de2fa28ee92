"""Server-side batching: concurrent requests to one signature of one version run as one call.

A worker takes the first waiting request, then gathers more until ``max_batch_size`` rows or
``timeout_seconds`` have passed, concatenates the inputs along the batch dimension, calls the
model once and hands each request its rows back. Requests whose inputs cannot be concatenated
with the batch (other names, dtypes or inner shapes) go into that worker's next batch.

``threads`` workers share the queue, as TF Serving's ``num_batch_threads``: while one batch runs
(the model call releases the GIL), the next one gathers and can run beside it. With one worker,
closed-loop clients wait for the running batch, send their next requests together, and the first
batch after it leaves with the few that arrived within the timeout.
"""
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Tuple

import numpy as np

RunFn = Callable[[Mapping[str, np.ndarray]], Dict[str, np.ndarray]]


@dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    rows: int
    future: Future = field(default_factory=Future)

    def key(self) -> Tuple:
        return tuple(sorted((name, str(a.dtype), a.shape[1:]) for name, a in self.inputs.items()))


class Batcher:
    def __init__(self, run: RunFn, max_batch_size: int = 32, timeout_seconds: float = 0.002,
                 name: str = "batcher", threads: int = 1):
        self._run = run
        self.max_batch_size = max_batch_size
        self.timeout_seconds = timeout_seconds
        self._queue: "queue.Queue[_Task]" = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self.batches = 0  # batches run, for metrics and tests
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
                         for i in range(max(1, threads))]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: Mapping[str, np.ndarray]) -> Future:
        rows = {a.shape[0] for a in inputs.values() if a.ndim}
        task = _Task(inputs, rows.pop() if len(rows) == 1 else 0)
        with self._lock:
            if self._closed or task.rows == 0 or task.rows > self.max_batch_size:
                closed = True
            else:
                closed = False
                self._queue.put(task)
        if closed:  # not batchable (or the batcher is retiring): run on its own
            self._run_tasks([task])
        return task.future

    def close(self) -> None:
        """Runs what is queued, then stops; later submissions run unbatched."""
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._queue.put(None)  # type: ignore[arg-type]
        for thread in self._threads:
            thread.join(timeout=60)

    def _loop(self) -> None:
        held: List[_Task] = []  # this worker's tasks that did not fit its last batch
        while True:
            first = held.pop(0) if held else self._queue.get()
            if first is None:
                self._drain(held)
                return
            batch, rows = [first], first.rows
            key = first.key()
            deadline = time.monotonic() + self.timeout_seconds
            stop = False
            while rows < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    task = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if task is None:
                    stop = True
                    break
                if task.key() != key or rows + task.rows > self.max_batch_size:
                    held.append(task)
                    break
                batch.append(task)
                rows += task.rows
            self._run_tasks(batch)
            if stop:
                self._drain(held)
                return

    def _drain(self, pending: List[_Task]) -> None:
        """This worker's last tasks: its held ones and what is still queued (another worker's stop
        signal goes back for it)."""
        stops = 0
        while True:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                break
            if task is None:
                stops += 1
            else:
                pending.append(task)
        for _ in range(stops):
            self._queue.put(None)  # type: ignore[arg-type]
        for task in pending:
            self._run_tasks([task])

    def _run_tasks(self, tasks: List[_Task]) -> None:
        try:
            if len(tasks) == 1:
                outputs = self._run(tasks[0].inputs)
                tasks[0].future.set_result(outputs)
                return
            names = list(tasks[0].inputs)
            merged = {name: np.concatenate([t.inputs[name] for t in tasks]) for name in names}
            outputs = self._run(merged)
            with self._lock:
                self.batches += 1
            start = 0
            for task in tasks:
                end = start + task.rows
                task.future.set_result({name: value[start:end] for name, value in outputs.items()})
                start = end
        except Exception as e:  # each waiting request gets the error, the worker lives on
            for task in tasks:
                if not task.future.done():
                    task.future.set_exception(e)
