"""Running work in threads, one per usable core: what the folder pipeline and volume fusion share."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_workers(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None
               ) -> Iterator[R]:
    """``fn(item)`` for every item in ``workers`` threads (default: one per usable core),
    yielded in the items' order. The first exception is raised where it is reached; items not
    started by then are cancelled (those running finish)."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers or usable_cores(), len(items))))
    try:
        futures = [pool.submit(fn, item) for item in items]
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
