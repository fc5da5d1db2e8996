"""Write one batch's parquet while the next batch is read and prepared.

Encoding and compressing parquet is most of the client's work in a month's steps, and pyarrow
does it without the GIL. So the writes of batch N run on worker threads while the caller reads,
cleans or sorts batch N+1: on two cores a step takes about as long as its longer half instead of
the sum. Order is kept: every write of batch N has finished before any write of batch N+1
starts, so a writer never sees its slices out of order and memory stays about two batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

#: Worker threads: one per core, at most 4 (beyond that the disk, not the CPU, is the limit).
DEFAULT_THREADS = max(1, min(4, os.cpu_count() or 1))


class OverlappedWrites:
    """A context manager: `submit` a batch's writes, `next_batch` before submitting the next batch's.

    An exception raised by a write is raised again by the next `next_batch` (or on leaving the
    block), so a failed write stops the step instead of going unnoticed.
    """

    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="parquet-write")
        self._pending: list[Future] = []

    def submit(self, write: Callable[..., object], *args: object) -> None:
        self._pending.append(self._pool.submit(write, *args))

    def next_batch(self) -> None:
        """Wait for the writes submitted so far (raising the first error among them)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def __enter__(self) -> OverlappedWrites:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.next_batch()
            else:  # already failing: let the writes in flight finish, keep the first error
                for future in self._pending:
                    future.exception()
        finally:
            self._pool.shutdown(wait=True)
