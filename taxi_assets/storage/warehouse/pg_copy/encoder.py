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

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taxi_assets.storage.warehouse.pg_copy.types import (
    _FIXED,
    _MAX_GROUPS,
    _MAX_KEY,
    _VARIABLE,
    DEFAULT_CHUNK_ROWS,
    PG_EPOCH_DAYS,
    PG_EPOCH_MICROS,
    PG_TO_ARROW,
    CopyEncodeError,
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
