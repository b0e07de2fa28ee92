"""Server-side batching: concurrent requests merged, each given its rows, failures to all."""
import threading
from pathlib import Path

import numpy as np
import pytest

from serving.runtime.batching import Batcher

REPO = Path(__file__).resolve().parents[2]


def test_batcher_merges_concurrent_requests_and_returns_each_its_rows():
    calls = []

    def run(inputs):
        calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}

    batcher = Batcher(run, max_batch_size=16, timeout_seconds=0.05)
    results = {}

    def client(i):
        results[i] = batcher.submit({"x": np.array([float(i), float(i) + 0.5])}).result(timeout=10)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    batcher.close()
    for i in range(8):
        np.testing.assert_array_equal(results[i]["y"], [2.0 * i, 2.0 * i + 1])
    assert batcher.batches >= 1 and max(calls) > 2 and sum(calls) == 16
    assert batcher.submit({"x": np.array([1.0])}).result(timeout=5)["y"].tolist() == [2.0]  # after close


def test_batcher_hands_a_failure_to_every_request_in_the_batch():
    batcher = Batcher(lambda inputs: 1 / 0, max_batch_size=8, timeout_seconds=0.01)
    future = batcher.submit({"x": np.array([1.0])})
    with pytest.raises(ZeroDivisionError):
        future.result(timeout=5)
    batcher.close()
