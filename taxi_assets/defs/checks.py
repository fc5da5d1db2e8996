"""Asset checks on what landed: the month reconciles, keys are present, pickups fall in the month,
and the warehouse and the mart hold exactly the lake's rows."""

import datetime as dt

import dagster as dg

from taxi_assets.defs.partitions import asset_key, monthly_partitions
from taxi_assets.defs.resources import WarehouseResource
from taxi_assets.storage.handles import LakeFile, LakeMonthDataset, WarehouseTable
from taxi_assets.defs.tables import trips_spec
from taxi_assets.tlc.marts import mart_table
from taxi_assets.tlc.raw_reader import count_raw_rows
from taxi_assets.tlc.services import SOURCE_MONTH, Service
from taxi_assets.tlc.months import month_bounds, month_label, parse_month
from taxi_assets.storage.warehouse.base import Warehouse, sql_date_literal


def _key_columns(service: Service) -> list[str]:
    columns = ["pickup_datetime"]
    if not service.dropoff_nullable:
        columns.append("dropoff_datetime")
    if not service.locations_nullable:
        columns += ["pickup_location_id", "dropoff_location_id"]
    return columns


# The checks' logic, shared by their steps and by a run over several months (assets/ranged.py).
def reconciles(raw: LakeFile, cleaned: LakeMonthDataset, rejected: LakeFile) -> dg.AssetCheckResult:
    fmt = "csv.gz" if raw.name.endswith(".csv.gz") else "parquet"
    with raw.local_copy() as path:
        raw_rows = count_raw_rows(path, fmt)
    kept, dropped = cleaned.num_rows, rejected.num_rows
    return dg.AssetCheckResult(
        check_name="reconciles_with_raw",
        passed=raw_rows == kept + dropped,
        metadata={"raw_rows": raw_rows, "kept": kept, "rejected": dropped, "difference": raw_rows - kept - dropped},
    )


def keys_present(service: Service, cleaned: LakeMonthDataset) -> dg.AssetCheckResult:
    nulls = {name: stats.nulls for name, stats in cleaned.column_stats(*_key_columns(service)).items()}
    return dg.AssetCheckResult(
        check_name="keys_not_null", passed=not any(nulls.values()), metadata={f"nulls/{k}": v for k, v in nulls.items()}
    )


def pickups_inside(month: dt.date, cleaned: LakeMonthDataset) -> dg.AssetCheckResult:
    start, end = month_bounds(month)
    stats = cleaned.column_stats("pickup_datetime")["pickup_datetime"]
    inside = stats.min is None or (stats.min >= start and stats.max < end)
    return dg.AssetCheckResult(
        check_name="pickups_within_month",
        passed=inside,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"earliest": str(stats.min), "latest": str(stats.max), "month_start": str(start), "month_end": str(end)},
    )


def table_matches_lake(table: WarehouseTable, cleaned: LakeMonthDataset) -> dg.AssetCheckResult:
    in_warehouse, in_lake = table.count(), cleaned.num_rows
    return dg.AssetCheckResult(
        check_name="matches_lake", passed=in_warehouse == in_lake, metadata={"warehouse_rows": in_warehouse, "lake_rows": in_lake}
    )


def mart_adds_up(service: Service, backend: Warehouse, month: dt.date) -> dg.AssetCheckResult:
    summed = backend.query(
        f"SELECT COALESCE(SUM(trips), 0) AS n FROM {backend.table_ref(mart_table(service))} "
        f"WHERE {SOURCE_MONTH} = {sql_date_literal(month)}"
    ).column("n")[0].as_py()
    trips = backend.count(trips_spec(service), month)
    return dg.AssetCheckResult(
        check_name="trips_add_up",
        passed=int(summed) == trips,
        metadata={"mart_trips": int(summed), "table_rows": trips, "month": month_label(month)},
    )


def build_trip_checks(service: Service) -> list[dg.AssetChecksDefinition]:
    cleaned_key = asset_key(service, "trips_cleaned")
    # Partitioned like their assets: each month shows its own result, and a month that never loaded
    # shows its checks as not run, not as failed.
    months = monthly_partitions(service)

    @dg.asset_check(
        partitions_def=months,
        asset=cleaned_key,
        additional_ins={"raw": dg.AssetIn(asset_key(service, "raw_file")), "rejected": dg.AssetIn(asset_key(service, "trips_rejected"))},
        blocking=True,
        name="reconciles_with_raw",
        description="Rows in the raw file = rows kept + rows rejected, counted from the files that landed.",
    )
    def reconciles_with_raw(trips_cleaned: LakeMonthDataset, raw: LakeFile, rejected: LakeFile) -> dg.AssetCheckResult:
        return reconciles(raw, trips_cleaned, rejected)

    @dg.asset_check(
        partitions_def=months,
        asset=cleaned_key,
        blocking=True,
        name="keys_not_null",
        description="Pickup time (and, for the taxis, dropoff time and both zone ids) is never null in kept rows.",
    )
    def keys_not_null(trips_cleaned: LakeMonthDataset) -> dg.AssetCheckResult:
        return keys_present(service, trips_cleaned)

    @dg.asset_check(
        partitions_def=months,
        asset=cleaned_key,
        name="pickups_within_month",
        description="Every kept pickup falls inside the partition's month (warns when the rule was switched off).",
    )
    def pickups_within_month(context: dg.AssetCheckExecutionContext, trips_cleaned: LakeMonthDataset) -> dg.AssetCheckResult:
        return pickups_inside(parse_month(context.partition_key), trips_cleaned)

    @dg.asset_check(
        partitions_def=months,
        asset=asset_key(service, "trips_table"),
        additional_ins={"cleaned": dg.AssetIn(cleaned_key)},
        name="matches_lake",
        description="The warehouse holds exactly the month's cleaned rows, no more, no fewer.",
    )
    def matches_lake(trips_table: WarehouseTable, cleaned: LakeMonthDataset) -> dg.AssetCheckResult:
        return table_matches_lake(trips_table, cleaned)

    @dg.asset_check(
        partitions_def=months,
        asset=asset_key(service, "daily_zone_mart"),
        name="trips_add_up",
        description="The mart's trips for the month add up to the month's rows in the trips table.",
    )
    def trips_add_up(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        return mart_adds_up(service, warehouse.backend, parse_month(context.partition_key))

    return [reconciles_with_raw, keys_not_null, pickups_within_month, matches_lake, trips_add_up]
