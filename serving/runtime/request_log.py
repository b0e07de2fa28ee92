"""Sampled request logging for skew checks: request rows as tf.Examples in TFRecord files,
``<root>/<model>/<version>/requests-<start>-<pid>.tfrecord`` (the answering version is the
directory). Rows are written in the training data's terms: whole float64 values (how integer
columns arrive at ``serving_default``) as int64, NaN and "" (missing) left out, so TFDV can compare
them with the training statistics as they are.

Writing happens on a background thread behind a bounded queue: a slow disk never slows requests;
when the queue is full a sample is dropped and counted.
"""
import logging
import os
import queue
import random
import threading
import time
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from serving.codec.examples import encode

log = logging.getLogger("mlops.serving")
FLUSH_SECONDS = 1.0


def rows_to_examples(inputs: Mapping[str, np.ndarray]) -> list:
    rows = {a.shape[0] for a in inputs.values() if a.ndim}
    if len(rows) != 1:
        return []
    examples = []
    for i in range(rows.pop()):
        row = {}
        for name, array in inputs.items():
            value = np.reshape(array[i], [-1])
            if value.dtype == object or value.dtype.kind in "SU":
                data = [v if isinstance(v, bytes) else str(v).encode() for v in value]
                if data and any(data):
                    row[name] = data
            elif value.dtype.kind == "f":
                if np.isnan(value).any():
                    continue
                # JSON numbers arrive as float64: whole ones are logged as the integers a CSV holds
                integral = value.dtype == np.float64 and np.all(np.mod(value, 1) == 0)
                row[name] = value.astype(np.int64) if integral else value
            elif value.dtype.kind in "iub":
                row[name] = value.astype(np.int64)
        examples.append(encode(row))
    return examples


class RequestLogger:
    def __init__(self, root: Path, sample_rate: float, max_queue: int = 10000, seed: Optional[int] = None):
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"request log sample rate must be in (0, 1], got {sample_rate}")
        self.root = Path(root)
        self.sample_rate = sample_rate
        self.dropped = 0
        self.written = 0
        self._random = random.Random(seed)
        self._queue: "queue.Queue[Optional[Tuple[str, int, Sequence[bytes]]]]" = queue.Queue(max_queue)
        self._writers: Dict[Tuple[str, int], tf.io.TFRecordWriter] = {}
        self._started = time.strftime("%Y%m%dT%H%M%S")
        self._thread = threading.Thread(target=self._loop, name="request-log", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        return self.sample_rate >= 1.0 or self._random.random() < self.sample_rate

    def log_rows(self, model: str, version: int, inputs: Mapping[str, np.ndarray]) -> None:
        self._put(model, version, None, inputs)

    def log_examples(self, model: str, version: int, examples: Sequence[bytes]) -> None:
        self._put(model, version, list(examples), None)

    def _put(self, model, version, examples, inputs) -> None:
        try:
            self._queue.put_nowait((model, version, examples, inputs))
        except queue.Full:
            self.dropped += 1

    def path(self, model: str, version: int) -> Path:
        return self.root / model / str(version) / f"requests-{self._started}-{os.getpid()}.tfrecord"

    def _loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=FLUSH_SECONDS)
            except queue.Empty:
                item = ()
            if item is None:
                break
            if item:
                model, version, examples, inputs = item
                try:
                    records = examples if examples is not None else rows_to_examples(inputs)
                    writer = self._writers.get((model, version))
                    if writer is None:
                        path = self.path(model, version)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        writer = self._writers[(model, version)] = tf.io.TFRecordWriter(str(path))
                    for record in records:
                        writer.write(record)
                    self.written += len(records)
                except (OSError, tf.errors.OpError, ValueError) as e:
                    log.error("request log: %s", e)
            if time.monotonic() - last_flush >= FLUSH_SECONDS:
                for writer in self._writers.values():
                    writer.flush()
                last_flush = time.monotonic()
        for writer in self._writers.values():
            writer.close()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
