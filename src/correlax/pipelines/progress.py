"""Progress of one long image: a live bar on a terminal, a line now and then in a log file."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


class ImageProgress:
    """``update(done, total)`` with forward passes done of the (upper-bound) total for one image."""

    def __init__(self, name: str, log_every: float = 30.0, stream=None) -> None:
        self.name = name
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.log_every = log_every
        self.started = time.perf_counter()
        self.last = self.started

    def update(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.tty and now - self.last < self.log_every:
            return
        self.last = now
        elapsed = now - self.started
        left = elapsed * (total - done) / done if done else float("nan")
        text = f"{self.name}: {done}/{total} forward passes ({100 * done / max(total, 1):.0f} %), " \
               f"{elapsed:.0f} s elapsed, about {left:.0f} s left"  # fmt: skip
        if self.tty:
            self.stream.write("\r" + text + " " * 4)
            self.stream.flush()
        else:
            log.info("%s", text)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()
