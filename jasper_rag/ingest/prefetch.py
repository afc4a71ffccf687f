"""Run an iterator in a background thread, a bounded number of items ahead of its consumer.

Ingestion reads and parses the next files (the parse worker is another process, and torch releases the
GIL while it computes) while the main thread embeds the files already parsed, so the encoder is not left
waiting for the parser. At most ``depth`` items wait in the queue,
which bounds the memory of files parsed ahead. An exception raised by the iterator is raised again in
the consumer; leaving the ``with`` block early (an error, Ctrl-C) stops the thread after its current item.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
POLL_S = 0.1  # how often a producer blocked on a full queue checks whether the consumer left


class Prefetch(Generic[T]):
    """``with Prefetch(items, depth) as ahead: for item in ahead: ...``: ``items`` produced by a thread."""

    _DONE = object()

    def __init__(self, items: Iterable[T], depth: int, name: str = "prefetch") -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be positive, not {depth}")
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> Prefetch[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind is self._DONE:
                return
            if isinstance(kind, BaseException):
                raise kind
            yield value

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put((None, item)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            self._put((error, None))
            return
        self._put((self._DONE, None))

    def _put(self, entry: tuple) -> bool:
        """Queue ``entry`` unless the consumer has left; False when it has."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False
