"""A month's trips in the warehouse table, and its rejects counted per rule, each month replaced atomically."""

import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from taxi_assets.defs.catalog import OWNERS, catalog_tags
from taxi_assets.defs.metadata import column_schema
from taxi_assets.defs.partitions import asset_key, monthly_partitions
from taxi_assets.defs.policies import FOLLOW_UPSTREAM
from taxi_assets.defs.tables import rejects_summary_spec, trips_spec
from taxi_assets.storage.handles import LakeFile, LakeMonthDataset
from taxi_assets.storage.warehouse.base import TableSource
from taxi_assets.tlc.cleaning import REJECT_RULE
from taxi_assets.tlc.marts import REJECTS_SUMMARY_SCHEMA
from taxi_assets.tlc.months import parse_month
from taxi_assets.tlc.services import Service


def build_warehouse_assets(service: Service) -> list[dg.AssetsDefinition]:
    partitions = monthly_partitions(service)
    spec = trips_spec(service)

    @dg.asset(
        key=asset_key(service, "trips_table"),
        ins={"cleaned": dg.AssetIn(asset_key(service, "trips_cleaned"))},
        partitions_def=partitions,
        group_name=service.name,
        owners=OWNERS,
        tags=catalog_tags("warehouse", service.name),
        io_manager_key="warehouse_io_manager",
        metadata={"table_spec": spec.to_dict(), "dagster/column_schema": column_schema(service.schema)},
        kinds={"sql"},
        pool="warehouse_writes",
        automation_condition=FOLLOW_UPSTREAM,
        description=f"{service.title} cleaned trips in the warehouse table {spec.name}, one month replaced atomically.",
    )
    def trips_table(cleaned: LakeMonthDataset) -> TableSource:
        return month_table_source(service, cleaned)

    @dg.asset(
        key=asset_key(service, "rejects_summary"),
        ins={"rejected": dg.AssetIn(asset_key(service, "trips_rejected"))},
        partitions_def=partitions,
        group_name=service.name,
        owners=OWNERS,
        tags=catalog_tags("warehouse", service.name),
        io_manager_key="warehouse_io_manager",
        metadata={"table_spec": rejects_summary_spec(service).to_dict(), "dagster/column_schema": column_schema(REJECTS_SUMMARY_SCHEMA)},
        kinds={"sql"},
        pool="warehouse_writes",
        automation_condition=FOLLOW_UPSTREAM,
        description=f"Rejected {service.title.lower()} rows per cleaning rule and month, in the warehouse.",
    )
    def rejects_summary(context: dg.AssetExecutionContext, rejected: LakeFile) -> pa.Table:
        return rejects_per_rule(parse_month(context.partition_key), rejected)

    return [trips_table, rejects_summary]


def month_table_source(service: Service, cleaned: LakeMonthDataset) -> TableSource:
    # A row store (Postgres) is sent the lake's date folders day after day, each day sorted: it
    # holds the month in pickup order (time ranges read adjacent pages; the time index can be a
    # BRIN). An engine that reads parquet itself (DuckDB from this disk, BigQuery from the
    # bucket) takes the day files as they are, in parallel: a columnar table needs no order.
    return cleaned.table_source(service.schema, order_by="pickup_datetime")


def rejects_per_rule(month: dt.date, rejected: LakeFile) -> pa.Table:
    rules = rejected.parquet().read(columns=[REJECT_RULE])
    counts = rules.group_by(REJECT_RULE).aggregate([([], "count_all")]).sort_by(REJECT_RULE)
    return pa.table(
        [pa.array([month] * counts.num_rows, pa.date32()), counts.column(REJECT_RULE), pc.cast(counts.column("count_all"), pa.int64())],
        schema=REJECTS_SUMMARY_SCHEMA,
    )
