"""A slow, obviously correct row-by-row binary COPY encoder, for tests to compare the fast one with."""

import datetime as dt
import struct
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from taxi_assets.storage.warehouse.pg_copy.types import _FIXED


def encode_reference(batch: pa.RecordBatch, pg_types: Sequence[str]) -> bytes:
    out = bytearray()
    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
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


