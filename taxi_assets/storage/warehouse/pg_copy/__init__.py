"""Streaming binary COPY into Postgres from Arrow record batches, encoded with numpy (encoder.py says how)."""

from taxi_assets.storage.warehouse.pg_copy.encoder import BinaryCopyEncoder
from taxi_assets.storage.warehouse.pg_copy.types import (
    DEFAULT_CHUNK_ROWS,
    PG_TO_ARROW,
    PGCOPY_HEADER,
    PGCOPY_TRAILER,
    CopyEncodeError,
    pg_type_for,
)
from taxi_assets.storage.warehouse.pg_copy.writer import ThreadedCopyWriter, copy_record_batches

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "PGCOPY_HEADER",
    "PGCOPY_TRAILER",
    "PG_TO_ARROW",
    "BinaryCopyEncoder",
    "CopyEncodeError",
    "ThreadedCopyWriter",
    "copy_record_batches",
    "pg_type_for",
]
