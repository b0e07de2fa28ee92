"""serving.busy_poll: when a connection's thread spins before it sleeps in recv, and when it must not.
A spin shows as CPU time of the waiting thread (``time.thread_time``); sleeping in recv costs none."""
import socket
import threading
import time
from typing import Tuple

import pytest

from serving.busy_poll import BusyPoll


@pytest.fixture
def pairs():
    made = [socket.socketpair() for _ in range(2)]
    yield made
    for a, b in made:
        a.close()
        b.close()


def _wait(poll: BusyPoll, sock: socket.socket, peer: socket.socket, after: float) -> Tuple[float, float]:
    """One wait of a connection thread (working before and after) for a byte its peer sends ``after``
    seconds later: (wall seconds, this thread's CPU seconds)."""
    timer = threading.Timer(after, peer.sendall, (b"x",))
    poll.enter()
    try:
        wall, cpu = time.perf_counter(), time.thread_time()
        timer.start()
        assert poll.idle(sock.recv, 16) == b"x"
        return time.perf_counter() - wall, time.thread_time() - cpu
    finally:
        poll.leave()
        timer.join()


def test_a_lone_waiting_thread_spins_its_window_then_sleeps(pairs):
    (mine, peer), _ = pairs
    poll = BusyPoll(0.1)
    poll.watch(mine)
    wall, cpu = _wait(poll, mine, peer, after=0.4)
    assert wall >= 0.35 and 0.05 <= cpu < 0.3  # spun ~0.1 s, then slept until the byte came


def test_its_own_bytes_end_the_spin_at_once(pairs):
    (mine, peer), _ = pairs
    poll = BusyPoll(5.0)
    poll.watch(mine)
    wall, _ = _wait(poll, mine, peer, after=0.05)
    assert wall < 1.0  # not the 5 s window


def test_another_connections_bytes_stop_the_spin(pairs):
    """The other connection's thread needs the GIL the spinner holds between polls: it steps aside."""
    (mine, peer), (other, other_peer) = pairs
    poll = BusyPoll(5.0)
    poll.watch(mine)
    poll.watch(other)
    other_peer.sendall(b"request")  # readable, as if its thread were about to read it
    wall, cpu = _wait(poll, mine, peer, after=0.3)
    assert wall >= 0.25 and cpu < 0.1


def test_no_spin_while_another_thread_works_nor_beside_another_spinner(pairs):
    (mine, peer), _ = pairs
    poll = BusyPoll(5.0)
    poll.watch(mine)
    poll.enter()  # another connection's thread, running a model
    try:
        _, cpu = _wait(poll, mine, peer, after=0.3)
        assert cpu < 0.1
    finally:
        poll.leave()
    assert poll._working == 0
    with poll._spinner:  # another thread spins
        _, cpu = _wait(poll, mine, peer, after=0.3)
    assert cpu < 0.1
    _, cpu = _wait(poll, mine, peer, after=0.3)  # alone again: it spins
    assert cpu >= 0.15


def test_off_is_a_plain_read(pairs):
    (mine, peer), _ = pairs
    poll = BusyPoll(0)
    assert not poll.enabled
    poll.watch(mine)  # a no-op
    _, cpu = _wait(poll, mine, peer, after=0.3)
    assert cpu < 0.1
    poll.close()


def test_the_serve_option_is_checked_and_passed_on(tmp_path, started, capsys):
    from cli.main import main

    assert main(["serve", "--serving-dir", str(tmp_path)]) == 0 and started[-1][-1].busy_poll_us == 300.0
    assert main(["serve", "--serving-dir", str(tmp_path), "--busy-poll-us", "0"]) == 0
    assert started[-1][-1].busy_poll_us == 0.0
    assert main(["serve", "--serving-dir", str(tmp_path), "--busy-poll-us", "-5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mlops: error: --busy-poll-us -5: microseconds between 0 (off) and 1000000" and len(started) == 2


def test_queued_shadow_copies_and_request_log_samples_count_as_work(tmp_path):
    """Work that runs after the answer (a shadow copy, a logged sample) holds spinning off until done."""
    from types import SimpleNamespace

    import numpy as np

    from serving.request_log import RequestLogger
    from serving.shadow import ShadowRunner

    poll, release = BusyPoll(5.0), threading.Event()

    def run(key, inputs, names):
        release.wait(5)
        return {"predictions": np.ones((1, 1), np.float32)}

    primary = SimpleNamespace(name="m", version=1)
    shadow = SimpleNamespace(version=2, servable=SimpleNamespace(run=run))
    runner = ShadowRunner(tmp_path / "shadow", poll)
    assert runner.submit(primary, shadow, "serving_default", {"x": np.ones(1)}, {"predictions": np.ones((1, 1))}, 0.001)
    assert poll._working == 1  # queued or running: no spin
    release.set()
    runner.close()
    assert poll._working == 0 and runner.done == 1
    logger = RequestLogger(tmp_path / "log", 1.0, busy=poll)
    logger.log_rows("m", 1, {"x": np.ones(2, np.float32)})
    logger.close()
    assert poll._working == 0 and logger.written == 2
