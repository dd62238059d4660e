"""Bounds on the fusion page's anonymous work: a fixed number of fusions at once, a bounded queue
behind them and a time limit per request, so that a few large or many small requests cannot
take the server's CPU and memory from the raters of a study (docs/web.md, "Threat model")."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class ServerBusy(Exception):
    """The fusion queue is full, a request waited too long or ran past the time limit, or every
    volume job slot is taken (answered 503 with ``Retry-After: retry_after`` seconds)."""

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Deadline:
    """The end of one request's time; :meth:`check` between steps stops a request past it."""

    end: float
    limit: float

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise ServerBusy(f"stopped: this fusion went past the server's time limit of "
                             f"{self.limit:g} s (try fewer methods or smaller images)",
                             retry_after=int(self.limit))


class FusionGate:
    """At most ``workers`` fusions run at once and at most ``queue`` more wait for a turn; a
    request beyond those is refused at once, and one that has not started within ``timeout``
    seconds is refused then (both :class:`ServerBusy`). The same ``timeout`` bounds the whole
    request (waiting included) through the :class:`Deadline` it gets."""

    def __init__(self, workers: int = 1, queue: int = 4, timeout: float = 60.0) -> None:
        if workers < 1 or queue < 0 or timeout <= 0:
            raise ValueError("a fusion gate needs workers >= 1, queue >= 0 and timeout > 0")
        self.workers, self.queue, self.timeout = workers, queue, timeout
        self._slots = threading.Semaphore(workers)
        self._lock = threading.Lock()
        self._admitted = 0  # running and waiting

    @contextmanager
    def slot(self) -> Iterator[Deadline]:
        retry = max(1, int(self.timeout))
        with self._lock:
            if self._admitted >= self.workers + self.queue:
                raise ServerBusy(f"the server is busy ({self._admitted} fusion requests running "
                                 "or waiting); please try again in a minute", retry)
            self._admitted += 1
        try:
            deadline = Deadline(time.monotonic() + self.timeout, self.timeout)
            if not self._slots.acquire(timeout=self.timeout):
                raise ServerBusy(f"the server is busy: this request waited {self.timeout:g} s "
                                 "for its turn; please try again in a minute", retry)
            try:
                yield deadline
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._admitted -= 1
