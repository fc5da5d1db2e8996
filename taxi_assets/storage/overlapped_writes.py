"""Write one batch's parquet while the next batch is read and prepared.

Encoding and compressing parquet is most of the client's work in a month's steps, and pyarrow
does it without the GIL. So the writes of batch N run on worker threads while the caller reads,
cleans or sorts batch N+1: on two cores a step takes about as long as its longer half instead of
the sum. Order is kept: with `depth` batches in flight, every write of batch N has finished
before any write of batch N+depth starts, so a writer that is given a slice at most every
`depth` batches never sees its slices out of order, and memory stays about `depth` + 1 batches.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

#: Worker threads: one per core, at most 4 (beyond that the disk, not the CPU, is the limit).
DEFAULT_THREADS = max(1, min(4, os.cpu_count() or 1))


class OverlappedWrites:
    """A context manager: `submit` a batch's writes, `next_batch` before submitting the next batch's.

    An exception raised by a write is raised again by the `next_batch` that waits for its batch
    (or on leaving the block), so a failed write stops the step instead of going unnoticed.
    """

    def __init__(self, threads: int = DEFAULT_THREADS, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="parquet-write")
        self._depth = depth
        self._current: list[Future] = []
        self._in_flight: deque[list[Future]] = deque()

    def submit(self, write: Callable[..., object], *args: object) -> None:
        self._current.append(self._pool.submit(write, *args))

    def next_batch(self) -> None:
        """Close the batch submitted so far; wait (raising the first error) until fewer than `depth`
        batches are in flight, so the next batch's writes can start."""
        if self._current:
            self._in_flight.append(self._current)
            self._current = []
        while len(self._in_flight) >= self._depth:
            for future in self._in_flight.popleft():
                future.result()

    def _all(self) -> list[Future]:
        return [future for batch in self._in_flight for future in batch] + self._current

    def __enter__(self) -> OverlappedWrites:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                for future in self._all():
                    future.result()
            else:  # already failing: let the writes in flight finish, keep the first error
                for future in self._all():
                    future.exception()
        finally:
            self._pool.shutdown(wait=True)
