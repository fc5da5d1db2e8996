"""Marts built inside the warehouse from the trips and zones tables."""


import dagster as dg

from taxi_assets.defs.automation import FOLLOW_UPSTREAM, ONE_MONTH_PER_RUN
from taxi_assets.defs.assets.ingest import asset_key
from taxi_assets.defs.assets.trips import monthly_partitions
from taxi_assets.tlc.marts import bar_chart_markdown, daily_zone_mart_sql, mart_table, trips_per_day_sql
from taxi_assets.tlc.services import Service, parse_month
from taxi_assets.storage.warehouse.base import WarehouseResource


def build_mart_assets(service: Service) -> list[dg.AssetsDefinition]:
    table = mart_table(service)

    @dg.asset(
        key=asset_key(service, "daily_zone_mart"),
        deps=[asset_key(service, "trips_table"), dg.AssetKey("taxi_zones")],
        partitions_def=monthly_partitions(service),
        group_name=service.name,
        metadata={"table": table},
        kinds={"sql"},
        pool="warehouse_writes",
        automation_condition=FOLLOW_UPSTREAM,
        backfill_policy=ONE_MONTH_PER_RUN,
        description=(
            f"{service.title} trips per pickup day and zone: trips, passengers, distance, fares, tips, "
            "totals and mean duration, with borough and zone names."
        ),
    )
    def daily_zone_mart(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        month = parse_month(context.partition_key)
        rows = warehouse.replace_month_from_query(table, month, daily_zone_mart_sql(service, warehouse, month))
        per_day = warehouse.query(trips_per_day_sql(service, warehouse, month)).to_pylist()
        days = [(r["pickup_date"], int(r["trips"])) for r in per_day]
        return dg.MaterializeResult(
            metadata={
                **warehouse.table_metadata(table, month),
                "dagster/row_count": rows,
                "dagster/table_name": f"{warehouse.schema_name}.{table}",
                "trips": sum(n for _, n in days),
                "pickup_days": len(days),
                "trips_per_day": dg.MetadataValue.md(bar_chart_markdown(days)),
            }
        )

    return [daily_zone_mart]
