"""Stream one raw TLC file (parquet or csv.gz) as canonical record batches.

Memory is bounded by one batch whatever the month's size (fhvhv months are 15-20M rows): parquet is read with
`iter_batches`, csv.gz with Arrow's streaming CSV reader. The file's schema is planned before any data is
converted, so a refused file (lat/lon era, rename) fails fast and says why.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import re
import zlib
from collections.abc import Callable, Iterator
from os import PathLike
from typing import TypeVar

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from taxi_assets.tlc.normalize import NormalizationPlan, SchemaError, csv_read_options, plan_normalization
from taxi_assets.tlc.services import Service
from taxi_assets.tlc.months import month_label

__all__ = ["RawFileError", "count_raw_rows", "iter_canonical_batches", "raw_preview"]

_SNIFF_BYTES = 1 << 20
_MIN_BLOCK, _MAX_BLOCK = 16 << 10, 256 << 20
_CSV_COLUMN_RE = re.compile(r"CSV column #(\d+)")
_READ_ERRORS = (pa.ArrowException, OSError, EOFError, zlib.error)
T = TypeVar("T")


class RawFileError(ValueError):
    """A raw file that cannot be read at all (corrupt, truncated, not the format it claims)."""


def iter_canonical_batches(path: str | PathLike, service: Service, month: dt.date, fmt: str, source_name: str,
                           batch_rows: int = 262_144) -> Iterator[pa.RecordBatch]:
    """Yield batches of `service.schema` (about `batch_rows` rows each) from one raw file; text a
    parquet file stores dictionary-encoded comes as Arrow dictionaries of the same values."""
    where = f"{service.name} {month_label(month)} ({source_name})"
    if fmt == "parquet":
        yield from _parquet_batches(str(path), service, month, source_name, batch_rows, where)
    elif fmt == "csv.gz":
        yield from _csv_batches(str(path), service, month, source_name, batch_rows, where)
    else:
        raise ValueError(f"{where}: unknown raw format {fmt!r}; expected 'parquet' or 'csv.gz'")


def count_raw_rows(path: str | PathLike, fmt: str) -> int:
    """Data rows in a raw file, counted the way the reader sees them (parquet: footer only)."""
    try:
        if fmt == "parquet":
            with pq.ParquetFile(str(path)) as pf:
                return pf.metadata.num_rows
        if fmt == "csv.gz":
            read = pacsv.ReadOptions(autogenerate_column_names=True, skip_rows=1, block_size=16 << 20)
            convert = pacsv.ConvertOptions(include_columns=["f0"], column_types={"f0": pa.string()})
            with pa.input_stream(str(path), compression="gzip") as stream:
                return sum(b.num_rows for b in pacsv.open_csv(stream, read_options=read, convert_options=convert))
    except _READ_ERRORS as exc:
        raise RawFileError(f"{path}: cannot count rows of this {fmt} file: {exc}") from None
    raise ValueError(f"unknown raw format {fmt!r}; expected 'parquet' or 'csv.gz'")


def raw_preview(path: str | PathLike, fmt: str, rows: int = 10) -> pa.Table:
    """The file's first rows in its own columns, as published (CSV values left as text)."""
    if fmt == "parquet":
        with pq.ParquetFile(str(path)) as pf:
            first = next(pf.iter_batches(batch_size=rows), None)
            return pa.Table.from_batches([first] if first is not None else [], schema=pf.schema_arrow)
    header, _ = _sniff_csv(str(path), str(path))
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header})
    with pa.input_stream(str(path), compression="gzip") as stream:
        reader = pacsv.open_csv(stream, convert_options=convert)
        batch = next(iter(reader), None)  # a header-only file has no batch
    if batch is None:
        return reader.schema.empty_table()
    return pa.Table.from_batches([batch.slice(0, rows)])


def _parquet_batches(path: str, service: Service, month: dt.date, source_name: str, batch_rows: int,
                     where: str) -> Iterator[pa.RecordBatch]:
    with _open_parquet(path, where) as first:
        plan = plan_normalization(first.schema_arrow, service, month, source_name)
        encoded = _dictionary_text(first, plan)
    # Opened again: which columns come as dictionaries is an option of the file, not of the read.
    with _open_parquet(path, where, read_dictionary=encoded) as pf:
        if encoded:
            plan = plan_normalization(pf.schema_arrow, service, month, source_name)
        batches = pf.iter_batches(batch_size=batch_rows, columns=plan.source_columns, use_threads=True)
        for batch in _guarded(batches, where, []):
            yield plan.apply(batch)


def _open_parquet(path: str, where: str, **options) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, pre_buffer=False, **options)  # pre-buffering would keep the whole month in memory
    except _READ_ERRORS as exc:
        raise RawFileError(f"{where}: not a readable parquet file: {exc}") from None


def _dictionary_text(pf: pq.ParquetFile, plan: NormalizationPlan) -> list[str]:
    """The source columns of canonical text that the file stores dictionary-encoded (judged by its
    first row group): read as Arrow dictionaries, their codes go to the lake as they are."""
    if pf.metadata.num_row_groups == 0:
        return []
    first = pf.metadata.row_group(0)
    with_dictionary = {first.column(i).path_in_schema for i in range(first.num_columns) if first.column(i).has_dictionary_page}
    return [
        source
        for target, source in plan.sources.items()
        if target not in plan.fallbacks and source in with_dictionary
        and pf.schema_arrow.field(source).type == plan.service.schema.field(target).type == pa.string()
    ]


def _csv_batches(path: str, service: Service, month: dt.date, source_name: str, batch_rows: int,
                 where: str) -> Iterator[pa.RecordBatch]:
    header, bytes_per_row = _sniff_csv(path, where)
    block_size = min(max(int(bytes_per_row * batch_rows), _MIN_BLOCK), _MAX_BLOCK)
    read, convert = csv_read_options(header, service, month, source_name, block_size=block_size)
    names = read.column_names
    schema = pa.schema([(name, convert.column_types[name]) for name in names])
    plan = plan_normalization(schema, service, month, source_name)  # refuse before converting any data
    with pa.input_stream(path, compression="gzip") as stream:
        reader = _guarded_call(lambda: pacsv.open_csv(stream, read_options=read, convert_options=convert),
                               where, names)
        for batch in _guarded(iter(reader), where, names):
            yield plan.apply(batch)


def _sniff_csv(path: str, where: str) -> tuple[list[str], float]:
    """The header row, and bytes per data row measured on the first MiB (to size blocks to ~batch_rows)."""
    try:
        with gzip.open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except _READ_ERRORS as exc:
        raise RawFileError(f"{where}: not a readable gzip file: {exc}") from None
    first, _, rest = head.partition(b"\n")
    if not first.strip():
        raise RawFileError(f"{where}: empty file or no CSV header")
    try:
        header = next(csv.reader([first.decode("utf-8-sig").rstrip("\r")]))
    except UnicodeDecodeError as exc:
        raise RawFileError(f"{where}: CSV header is not UTF-8 text: {exc}") from None
    lines = rest.count(b"\n")
    return header, (len(rest) / lines if lines else 128.0)


def _guarded(batches: Iterator[pa.RecordBatch], where: str, names: list[str]) -> Iterator[pa.RecordBatch]:
    """Re-raise read errors as RawFileError/SchemaError naming file and month."""
    while True:
        batch = _guarded_call(lambda: next(batches, None), where, names)
        if batch is None:
            return
        yield batch


def _guarded_call(fn: Callable[[], T], where: str, names: list[str]) -> T:
    try:
        return fn()
    except _READ_ERRORS as exc:
        match = _CSV_COLUMN_RE.search(str(exc))
        if isinstance(exc, pa.ArrowInvalid) and match and "conversion error" in str(exc):
            index = int(match.group(1))
            column = names[index] if index < len(names) else f"#{index}"
            raise SchemaError(f"{where}: column {column!r} has a value of the wrong type: {exc}") from None
        raise RawFileError(f"{where}: cannot read: {exc}") from None
