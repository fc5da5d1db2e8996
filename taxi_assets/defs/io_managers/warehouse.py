"""The warehouse IO manager: replaces a month (or a whole small table) atomically, and loads a
month, the months a partition mapping gives, or every month, as the input's annotation asks.

A table's name and spec come from the asset's definition metadata (`table`, and for the
platform's tables a `TableSpec` as JSON in `table_spec`); a user's asset without them gets a table named
after its key, keyed on `source_month`, which the IO manager adds to a monthly output that lacks it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import dagster as dg
import duckdb
import pyarrow as pa

from taxi_assets.defs.io_managers.selection import input_partitions, output_partition
from taxi_assets.defs.io_managers.types import OUTPUT_TYPES, READABLE, from_reader, to_arrow, unsupported, wanted_type
from taxi_assets.defs.metadata import warehouse_table_metadata
from taxi_assets.defs.resources import WarehouseResource
from taxi_assets.storage.handles import WarehouseTable
from taxi_assets.storage.warehouse.base import TableSource, TableSpec, Warehouse, validate_identifier
from taxi_assets.storage.warehouse.duckdb import DuckDBWarehouse
from taxi_assets.tlc.months import parse_month


class SqlQuery(str):
    """A user's asset output: a SELECT the warehouse runs itself, its rows replacing the month.

    Build it from an input annotated `WarehouseTable` (its `.sql`, the selected months' rows), so
    the rows never leave the engine.
    """


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Replaces a month (or a whole small table) in the warehouse atomically."""

    warehouse: WarehouseResource

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        backend = self.warehouse.backend
        spec = described(table_spec(context.definition_metadata or {}, context.asset_key), context)
        key = output_partition(context)
        month = _month_of(key, context.asset_key) if key is not None else None
        # Steps run in one process (the in-process executor): the memory Arrow's pool kept from
        # the month streamed through the lake goes back to the system before the warehouse's own
        # buffers (DuckDB's, the COPY encoder's) are allocated. Measured on a 20M-row fhvhv job on
        # DuckDB: the table step's peak 758 MB with it, 998 MB without (on Postgres no measurable
        # difference: there the day being sorted is the peak).
        pa.default_memory_pool().release_unused()
        if isinstance(obj, SqlQuery):
            rows = self._from_query(backend, spec, month, str(obj))
        elif isinstance(obj, TableSource) or (arrow := to_arrow(obj)) is not None:
            source = obj if isinstance(obj, TableSource) else _source(arrow, spec.month_column, month)
            if month is not None:
                rows = backend.replace_month(spec, month, source)
            else:
                rows = backend.replace_table(spec, source)
        else:
            raise TypeError(
                f"{context.asset_key.to_user_string()}: the warehouse IO manager cannot store {type(obj).__name__}; "
                f"return one of {OUTPUT_TYPES}, or a SqlQuery"
            )
        backend.comment(spec)
        context.add_output_metadata(warehouse_table_metadata(backend, spec, month))
        context.add_output_metadata(
            {
                "dagster/row_count": rows,
                "dagster/table_name": f"{backend.schema_name}.{spec.name}",
                "warehouse": backend.describe(),
            }
        )

    @staticmethod
    def _from_query(backend: Warehouse, spec: TableSpec, month: dt.date | None, select: str) -> int:
        if month is not None:
            return backend.replace_month_from_query(spec, month, select)
        return backend.replace_table(spec, TableSource.from_table(backend.query(select)))

    def month_handle(self, key: dg.AssetKey, meta: dict, partition: str) -> WarehouseTable:
        """What an unannotated input of one month of the asset gets, without an input context
        (a ranged run's chain reads each month through this: assets/ranged.py)."""
        return WarehouseTable(self.warehouse.backend, table_spec(meta, key), (_month_of(partition, key),))

    def load_input(self, context: dg.InputContext) -> object:
        backend = self.warehouse.backend
        upstream = context.upstream_output
        spec = table_spec(upstream.definition_metadata or {}, upstream.asset_key)
        keys = input_partitions(context)
        months = tuple(_month_of(k, upstream.asset_key) for k in keys) if keys is not None else None
        handle = WarehouseTable(backend, spec, months)
        wanted = wanted_type(context)
        if wanted in (None, WarehouseTable):
            return handle
        if wanted is duckdb.DuckDBPyRelation and isinstance(backend, DuckDBWarehouse):
            return backend.relation(handle.sql)
        if wanted not in READABLE:
            names = [*READABLE.values(), "WarehouseTable (lazy: SQL run inside the warehouse)"]
            if isinstance(backend, DuckDBWarehouse):
                names.append("duckdb.DuckDBPyRelation (lazy)")
            raise unsupported(context, wanted, "warehouse", names)
        return from_reader(handle.stream, wanted)


def table_spec(meta: dict, key: dg.AssetKey) -> TableSpec:
    """The asset's table: its `table_spec`, its `table` name, or a name made from its key."""
    spec = meta.get("table_spec")
    if spec is not None:
        return TableSpec.from_dict(spec.data if isinstance(spec, dg.JsonMetadataValue) else spec)
    name = meta.get("table") or "_".join(key.path)
    return TableSpec(validate_identifier(name, f"table of {key.to_user_string()}"))


def described(spec: TableSpec, context: dg.OutputContext) -> TableSpec:
    """The spec with the asset's description and its column schema's descriptions, which the
    warehouse keeps as the table's comments."""
    schema = (context.definition_metadata or {}).get("dagster/column_schema")
    columns = tuple((c.name, c.description) for c in schema.columns if c.description) if schema else ()
    try:
        description = context.asset_spec.description
    except dg.DagsterInvariantViolationError:
        description = None
    return dataclasses.replace(spec, description=description, column_descriptions=columns)


def _month_of(partition: str, key: dg.AssetKey) -> dt.date:
    try:
        return parse_month(partition)
    except ValueError:
        raise ValueError(
            f"{key.to_user_string()}: partition {partition!r} is not a month; the warehouse stores monthly or "
            "unpartitioned tables (store other partitions in the lake: io_manager_key='lake_io_manager')"
        ) from None


def _source(rows: pa.Table | pa.RecordBatchReader, month_column: str, month: dt.date | None) -> TableSource:
    """A user's rows as a load; a monthly output without the month column gets it."""
    if isinstance(rows, pa.RecordBatchReader):
        read = iter([rows])
        schema = rows.schema

        def open_once() -> pa.RecordBatchReader:
            reader = next(read, None)
            if reader is None:
                raise RuntimeError("a streamed output can be loaded once")
            return reader

        source = TableSource(schema=schema, open=open_once)
    else:
        source = TableSource.from_table(rows)
    if month is None or month_column in source.schema.names:
        return source
    schema = source.schema.append(pa.field(month_column, pa.date32(), nullable=False))
    opened = source.open

    def with_month():
        for batch in opened():
            yield pa.RecordBatch.from_arrays([*batch.columns, pa.array([month] * batch.num_rows, pa.date32())], schema=schema)

    return TableSource.from_batches(schema, with_month)
