"""The binary COPY format's constants and the Arrow -> Postgres type map (the one the warehouse uses)."""

from __future__ import annotations

import struct

import pyarrow as pa

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
