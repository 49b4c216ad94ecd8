"""Keeping the device busy: the next inputs decoded and pre-processed while the current one is explained.
(Handing inputs to ranks as they finish is the map store's claims: ``correlax.pipelines.map_store``.)

``prefetch`` runs ``load`` on up to ``depth`` inputs ahead in a thread pool (DICOM decoding, OpenCV and torch
release the GIL for their heavy parts); results come back in input order, a failed load as its exception so that
the batch goes on with the other inputs. ``correlax explain`` reads the next claimed file ahead this way
(``--prefetch``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Loaded(Generic[T, R]):
    """An item and what loading it gave: the value, or the error it raised."""
    item: T
    value: R | None
    error: Exception | None

    @classmethod
    def of(cls, item: T, load: Callable[[T], R]) -> "Loaded[T, R]":
        """``load(item)`` now, in this thread; a failure kept as the error, as :func:`prefetch` keeps it."""
        try:
            return cls(item, load(item), None)
        except Exception as e:  # reported to the consumer, who names the input and goes on
            return cls(item, None, e)


def prefetch(items: Iterable[T], load: Callable[[T], R], depth: int = 2, workers: int = 1) -> Iterator[Loaded[T, R]]:
    """``load(item)`` for every item, up to ``depth`` items ahead of the consumer, in order."""
    if depth < 1 or workers < 1:
        raise ValueError(f"need depth >= 1 and workers >= 1, got {depth}, {workers}")
    pending: deque[tuple[T, Future]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prefetch") as pool:
        for item in source:
            pending.append((item, pool.submit(load, item)))
            if len(pending) > depth:
                yield _result(*pending.popleft())
        while pending:
            yield _result(*pending.popleft())


def _result(item: T, future: Future) -> Loaded:
    return Loaded.of(item, lambda _: future.result())
