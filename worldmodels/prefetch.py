"""A background thread that makes the next training batches while the current one trains: the host's work on a
batch (windows, memory retrieval in numpy, copies to the device) overlaps the device's, so that the device, not
the host, bounds a step. One producer calls ``make`` in order, so the batches are those the synchronous loop
would make, in the same order, from the same random state."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Prefetcher(Generic[T]):
    """``next()`` returns ``make()``'s results in order, up to ``depth`` made ahead; an exception in ``make`` is
    raised by the ``next()`` that would have returned its batch. Use as a context manager (``close`` stops the
    thread). ``make`` must be the only user of the random state it draws from while the prefetcher runs."""

    def __init__(self, make: Callable[[], T], depth: int = 2):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self._make, self._queue = make, queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = (True, self._make())
            except BaseException as exc:    # handed to the consumer, which raises it
                item = (False, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not item[0]:
                return

    def next(self) -> T:
        ok, item = self._queue.get()
        if not ok:
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
