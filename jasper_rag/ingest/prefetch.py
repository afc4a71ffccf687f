"""Run an iterator in a background thread, a bounded amount of work ahead of its consumer.

Ingestion reads and parses the next files (the parse worker is another process, and torch releases the
GIL while it computes) while the main thread embeds the files already parsed, so the encoder is not left
waiting for the parser. Each item has a weight (for ingestion: its entries) and the items waiting
weigh at most ``budget`` together, which bounds the memory of what was parsed ahead; one item heavier
than the budget still passes, alone. An exception raised by the iterator is raised again in the
consumer; leaving the ``with`` block early (an error, Ctrl-C) stops the thread after its current item.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Prefetch(Generic[T]):
    """``with Prefetch(items, budget, weight) as ahead: for item in ahead: ...``: ``items`` produced by a thread."""

    def __init__(
        self, items: Iterable[T], budget: int, weight: Callable[[T], int] = lambda item: 1, name: str = "prefetch"
    ) -> None:
        if budget < 1:
            raise ValueError(f"prefetch budget must be positive, not {budget}")
        self._items = items
        self._budget = budget
        self._weight = weight
        self._waiting: deque[tuple[T | None, BaseException | None, int]] = deque()
        self._queued = 0  # the weight of the items waiting
        self._done = False
        self._stop = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> Prefetch[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        self._thread.join()

    def __iter__(self) -> Iterator[T]:
        while True:
            with self._changed:
                while not self._waiting and not self._done:
                    self._changed.wait()
                if not self._waiting:
                    return
                item, error, weight = self._waiting.popleft()
                self._queued -= weight
                self._changed.notify_all()
            if error is not None:
                raise error
            yield item  # type: ignore[misc]

    def _produce(self) -> None:
        try:
            for item in self._items:
                weight = max(1, self._weight(item))
                with self._changed:
                    while not self._stop and self._queued and self._queued + weight > self._budget:
                        self._changed.wait()
                    if self._stop:
                        return
                    self._waiting.append((item, None, weight))
                    self._queued += weight
                    self._changed.notify_all()
        except BaseException as error:  # handed to the consumer, raised there
            with self._changed:
                self._waiting.append((None, error, 0))
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()
