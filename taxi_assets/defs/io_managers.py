"""IO managers: the lake one and the warehouse one, chosen by configuration.

Assets hand over *handles* (a finished local file, a streamed table source), never a month of rows
in memory; the IO managers publish them atomically wherever the configuration says (a local folder
or GCS; DuckDB, Postgres or BigQuery). Where an asset's data goes is declared in its definition
metadata (`lake_key`, `lake_folder`, `lake_dataset`, `table`), so the assets never build paths.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_assets.storage.lake import Lake
from taxi_assets.defs.metadata import parquet_metadata
from taxi_assets.defs.resources import LakeResource
from taxi_assets.tlc.services import month_label, parse_month
from taxi_assets.storage.warehouse.base import TableSource, WarehouseResource

BATCH_ROWS = 256 * 1024


# -- what assets hand to the lake ------------------------------------------------------------
@dataclass(frozen=True)
class StagedFile:
    """A finished local file to publish as is (a raw download, a month's cleaned parquet)."""

    path: Path


@dataclass(frozen=True)
class DatePartitionedMonth:
    """A month of rows to publish as hive folders `{partition_column}=YYYY-MM-DD/`."""

    source: TableSource
    partition_column: str  # e.g. "pickup_date"
    derived_from: str  # the timestamp column the date is cut from, e.g. "pickup_datetime"
    file_prefix: str  # e.g. "yellow": files are named {prefix}_{YYYY-MM}_{version}-N.parquet


# -- what downstream assets receive ----------------------------------------------------------
@dataclass(frozen=True)
class ColumnStats:
    nulls: int
    min: object
    max: object


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

    def column_stats(self, column: str) -> ColumnStats:
        """Nulls, min and max of a column from the parquet footer: no data is read.

        Every file we write carries statistics; a file without them is scanned batch by batch.
        """
        pf = self.parquet()
        index = pf.schema_arrow.get_field_index(column)
        chunks = [pf.metadata.row_group(i).column(index).statistics for i in range(pf.metadata.num_row_groups)]
        if all(c is not None and c.has_null_count and (c.has_min_max or c.null_count == c.num_values) for c in chunks):
            bounded = [c for c in chunks if c.has_min_max]
            return ColumnStats(
                nulls=sum(c.null_count for c in chunks),
                min=min((c.min for c in bounded), default=None),
                max=max((c.max for c in bounded), default=None),
            )
        nulls, low, high = 0, None, None
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[column]):
            values = batch.column(0)
            nulls += values.null_count
            bounds = pc.min_max(values)
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
            low = lo if low is None or (lo is not None and lo < low) else low
            high = hi if high is None or (hi is not None and hi > high) else high
        return ColumnStats(nulls, low, high)

    def table_source(self, columns: list[str] | None = None) -> TableSource:
        """The file's rows, streamed batch by batch; a load must take exactly the footer's count."""
        footer = self.parquet()
        schema = footer.schema_arrow
        if columns:
            schema = pa.schema([schema.field(c) for c in columns])

        def batches() -> Iterator[pa.RecordBatch]:
            yield from self.parquet().iter_batches(batch_size=BATCH_ROWS, columns=columns)

        source = TableSource.from_batches(schema, batches)
        source.expected_rows = footer.metadata.num_rows
        source.local_parquet = None if columns else self.lake.local_path(self.key)
        if not self.lake.is_local:
            source.uris = [self.uri]
        return source


@dataclass(frozen=True)
class LakeMonthDataset:
    """A published month of a date-partitioned dataset, read through its manifest."""

    lake: Lake
    dataset: str
    month: str
    partition_column: str

    def files(self) -> list[str]:
        return self.lake.month_files(self.dataset, self.month)

    def to_dataset(self):
        return self.lake.read_partitioned_month(self.dataset, self.month, self.partition_column)

    def table_source(self, schema: pa.Schema, order_by: str) -> TableSource:
        """The month's rows in `order_by` order: day folders in date order, each day sorted.

        Memory holds one day (a thirtieth of the month), never the month. A warehouse loaded this
        way keeps the month's rows in time order on disk: a time-range query reads a few adjacent
        pages, and Postgres can index the time with a small BRIN index instead of a btree.
        """
        days = self._open_version()

        def batches() -> Iterator[pa.RecordBatch]:
            for file in days:
                day = file.read(columns=schema.names)
                order = pc.sort_indices(day, [(order_by, "ascending")])
                for start in range(0, len(order), BATCH_ROWS):
                    yield from day.take(order[start : start + BATCH_ROWS]).to_batches()

        return TableSource.from_batches(schema, batches)

    def _open_version(self, attempts: int = 3) -> list[pq.ParquetFile]:
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
                return [self.lake.parquet_file(key) for key in keys]
            except FileNotFoundError:
                continue
        raise RuntimeError(f"{self.dataset} {self.month}: re-published {attempts} times while being opened; run again")


# -- the lake IO manager ---------------------------------------------------------------------
def _partition_key(context: dg.OutputContext | dg.InputContext) -> str | None:
    """The month of a partitioned asset's step, None for an unpartitioned asset.

    Read from the asset's own partitions, not the run's `dagster/partition` tag: runs launched by an
    asset backfill with a backfill policy carry a partition *range* (of one month here), and then
    `has_partition_key` is False; falling back to "unpartitioned" would replace a whole table with
    one month. A range of several months is refused: these IO managers store one month per step.
    """
    if not context.has_asset_partitions:
        return None
    if context.has_partition_key:
        return context.partition_key
    keys = context.asset_partition_keys
    if len(keys) == 1:
        return keys[0]
    # An asset check's input in a range run is given the whole partitions definition: use the run's range.
    try:
        step = context.step_context
    except dg.DagsterInvariantViolationError:
        step = None
    if step is not None and step.has_partition_key_range:
        key_range = step.partition_key_range
        if key_range.start == key_range.end:
            return key_range.start
        keys = [key_range.start, key_range.end]
    raise ValueError(
        f"{context.asset_key.to_user_string()}: one month per step, got {keys[0]}..{keys[-1]}; "
        "keep its backfill policy at multi_run(max_partitions_per_run=1)"
    )


def _month(context: dg.OutputContext | dg.InputContext) -> str | None:
    key = _partition_key(context)
    return month_label(parse_month(key)) if key is not None else None


def _format(template: str, context: dg.OutputContext | dg.InputContext) -> str:
    month = _month(context)
    if "{month}" in template and month is None:
        raise ValueError(f"lake path {template!r} needs a monthly partition")
    return template.format(month=month)


class LakeIOManager(dg.ConfigurableIOManager):
    """Publishes lake assets atomically in the lake (local folder or gs://) and hands back handles."""

    lake: LakeResource

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        meta = context.definition_metadata or {}
        lake = self.lake.lake
        if isinstance(obj, StagedFile) and "lake_folder" in meta:
            folder = _format(meta["lake_folder"], context)
            key = f"{folder}/{obj.path.name}"
            lake.put_file(obj.path, key)
            # A month's raw file is one object; a format switch must not leave the other behind.
            for other in self._folder_files(lake, folder):
                if other != key:
                    lake.delete(other)
        elif isinstance(obj, StagedFile) and "lake_key" in meta:
            key = _format(meta["lake_key"], context)
            context.add_output_metadata(parquet_metadata(pq.ParquetFile(obj.path)))
            lake.put_file(obj.path, key)
        elif isinstance(obj, DatePartitionedMonth) and "lake_dataset" in meta:
            month = _month(context)
            manifest = lake.publish_partitioned_month(
                dataset=meta["lake_dataset"],
                month=month,
                file_prefix=obj.file_prefix,
                batches=_with_date_column(obj),
                schema=obj.source.schema.append(pa.field(obj.partition_column, pa.date32())),
                partition_column=obj.partition_column,
                expected_rows=obj.source.expected_rows,
            )
            if manifest.files:
                context.add_output_metadata(parquet_metadata(lake.parquet_file(f"{meta['lake_dataset']}/{manifest.files[0].path}")))
            context.add_output_metadata(
                {
                    "dagster/uri": lake.display(meta["lake_dataset"]),
                    "dagster/row_count": manifest.rows,
                    "files": len(manifest.files),
                    "pickup_dates": len({e.path.split("/")[0] for e in manifest.files}),
                    "version": manifest.version,
                    "manifest": lake.display(lake.manifest_key(meta["lake_dataset"], month)),
                }
            )
            return
        else:
            raise TypeError(
                f"{context.asset_key.to_user_string()}: the lake IO manager cannot store "
                f"{type(obj).__name__} with metadata {sorted(meta)}"
            )
        context.add_output_metadata({"dagster/uri": lake.display(key), "bytes": lake.size(key)})

    def load_input(self, context: dg.InputContext) -> LakeFile | LakeMonthDataset:
        meta = context.upstream_output.definition_metadata or {}
        lake = self.lake.lake
        name = context.upstream_output.asset_key.to_user_string()
        where = f" {_month(context)}" if _partition_key(context) is not None else ""
        if "lake_folder" in meta:
            folder = _format(meta["lake_folder"], context)
            files = self._folder_files(lake, folder)
            if not files:
                raise FileNotFoundError(f"{name}{where} is not in the lake ({lake.display(folder)}): materialize it first")
            return LakeFile(lake, files[0])
        if "lake_key" in meta:
            key = _format(meta["lake_key"], context)
            if not lake.exists(key):
                raise FileNotFoundError(f"{name}{where} is not in the lake ({lake.display(key)}): materialize it first")
            return LakeFile(lake, key)
        if "lake_dataset" in meta:
            return LakeMonthDataset(lake, meta["lake_dataset"], _month(context), meta.get("partition_column", "pickup_date"))
        raise TypeError(f"{name}: no lake location in its metadata")

    @staticmethod
    def _folder_files(lake: Lake, folder: str) -> list[str]:
        import pyarrow.fs as pafs

        infos = lake.fs.get_file_info(pafs.FileSelector(lake.path(folder), allow_not_found=True))
        prefix = lake.path(folder) + "/"
        return sorted(
            f"{folder}/{i.path[len(prefix):]}" for i in infos if i.type == pafs.FileType.File and ".tmp-" not in i.base_name
        )


def _with_date_column(month: DatePartitionedMonth) -> Iterator[pa.RecordBatch]:
    reader = month.source.open()
    for batch in reader:
        day = pc.cast(batch.column(month.derived_from), pa.date32())
        yield batch.append_column(month.partition_column, day)


# -- the warehouse IO manager ----------------------------------------------------------------
@dataclass(frozen=True)
class WarehouseTable:
    """A month (or the whole) of a warehouse table, read on demand."""

    warehouse: WarehouseResource
    table: str
    month: dt.date | None

    def read(self) -> pa.Table:
        if self.month is None:
            return self.warehouse.query(f"SELECT * FROM {self.warehouse.table_ref(self.table)}")
        return self.warehouse.read_month(self.table, self.month)


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Replaces a month (or a whole small table) in the warehouse atomically."""

    warehouse: WarehouseResource

    def handle_output(self, context: dg.OutputContext, obj: TableSource | pa.Table) -> None:
        table = (context.definition_metadata or {}).get("table")
        if not table:
            raise ValueError(f"{context.asset_key.to_user_string()}: no warehouse 'table' in its metadata")
        source = TableSource.from_table(obj) if isinstance(obj, pa.Table) else obj
        key = _partition_key(context)
        month = parse_month(key) if key is not None else None
        if month is not None:
            rows = self.warehouse.replace_month(table, month, source)
        else:
            rows = self.warehouse.replace_table(table, source)
        context.add_output_metadata(self.warehouse.table_metadata(table, month))
        context.add_output_metadata(
            {
                "dagster/row_count": rows,
                "dagster/table_name": f"{self.warehouse.schema_name}.{table}",
                "warehouse": self.warehouse.describe(),
            }
        )

    def load_input(self, context: dg.InputContext) -> WarehouseTable:
        table = (context.upstream_output.definition_metadata or {})["table"]
        key = _partition_key(context)
        month = parse_month(key) if key is not None else None
        return WarehouseTable(self.warehouse, table, month)
