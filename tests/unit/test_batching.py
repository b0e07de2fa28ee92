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


@pytest.mark.parametrize("threads, overlapped", [(2, True), (1, False)])
def test_a_second_batch_thread_runs_a_batch_while_the_first_is_in_its_call(threads, overlapped):
    """Two batch threads: a request that arrives while a batch is in the model call runs beside it
    (the call releases the GIL); one thread makes it wait for that call to end."""
    inside, release = threading.Semaphore(0), threading.Event()

    def run(inputs):
        inside.release()
        release.wait(timeout=10)
        return {"y": inputs["x"]}

    batcher = Batcher(run, max_batch_size=4, timeout_seconds=0.001, threads=threads)
    first = batcher.submit({"x": np.array([1.0])})
    assert inside.acquire(timeout=5)  # the first batch is in its call
    second = batcher.submit({"x": np.array([2.0])})
    assert inside.acquire(timeout=1) is overlapped
    release.set()
    assert first.result(timeout=5)["y"].tolist() == [1.0] and second.result(timeout=5)["y"].tolist() == [2.0]
    queued = [batcher.submit({"x": np.array([float(i)])}) for i in range(6)]
    batcher.close()  # every worker stops after running what was queued
    assert [f.result(timeout=5)["y"].tolist() for f in queued] == [[float(i)] for i in range(6)]
    assert not any(thread.is_alive() for thread in batcher._threads)
