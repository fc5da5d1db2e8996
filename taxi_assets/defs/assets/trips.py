"""Per-service trip assets, monthly partitioned: ingest (raw file -> cleaned + rejected, audited) -> lake by date -> warehouse.

One factory builds the same graph for every service, grouped under the service's name in the UI.
Each month streams through in record batches: memory is bounded by a batch, not by the month.
"""


import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from taxi_assets.defs.assets.ingest import asset_key, build_ingest
from taxi_assets.defs.automation import FOLLOW_UPSTREAM, ONE_MONTH_PER_RUN
from taxi_assets.tlc.cleaning import REJECT_RULE
from taxi_assets.defs.io_managers import DatePartitionedMonth, LakeFile, LakeMonthDataset
from taxi_assets.tlc.marts import REJECTS_SUMMARY_SUFFIX, trips_table
from taxi_assets.defs.metadata import column_schema
from taxi_assets.tlc.services import SOURCE_MONTH, Service, next_month, parse_month
from taxi_assets.storage.warehouse.base import TableSource


def monthly_partitions(service: Service) -> dg.MonthlyPartitionsDefinition:
    """From the service's first month with zone ids up to the last complete month."""
    return dg.MonthlyPartitionsDefinition(start_date=service.first_month_date.isoformat())


def build_trip_assets(service: Service) -> list[dg.AssetsDefinition]:
    partitions = monthly_partitions(service)
    group = service.name
    name = service.name
    ingest = build_ingest(service, partitions)

    @dg.asset(
        key=asset_key(service, "trips_by_pickup_date"),
        ins={"cleaned": dg.AssetIn(asset_key(service, "trips_cleaned"))},
        partitions_def=partitions,
        group_name=group,
        io_manager_key="lake_io_manager",
        metadata={
            "lake_dataset": f"trips/{name}",
            "partition_column": "pickup_date",
            "dagster/column_schema": column_schema(service.schema.append(pa.field("pickup_date", pa.date32()))),
        },
        kinds={"parquet"},
        automation_condition=FOLLOW_UPSTREAM,
        backfill_policy=ONE_MONTH_PER_RUN,
        description=f"{service.title} cleaned trips as parquet in pickup_date=YYYY-MM-DD folders, each month published atomically.",
    )
    def trips_by_pickup_date(cleaned: LakeFile) -> DatePartitionedMonth:
        return DatePartitionedMonth(cleaned.table_source(), "pickup_date", "pickup_datetime", file_prefix=name)

    @dg.asset(
        key=asset_key(service, "trips_table"),
        ins={"by_date": dg.AssetIn(asset_key(service, "trips_by_pickup_date")), "cleaned": dg.AssetIn(asset_key(service, "trips_cleaned"))},
        partitions_def=partitions,
        group_name=group,
        io_manager_key="warehouse_io_manager",
        metadata={"table": trips_table(service), "dagster/column_schema": column_schema(service.schema)},
        kinds={"sql"},
        pool="warehouse_writes",
        automation_condition=FOLLOW_UPSTREAM,
        backfill_policy=ONE_MONTH_PER_RUN,
        description=f"{service.title} cleaned trips in the warehouse table {trips_table(service)}, one month replaced atomically.",
    )
    def trips_table_asset(by_date: LakeMonthDataset, cleaned: LakeFile) -> TableSource:
        # Rows are sent from the lake's date folders, day after day, each day sorted: a row store
        # (Postgres) holds the month in pickup order (time ranges read adjacent pages; the time
        # index can be a BRIN). An engine that reads parquet itself (DuckDB from this disk,
        # BigQuery from the bucket) takes the month's cleaned file instead: the same rows in one
        # file, read in parallel, and a columnar table needs no order.
        source = by_date.table_source(service.schema, order_by="pickup_datetime")
        direct = cleaned.table_source()
        source.local_parquet, source.uris, source.expected_rows = direct.local_parquet, direct.uris, direct.expected_rows
        return source

    @dg.asset(
        key=asset_key(service, "rejects_summary"),
        ins={"rejected": dg.AssetIn(asset_key(service, "trips_rejected"))},
        partitions_def=partitions,
        group_name=group,
        io_manager_key="warehouse_io_manager",
        metadata={"table": f"{name}{REJECTS_SUMMARY_SUFFIX}"},
        kinds={"sql"},
        pool="warehouse_writes",
        automation_condition=FOLLOW_UPSTREAM,
        backfill_policy=ONE_MONTH_PER_RUN,
        description=f"Rejected {service.title.lower()} rows per cleaning rule and month, in the warehouse.",
    )
    def rejects_summary(context: dg.AssetExecutionContext, rejected: LakeFile) -> pa.Table:
        month = parse_month(context.partition_key)
        rules = rejected.parquet().read(columns=[REJECT_RULE])
        counts = rules.group_by(REJECT_RULE).aggregate([([], "count_all")]).sort_by(REJECT_RULE)
        return pa.table(
            {
                SOURCE_MONTH: pa.array([month] * counts.num_rows, pa.date32()),
                "rule": counts.column(REJECT_RULE),
                "rows": pc.cast(counts.column("count_all"), pa.int64()),
            }
        )

    return [ingest, trips_by_pickup_date, trips_table_asset, rejects_summary]


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.combine(month, dt.time()), dt.datetime.combine(next_month(month), dt.time())
