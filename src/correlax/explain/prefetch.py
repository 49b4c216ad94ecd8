"""Keeping the device busy: the next inputs decoded and pre-processed while the current one is explained, and
inputs handed out to ranks as they finish.

``prefetch`` runs ``load`` on up to ``depth`` inputs ahead in a thread pool (DICOM decoding, OpenCV and torch
release the GIL for their heavy parts); results come back in input order, a failed load as its exception so that
the batch goes on with the other inputs.

``claimed`` hands inputs to ranks first come, first served instead of ``files[rank::world]``: a rank takes an
input by creating its claim file with ``O_CREAT | O_EXCL`` (atomic on a local or NFSv3+ file system), so a rank
that finishes early takes the next unclaimed input and no two ranks explain the same one.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Loaded(Generic[T, R]):
    item: T
    value: R | None
    error: Exception | None


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
    try:
        return Loaded(item, future.result(), None)
    except Exception as e:  # reported to the consumer, who names the input and goes on
        return Loaded(item, None, e)


def claimed(items: Iterable[T], claim_dir: Path, key: Callable[[T], str] = str) -> Iterator[T]:
    """The items this process claims, first come first served among every process sharing ``claim_dir``.
    ``key(item)`` names the claim file (it must be unique per item and a valid file name)."""
    claim_dir.mkdir(parents=True, exist_ok=True)
    for item in items:
        try:
            fd = os.open(claim_dir / f"{key(item)}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield item
