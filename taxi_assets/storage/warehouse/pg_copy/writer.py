"""Sending encoded chunks to the server from a thread while the next chunk is encoded."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Sequence

import pyarrow as pa
from psycopg import sql
from psycopg.copy import LibpqWriter, Writer

from taxi_assets.storage.warehouse.pg_copy.encoder import BinaryCopyEncoder
from taxi_assets.storage.warehouse.pg_copy.types import DEFAULT_CHUNK_ROWS, PGCOPY_HEADER, PGCOPY_TRAILER


class ThreadedCopyWriter(Writer):
    """Sends COPY data from a thread while the caller encodes the next chunk; at most
    `max_chunks` encoded chunks wait in between, so memory stays bounded whatever the source.

    (psycopg's own QueuedLibpqWriter queues up to 1024 pieces of 128 kB, about 128 MB.)
    """

    def __init__(self, cursor, *, max_chunks: int = 2):
        self._libpq = LibpqWriter(cursor)
        self._queue: queue.Queue = queue.Queue(maxsize=max_chunks)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _work(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._libpq.write(data)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._error = exc

    def write(self, data) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="pg-copy-writer", daemon=True)
            self._thread.start()
        self._queue.put(data)

    def finish(self, exc: BaseException | None = None) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None and exc is None:
            with contextlib.suppress(Exception):  # end the COPY with an error, if the connection lives
                self._libpq.finish(self._error)
            raise self._error
        self._libpq.finish(exc)


def copy_record_batches(
    cursor,
    table: sql.Composable,
    columns: Sequence[str],
    pg_types: Sequence[str],
    batches: Iterable[pa.RecordBatch],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    freeze: bool = False,
) -> int:
    """COPY the batches (whose columns are `columns`, in order) into `table`; returns rows sent.

    The batches are consumed one at a time: at most a batch, the chunk being encoded and two
    encoded chunks waiting to be sent are in memory at once. `freeze` (for a table created in the same
    transaction) writes the rows already frozen: no hint-bit rewrite on first read, no later
    freezing vacuum.
    """
    encoder = BinaryCopyEncoder(pg_types, chunk_rows=chunk_rows)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY{})").format(
        table, sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.SQL(", FREEZE" if freeze else "")
    )
    rows = 0
    with cursor.copy(statement, writer=ThreadedCopyWriter(cursor)) as copy:
        copy.write(PGCOPY_HEADER)
        for batch in batches:
            if batch.schema.names != list(columns):
                batch = pa.RecordBatch.from_arrays([batch.column(c) for c in columns], names=list(columns))
            for encoded in encoder.encode(batch):
                copy.write(memoryview(encoded))
            rows += batch.num_rows
        copy.write(PGCOPY_TRAILER)
    return rows
