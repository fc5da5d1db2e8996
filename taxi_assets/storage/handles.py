"""Handles: what the platform's own assets hand to the IO managers and receive from them.

A handle names stored data (a published file, a published month of date folders, a month of a
warehouse table) and reads it on demand, batch by batch: a step never holds a month in memory
unless it asks to.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_assets.storage.lake import Lake
from taxi_assets.storage.warehouse.base import TableSource, TableSpec, Warehouse

BATCH_ROWS = 256 * 1024


# -- what assets hand to the lake ------------------------------------------------------------
@dataclass(frozen=True)
class StagedFile:
    """A finished local file to publish as is (a raw download, a month's rejected rows)."""

    path: Path


@dataclass(frozen=True)
class StagedPartitionedMonth:
    """A month's hive folders already written under a local `folder` (`write_hive_folders`, files
    named `{file_prefix}_{month}_{version}-N.parquet`), to publish as they are: `rows` in all."""

    folder: Path
    version: str
    file_prefix: str
    rows: int


# -- what downstream assets receive ----------------------------------------------------------
@dataclass(frozen=True)
class ColumnStats:
    nulls: int
    min: object
    max: object


def column_stats(files: list[pq.ParquetFile], column: str) -> ColumnStats:
    """Nulls, min and max of a column over parquet files, from their footers: no data is read.

    Every file we write carries statistics; a file without them is scanned batch by batch.
    """
    nulls, low, high = 0, None, None
    for pf in files:
        index = pf.schema_arrow.get_field_index(column)
        chunks = [pf.metadata.row_group(i).column(index).statistics for i in range(pf.metadata.num_row_groups)]
        if all(c is not None and c.has_null_count and (c.has_min_max or c.null_count == c.num_values) for c in chunks):
            nulls += sum(c.null_count for c in chunks)
            bounds = [(c.min, c.max) for c in chunks if c.has_min_max]
        else:
            bounds = []
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[column]):
                values = batch.column(0)
                nulls += values.null_count
                found = pc.min_max(values)
                if found["min"].is_valid:
                    bounds.append((found["min"].as_py(), found["max"].as_py()))
        for lo, hi in bounds:
            low = lo if low is None or lo < low else low
            high = hi if high is None or hi > high else high
    return ColumnStats(nulls, low, high)


@dataclass(frozen=True)
class LakeFile:
    """A published object in the lake."""

    lake: Lake
    key: str

    @property
    def uri(self) -> str:
        return self.lake.display(self.key)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def local_copy(self) -> contextlib.AbstractContextManager[Path]:
        return self.lake.local_copy(self.key)

    def parquet(self) -> pq.ParquetFile:
        return self.lake.parquet_file(self.key)

    @property
    def num_rows(self) -> int:
        return self.parquet().metadata.num_rows


@dataclass(frozen=True)
class LakeMonthDataset:
    """A published month of a date-partitioned dataset, read through its manifest."""

    lake: Lake
    dataset: str
    month: str
    partition_column: str

    def files(self) -> list[str]:
        return self.lake.month_files(self.dataset, self.month)

    @property
    def num_rows(self) -> int:
        """The published month's rows, as its manifest counts them."""
        manifest = self.lake.read_manifest(self.dataset, self.month)
        if manifest is None:
            raise FileNotFoundError(f"{self.dataset} {self.month} is not in the lake: materialize it first")
        return manifest.rows

    def column_stats(self, *columns: str) -> dict[str, ColumnStats]:
        """Nulls, min and max of each column over the month's files, from their footers (each file
        opened once, whatever the number of columns)."""
        files = list(self._open_version().values())
        return {column: column_stats(files, column) for column in columns}

    def table_source(self, schema: pa.Schema, order_by: str) -> TableSource:
        """The month's rows in `order_by` order: day folders in date order, each day sorted.

        Memory holds one day (a thirtieth of the month), never the month. A warehouse loaded this
        way keeps the month's rows in time order on disk: a time-range query reads a few adjacent
        pages, and Postgres can index the time with a small BRIN index instead of a btree. An
        engine that reads parquet itself and keeps no order (DuckDB from this disk, BigQuery from
        the bucket) is given the day files instead (`local_parquet`, `uris`), read in parallel.
        """
        version = self._open_version()
        days: dict[str, list[pq.ParquetFile]] = {}
        for key, file in version.items():  # a day's folder may hold several files (write_hive_folders)
            days.setdefault(key.rpartition("/")[0], []).append(file)

        def batches() -> Iterator[pa.RecordBatch]:
            for files in days.values():
                day = pa.concat_tables([file.read(columns=schema.names) for file in files])
                order = pc.sort_indices(day, [(order_by, "ascending")])
                for start in range(0, len(order), BATCH_ROWS):
                    yield from day.take(order[start : start + BATCH_ROWS]).to_batches()
                # Let go of this day before the next is read, not after: one day in memory, not two.
                del day, order

        source = TableSource.from_batches(schema, batches)
        source.expected_rows = sum(file.metadata.num_rows for file in version.values())
        if self.lake.is_local:
            source.local_parquet = [self.lake.local_path(key) for key in version]
        else:
            source.uris = [self.lake.display(key) for key in version]
        return source

    def _open_version(self, attempts: int = 3) -> dict[str, pq.ParquetFile]:
        """Open every file of the published version now, in date order.

        A run publishing the same month meanwhile sweeps the older version's files; on a local
        lake an open file stays readable after that, so a load never depends on files that can
        vanish under it. A version swept between reading its manifest and opening its files is
        left for the newer one.
        """
        for _ in range(attempts):
            keys = sorted(self.files())  # 'pickup_date=YYYY-MM-DD/' sorts by date; the null folder last
            if not keys and self.lake.read_manifest(self.dataset, self.month) is None:
                raise FileNotFoundError(f"{self.dataset} {self.month} is not in the lake: materialize it first")
            try:
                return {key: self.lake.parquet_file(key) for key in keys}
            except FileNotFoundError:
                continue
        raise RuntimeError(f"{self.dataset} {self.month}: re-published {attempts} times while being opened; run again")


@dataclass(frozen=True)
class WarehouseTable:
    """Some months (or every month) of a warehouse table, as SQL the warehouse runs: nothing is read
    until asked, and a query over `sql` runs inside the engine."""

    warehouse: Warehouse
    spec: TableSpec
    months: tuple[dt.date, ...] | None  # None: every month (or an unpartitioned table)

    @property
    def table(self) -> str:
        return self.spec.name

    @property
    def ref(self) -> str:
        """The table's quoted, schema-qualified name."""
        return self.warehouse.table_ref(self.spec.name)

    @property
    def sql(self) -> str:
        """SELECT of exactly these months' rows: wrap it, `SELECT ... FROM ({sql}) AS t`."""
        return self.warehouse.select_months(self.spec, list(self.months) if self.months else None)

    def query(self, select: str) -> pa.Table:
        """Run `select`, where `{rows}` stands for these months' rows, inside the warehouse."""
        return self.warehouse.query(select.format(rows=f"({self.sql}) AS rows"))

    def read(self) -> pa.Table:
        return self.stream().read_all()

    def stream(self) -> pa.RecordBatchReader:
        return self.warehouse.stream(self.sql)

    def count(self) -> int:
        if self.months is not None and len(self.months) == 1:
            return self.warehouse.count(self.spec, self.months[0])  # (a warehouse may count a month faster)
        return int(self.query("SELECT COUNT(*) AS n FROM {rows}").column("n")[0].as_py())
