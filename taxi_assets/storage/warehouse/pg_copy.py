"""Streaming binary COPY into Postgres from Arrow record batches, encoded with numpy.

PostgreSQL's binary COPY format is a header, then one tuple per row (an int16 field count, then
per field an int32 byte length, -1 for NULL, and the value in network byte order), then an int16
-1 trailer. The server parses it without any text conversion, which makes it the fastest way in.

Encoding is vectorised per batch, never a Python loop over rows:

* the usual path lays every row out with the same width as one numpy structured array (count,
  then length + value per column, big-endian dtypes: numpy byte-swaps while it assigns a column),
  with each string column given a slot as wide as its longest value in the batch. NULL values
  and the unused tail of string slots are then cut out with one boolean mask over the bytes.
  A column that is NULL in every row of the batch takes only its 4-byte -1.
* when strings vary too much in length for padding to pay (a few long values among short ones),
  the exact byte offset of every field is computed with cumulative sums and each column is
  scattered into place.

Each batch is cut into chunks of at most `chunk_rows` rows, so memory stays bounded by a chunk
however large the month is, and the encoded bytes go to the server from a thread while the
next chunk is encoded, with at most two encoded chunks waiting in between.
"""

from __future__ import annotations

import contextlib
import queue
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from psycopg.copy import LibpqWriter, Writer

PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
PGCOPY_TRAILER = struct.pack(">h", -1)

#: Days and microseconds between the Unix epoch and Postgres's epoch (2000-01-01).
PG_EPOCH_DAYS = 10_957
PG_EPOCH_MICROS = PG_EPOCH_DAYS * 86_400 * 1_000_000

DEFAULT_CHUNK_ROWS = 64 * 1024
#: Beyond this many row shapes in a chunk, the grouped layout gives way to the masked one.
_MAX_GROUPS = 256
_MAX_KEY = 1 << 32

#: Postgres type (as `format_type` spells it) -> the Arrow type its values are encoded from.
PG_TO_ARROW: dict[str, pa.DataType] = {
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp without time zone": pa.timestamp("us"),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "text": pa.string(),
    "bytea": pa.binary(),
}

#: Fixed-width Postgres types: numpy dtype of the value on the wire, and its byte width.
_FIXED: dict[str, str] = {
    "smallint": ">i2",
    "integer": ">i4",
    "bigint": ">i8",
    "real": ">f4",
    "double precision": ">f8",
    "boolean": "u1",
    "date": ">i4",
    "timestamp without time zone": ">i8",
    "timestamp with time zone": ">i8",
}
_VARIABLE = {"text", "bytea"}


class CopyEncodeError(ValueError):
    """A batch that cannot be encoded for its target column (unsupported type, overflow...)."""


def pg_type_for(arrow_type: pa.DataType) -> str:
    """The Postgres column type that holds an Arrow type without loss."""
    if pa.types.is_int8(arrow_type) or pa.types.is_int16(arrow_type) or pa.types.is_uint8(arrow_type):
        return "smallint"
    if pa.types.is_int32(arrow_type) or pa.types.is_uint16(arrow_type):
        return "integer"
    if pa.types.is_int64(arrow_type) or pa.types.is_uint32(arrow_type):
        return "bigint"
    if pa.types.is_float16(arrow_type) or pa.types.is_float32(arrow_type):
        return "real"
    if pa.types.is_float64(arrow_type):
        return "double precision"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp with time zone" if arrow_type.tz else "timestamp without time zone"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "bytea"
    raise CopyEncodeError(
        f"Arrow type {arrow_type} has no Postgres column type here; supported: integers, floats, "
        "booleans, dates, timestamps, strings and binary"
    )


@dataclass(frozen=True)
class _Prepared:
    """One column of one chunk, ready to be laid out."""

    pg_type: str
    nulls: np.ndarray | None  # bool per row, None when no value is null
    all_null: bool
    values: np.ndarray | None = None  # fixed width: native-endian values, PG epoch applied
    offsets: np.ndarray | None = None  # variable width: int64 start of each value in `data`
    lengths: np.ndarray | None = None  # variable width: int64 byte length (0 where null)
    data: np.ndarray | None = None  # variable width: uint8 bytes


class BinaryCopyEncoder:
    """Encodes record batches as binary COPY tuples for a fixed list of target column types."""

    def __init__(self, pg_types: Sequence[str], *, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        for t in pg_types:
            if t not in PG_TO_ARROW:
                raise CopyEncodeError(f"Postgres type {t!r} is not supported by the binary COPY encoder")
        self.pg_types = list(pg_types)
        self.chunk_rows = chunk_rows
        self._count = struct.pack(">h", len(self.pg_types))

    # -- public ------------------------------------------------------------------------------
    def encode(self, batch: pa.RecordBatch) -> Iterable[np.ndarray]:
        """Yield uint8 arrays of encoded tuples, one per chunk of at most `chunk_rows` rows."""
        if batch.num_columns != len(self.pg_types):
            raise CopyEncodeError(f"batch has {batch.num_columns} columns, the COPY expects {len(self.pg_types)}")
        for start in range(0, batch.num_rows, self.chunk_rows):
            chunk = batch.slice(start, self.chunk_rows)
            if chunk.num_rows:
                yield self.encode_chunk(chunk)

    def encode_chunk(self, chunk: pa.RecordBatch) -> np.ndarray:
        n = chunk.num_rows
        cols = [self._prepare(chunk.column(i), t, chunk.schema.field(i).name) for i, t in enumerate(self.pg_types)]
        grouped = self._encode_grouped(n, cols)
        if grouped is not None:
            return grouped
        padded = exact = 2 * n
        for c in cols:
            padded += 4 * n
            exact += 4 * n
            if c.all_null:
                continue
            if c.values is not None:
                padded += c.values.itemsize * n
                exact += c.values.itemsize * (n - (0 if c.nulls is None else int(c.nulls.sum())))
            else:
                padded += int(c.lengths.max(initial=0)) * n
                exact += int(c.lengths.sum())
        if padded <= 2 * exact + 64 * 1024:
            return self._encode_padded(n, cols)
        return self._encode_scattered(n, cols)

    # -- the grouped layout: rows of one shape are one structured array ------------------------
    def _encode_grouped(self, n: int, cols: list[_Prepared]) -> np.ndarray | None:
        """Encode rows grouped by shape (which values are NULL, how long each string is).

        Rows of a table have no order, so the rows of each shape are written together, each
        group as one fixed-width structured array: no mask and no scatter. Returns None when
        the chunk has too many shapes for this to pay (strings of many different lengths).
        """
        key = None
        radix = 1
        for c in cols:
            if c.all_null:
                continue
            if c.values is not None:
                if c.nulls is None:
                    continue
                code, card = c.nulls.astype(np.int64), 2
            else:
                width = int(c.lengths.max(initial=0))
                if c.nulls is None and int(c.lengths.min(initial=0)) == width:
                    continue
                code, card = c.lengths + 1, width + 2
                if c.nulls is not None:
                    code[c.nulls] = 0
            radix *= card
            if radix > _MAX_KEY:
                return None
            key = code if key is None else key * card + code
        if key is None:
            groups = [(None, 0)]
        else:
            counts = np.bincount(key)
            present = np.flatnonzero(counts)
            if len(present) > _MAX_GROUPS:
                return None
            if len(present) == 1:
                groups = [(None, 0)]
            else:
                order = np.argsort(key.astype(np.uint16 if radix <= 1 << 16 else np.uint32), kind="stable")
                bounds = np.concatenate([[0], np.cumsum(counts[present])])
                groups = [(order[bounds[g] : bounds[g + 1]], int(order[bounds[g]])) for g in range(len(present))]
        layouts = []
        total = 0
        for idx, sample in groups:
            k = n if idx is None else len(idx)
            dtype = self._group_dtype(cols, sample)
            layouts.append((idx, sample, k, dtype))
            total += k * dtype.itemsize
        out = np.empty(total, dtype=np.uint8)
        offset = 0
        for idx, sample, k, dtype in layouts:
            view = np.ndarray(k, dtype=dtype, buffer=out, offset=offset)
            self._fill_group(view, cols, idx, sample)
            offset += k * dtype.itemsize
        return out

    @staticmethod
    def _group_dtype(cols: list[_Prepared], sample: int) -> np.dtype:
        fields: list[tuple[str, object]] = [("count", ">i2")]
        for i, c in enumerate(cols):
            fields.append((f"l{i}", ">i4"))
            if c.all_null or (c.nulls is not None and c.nulls[sample]):
                continue
            if c.values is not None:
                fields.append((f"v{i}", _FIXED[c.pg_type]))
            elif int(c.lengths[sample]):
                fields.append((f"v{i}", ("u1", (int(c.lengths[sample]),))))
        return np.dtype(fields)

    @staticmethod
    def _fill_group(view: np.ndarray, cols: list[_Prepared], idx: np.ndarray | None, sample: int) -> None:
        view["count"] = len(cols)
        names = view.dtype.names
        for i, c in enumerate(cols):
            lname, vname = f"l{i}", f"v{i}"
            if c.all_null or (c.nulls is not None and c.nulls[sample]):
                view[lname] = -1
            elif c.values is not None:
                view[lname] = c.values.itemsize
                view[vname] = c.values if idx is None else c.values[idx]
            else:
                width = int(c.lengths[sample])
                view[lname] = width
                if vname in names:
                    starts = c.offsets if idx is None else c.offsets[idx]
                    view[vname] = c.data[starts[:, None] + np.arange(width, dtype=np.int64)[None, :]]

    # -- column preparation --------------------------------------------------------------------
    def _prepare(self, arr: pa.Array | pa.ChunkedArray, pg_type: str, name: str) -> _Prepared:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        target = PG_TO_ARROW[pg_type]
        if pa.types.is_large_string(arr.type) and pg_type == "text":
            target = arr.type  # int64 offsets are read as they are
        elif pa.types.is_large_binary(arr.type) and pg_type == "bytea":
            target = arr.type
        if not arr.type.equals(target):
            try:
                arr = pc.cast(arr, target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise CopyEncodeError(f"column {name!r}: cannot store {arr.type} as Postgres {pg_type}: {exc}") from exc
        n = len(arr)
        null_count = arr.null_count
        if null_count == n and n:
            return _Prepared(pg_type, np.ones(n, dtype=bool), True)
        nulls = arr.is_null().to_numpy(zero_copy_only=False) if null_count else None
        if pg_type in _VARIABLE:
            off_type = np.int64 if (pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)) else np.int32
            bufs = arr.buffers()
            offsets = np.frombuffer(bufs[1], dtype=off_type, count=arr.offset + n + 1)[arr.offset :].astype(np.int64)
            data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
            lengths = np.diff(offsets)
            if nulls is not None:
                lengths[nulls] = 0
            return _Prepared(pg_type, nulls, False, offsets=offsets[:-1], lengths=lengths, data=data)
        if pg_type == "boolean":
            values = arr.fill_null(False).to_numpy(zero_copy_only=False).view(np.uint8)
        else:
            width = np.dtype(_FIXED[pg_type]).itemsize
            native = np.dtype(_FIXED[pg_type]).newbyteorder("=")
            values = np.frombuffer(arr.buffers()[1], dtype=native, count=arr.offset + n)[arr.offset :]
            assert values.itemsize == width
            if pg_type == "date":
                values = values - np.int32(PG_EPOCH_DAYS)
            elif pg_type.startswith("timestamp"):
                values = values - np.int64(PG_EPOCH_MICROS)
        return _Prepared(pg_type, nulls, False, values=values)

    # -- the padded layout: one structured array, then a mask ---------------------------------
    def _encode_padded(self, n: int, cols: list[_Prepared]) -> np.ndarray:
        fields: list[tuple[str, object]] = [("count", ">i2")]
        for i, c in enumerate(cols):
            fields.append((f"l{i}", ">i4"))
            if c.all_null:
                continue
            if c.values is not None:
                fields.append((f"v{i}", _FIXED[c.pg_type]))
            else:
                width = int(c.lengths.max(initial=0))
                if width:
                    fields.append((f"v{i}", ("u1", (width,))))
        rows = np.empty(n, dtype=np.dtype(fields))
        rows["count"] = len(cols)
        itemsize = rows.dtype.itemsize
        mask: np.ndarray | None = None

        def row_mask() -> np.ndarray:
            nonlocal mask
            if mask is None:
                mask = np.ones((n, itemsize), dtype=bool)
            return mask

        for i, c in enumerate(cols):
            lname, vname = f"l{i}", f"v{i}"
            if c.all_null:
                rows[lname] = -1
                continue
            if c.values is not None:
                rows[vname] = c.values
                if c.nulls is None:
                    rows[lname] = c.values.itemsize
                else:
                    rows[lname] = np.where(c.nulls, np.int32(-1), np.int32(c.values.itemsize))
                    start = rows.dtype.fields[vname][1]
                    row_mask()[c.nulls, start : start + c.values.itemsize] = False
                continue
            lengths = c.lengths
            lens32 = lengths.astype(np.int32)
            if c.nulls is not None:
                lens32[c.nulls] = -1
            rows[lname] = lens32
            width = int(lengths.max(initial=0))
            if not width:
                continue
            idx = c.offsets[:, None] + np.arange(width, dtype=np.int64)[None, :]
            if len(c.data):
                np.minimum(idx, len(c.data) - 1, out=idx)
                rows[vname] = c.data[idx]
            if int(lengths.min(initial=0)) < width:
                start = rows.dtype.fields[vname][1]
                row_mask()[:, start : start + width] = np.arange(width)[None, :] < lengths[:, None]
        flat = rows.view(np.uint8).reshape(-1)
        if mask is None:
            return flat
        return flat[mask.reshape(-1)]

    # -- the exact layout: offsets by cumulative sums, then one scatter per column -------------
    def _encode_scattered(self, n: int, cols: list[_Prepared]) -> np.ndarray:
        sizes = []
        for c in cols:
            if c.all_null:
                size = np.full(n, 4, dtype=np.int64)
            elif c.values is not None:
                size = np.full(n, 4 + c.values.itemsize, dtype=np.int64)
                if c.nulls is not None:
                    size[c.nulls] = 4
            else:
                size = 4 + c.lengths
            sizes.append(size)
        row_size = 2 + np.sum(sizes, axis=0)
        row_start = np.zeros(n, dtype=np.int64)
        np.cumsum(row_size[:-1], out=row_start[1:])
        out = np.empty(int(row_start[-1] + row_size[-1]), dtype=np.uint8)

        def put(at: np.ndarray, data: np.ndarray) -> None:
            """Write data[k] (a row of bytes) at byte offset at[k]."""
            width = data.shape[1]
            out[at[:, None] + np.arange(width, dtype=np.int64)[None, :]] = data

        put(row_start, np.tile(np.frombuffer(self._count, np.uint8), (n, 1)))
        pos = row_start + 2
        for c, size in zip(cols, sizes, strict=True):
            if c.all_null:
                put(pos, np.full(n, -1, dtype=">i4").view(np.uint8).reshape(n, 4))
            elif c.values is not None:
                width = c.values.itemsize
                lens = np.full(n, width, dtype=">i4")
                keep = slice(None) if c.nulls is None else ~c.nulls
                if c.nulls is not None:
                    lens[c.nulls] = -1
                put(pos, lens.view(np.uint8).reshape(n, 4))
                values = c.values[keep].astype(_FIXED[c.pg_type])
                put(pos[keep] + 4, values.view(np.uint8).reshape(-1, width))
            else:
                lens = c.lengths.astype(">i4")
                if c.nulls is not None:
                    lens[c.nulls] = -1
                put(pos, lens.view(np.uint8).reshape(n, 4))
                total = int(c.lengths.sum())
                if total:
                    # every byte of value k moves from offsets[k] + j to pos[k] + 4 + j
                    shift = np.repeat(pos + 4 - c.offsets, c.lengths)
                    src = np.repeat(c.offsets, c.lengths) + _ranges(c.lengths, total)
                    out[src + shift] = c.data[src]
            pos = pos + size
        return out


def _ranges(lengths: np.ndarray, total: int) -> np.ndarray:
    """concat(arange(l) for l in lengths), vectorised."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


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


def encode_reference(batch: pa.RecordBatch, pg_types: Sequence[str]) -> bytes:
    """A slow, obviously correct row-by-row encoder, for tests to compare the fast one with."""
    out = bytearray()
    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    import datetime as dt

    epoch_date = dt.date(2000, 1, 1)
    epoch_ts = dt.datetime(2000, 1, 1)
    for r in range(batch.num_rows):
        out += struct.pack(">h", len(pg_types))
        for col, t in zip(columns, pg_types, strict=True):
            v = col[r]
            if v is None:
                out += struct.pack(">i", -1)
                continue
            if t == "text":
                payload = v.encode("utf-8")
            elif t == "bytea":
                payload = bytes(v)
            elif t == "date":
                payload = struct.pack(">i", (v - epoch_date).days)
            elif t.startswith("timestamp"):
                if v.tzinfo is not None:
                    v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
                delta = v - epoch_ts
                payload = struct.pack(">q", (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
            elif t == "boolean":
                payload = b"\x01" if v else b"\x00"
            else:
                payload = np.array([v], dtype=_FIXED[t]).tobytes()
            out += struct.pack(">i", len(payload)) + payload
    return bytes(out)


# -- reading: COPY ... TO STDOUT in large blocks -------------------------------------------------
def _copy_out_chunk(pgconn, block_bytes: int):
    """A psycopg wait-generator: the rows libpq holds (waiting only if it holds none), up to a block.

    Returns (rows, final_results): final_results is None until the server has ended the COPY.
    psycopg's own Copy.read() returns one row per call through its generator machinery, a few
    microseconds a row; draining libpq's buffer here costs a fraction of that.
    """
    from psycopg.generators import WAIT_R, fetch_many

    rows: list = []
    size = 0
    while True:
        nbytes, data = pgconn.get_copy_data(1)
        if nbytes > 0:
            rows.append(data)
            size += nbytes
            if size >= block_bytes:
                return rows, None
            continue
        if nbytes == 0:  # nothing complete buffered: hand back what we have, else wait for the socket
            if rows:
                return rows, None
            while not (yield WAIT_R):
                continue
            pgconn.consume_input()
            continue
        results = yield from fetch_many(pgconn)
        return rows, results


def copy_out_blocks(cursor, statement: sql.Composable | str, *, block_bytes: int = 16 * 1024 * 1024) -> Iterable[bytes]:
    """Run a COPY ... TO STDOUT and yield its output in blocks of whole rows (about block_bytes each)."""
    import psycopg
    from psycopg import pq

    conn = cursor.connection
    with cursor.copy(statement) as copy:
        pgconn = conn.pgconn
        pending: list = []
        size = 0
        while True:
            rows, results = conn.wait(_copy_out_chunk(pgconn, block_bytes - size))
            if rows:
                # copy the rows out of libpq's per-row buffers at once: holding many of those
                # alive costs far more than this copy
                pending.append(b"".join(rows))
                size += len(pending[-1])
                del rows
            if pending and (size >= block_bytes or results is not None):
                yield b"".join(pending)
                pending, size = [], 0
            if results is not None:
                copy._finished = True  # the end of the COPY was consumed here, not by copy.read()
                if len(results) != 1 or results[0].status != pq.ExecStatus.COMMAND_OK:
                    raise psycopg.errors.error_from_result(results[-1], encoding=conn.info.encoding)
                return
