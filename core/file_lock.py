"""One process at a time on a resource of the home: an exclusive ``flock`` on a lock file, which
names its holder for the others (the kernel releases it when the holder ends, even killed)."""
import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


@contextmanager
def held(path: Path, holder: str, busy: Callable[[str], None]) -> Iterator[None]:
    """The lock at ``path`` for the block, ``holder`` written in it. When another process holds it,
    ``busy(its holder)`` is called first: raise there to give up, return to wait for the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            busy(lock.read().strip() or "another process")
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(holder)
        lock.flush()
        try:
            yield
        finally:
            lock.seek(0)
            lock.truncate()
