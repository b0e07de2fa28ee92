"""The server's heap kept out of CPython's full collections while it serves.

A loaded model leaves hundreds of thousands of long-lived Python objects (TensorFlow's side of it)
that every full (generation 2) collection walks with the GIL held, and no request moves meanwhile:
under many concurrent clients such a pause is the p99 (docs/serving.md). Once the loaded versions
have settled they are frozen (``gc.freeze``: a permanent generation that no collection walks);
objects made later are collected as usual.

An unloaded version must become collectable again (a model's objects hold reference cycles): the
heap is unfrozen at once, and frozen again once every unloaded version is gone. Requests in flight
keep theirs until they finish, so that may take a later settle.
"""
import gc
import threading
import weakref
from typing import List


class FrozenHeap:
    def __init__(self):
        self._leaving: List[weakref.ref] = []  # unloaded versions not collected yet
        self._settled = True  # nothing loaded or unloaded since the last freeze
        self._lock = threading.Lock()

    def loaded(self) -> None:
        self._settled = False

    def unloaded(self, servable: object) -> None:
        with self._lock:
            gc.unfreeze()
            self._leaving.append(weakref.ref(servable))
            self._settled = False

    def settle(self) -> None:
        """After a load or an unload: collects, then freezes what is left unless an unloaded version
        is still alive (then the next settle tries again). Nothing to do otherwise."""
        with self._lock:
            if self._settled:
                return
            gc.collect()
            self._leaving = [ref for ref in self._leaving if ref() is not None]
            if not self._leaving:
                gc.freeze()
                self._settled = True

    @property
    def pending(self) -> bool:
        return bool(self._leaving)

    def release(self) -> None:
        """Back to CPython's usual collections (the server stops)."""
        with self._lock:
            gc.unfreeze()
            self._leaving = []
            self._settled = True


class UnmanagedHeap(FrozenHeap):
    """A heap left to CPython's usual collections (a manager outside a server: tests, tools)."""

    def loaded(self) -> None:
        pass

    def unloaded(self, servable: object) -> None:
        pass

    def settle(self) -> None:
        pass

    def release(self) -> None:
        pass
