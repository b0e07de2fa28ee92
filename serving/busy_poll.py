"""Busy polling for the next request, as the kernel's SO_BUSY_POLL and a guest's haltpoll do, in the
connection threads of both APIs (REST and gRPC: a thread per connection).

A thread that sleeps in ``recv`` between one client's requests pays for the wake-up and then runs
cold (TF's session call ~110 us there, ~75 with the poll, ~55 in a loop): on a 2-CPU VM, one
client's batch-1 throughput rose 1.3-1.5x (docs/serving.md).

Rules that keep it from costing anyone else (a spinning thread holds the GIL between polls):
- one thread spins at a time, and only while nothing else counts as working: no other connection
  thread (reading a request, running a model, answering), no gRPC call on the pool, no queued
  shadow copy or request-log sample (each ``enter``s when queued and ``leave``s when done);
- it polls every watched socket (connections and listeners), so another client's bytes or a new
  connection stop it at once;
- it spins at most ``seconds`` per wait, then sleeps in ``recv`` as before; 0 turns it off.
"""
import select
import socket
import ssl
import threading
import time
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


class BusyPoll:
    """The process's one poller: ``watch`` each socket, bracket each connection thread's life with
    ``enter``/``leave``, and read through ``idle(read, ...)``."""

    def __init__(self, seconds: float):
        self.seconds = max(0.0, seconds)
        self._epoll: Optional[select.epoll] = select.epoll() if self.seconds > 0 else None
        self._working = 0  # connection threads not waiting for bytes, pool calls, queued background work
        self._lock = threading.Lock()
        self._spinner = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._epoll is not None

    def watch(self, sock: socket.socket) -> None:
        """Another socket whose readiness stops a spin (the kernel drops it from the set on close)."""
        if self._epoll is not None:
            try:
                self._epoll.register(sock.fileno(), select.EPOLLIN)
            except (OSError, ValueError):  # already watched (a reused descriptor), or closed
                pass

    def enter(self) -> None:
        with self._lock:
            self._working += 1

    def leave(self) -> None:
        with self._lock:
            self._working -= 1

    def idle(self, read: Callable[..., T], *args, spin: bool = True) -> T:
        """``read(*args)``, the thread counted as waiting meanwhile; before it, the spin (not for a TLS
        socket, whose decrypted bytes may be waiting where polling cannot see them)."""
        self.leave()
        try:
            if spin and self._working == 0 and self._epoll is not None and self._spinner.acquire(blocking=False):
                try:
                    self._spin()
                finally:
                    self._spinner.release()
            return read(*args)
        finally:
            self.enter()

    def _spin(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        poll, clock = epoll.poll, time.perf_counter
        deadline = clock() + self.seconds
        try:
            while self._working == 0 and not poll(0, 1) and clock() < deadline:
                pass
        except (OSError, ValueError):  # closed by a stopping server: the read that follows decides
            pass

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None


class PolledSocketIO(socket.SocketIO):
    """A socket's raw reader (under ``socket.makefile``'s buffer) that reads through ``BusyPoll.idle``."""

    def __init__(self, sock: socket.socket, poll: BusyPoll):
        super().__init__(sock, "rb")
        self._poll, self._spin = poll, not isinstance(sock, ssl.SSLSocket)

    def readinto(self, b) -> Optional[int]:
        return self._poll.idle(super().readinto, b, spin=self._spin)
