"""The daily zone mart, built inside the warehouse from the trips and zones tables."""

import datetime as dt

import dagster as dg

from taxi_assets.defs.catalog import OWNERS, catalog_tags
from taxi_assets.defs.charts import month_chart_svg, svg_markdown
from taxi_assets.defs.metadata import column_schema, warehouse_table_metadata
from taxi_assets.defs.partitions import asset_key, monthly_partitions
from taxi_assets.defs.policies import FOLLOW_UPSTREAM
from taxi_assets.defs.resources import WarehouseResource
from taxi_assets.defs.tables import mart_spec
from taxi_assets.storage.warehouse.base import Warehouse
from taxi_assets.tlc.marts import MART_SCHEMA, daily_zone_mart_sql, top_zones_sql, trips_per_day_sql
from taxi_assets.tlc.months import month_label, parse_month
from taxi_assets.tlc.services import Service


def build_mart(service: Service) -> dg.AssetsDefinition:
    spec = mart_spec(service)

    @dg.asset(
        key=asset_key(service, "daily_zone_mart"),
        deps=[asset_key(service, "trips_table"), dg.AssetKey("taxi_zones")],
        partitions_def=monthly_partitions(service),
        group_name=service.name,
        owners=OWNERS,
        tags=catalog_tags("mart", service.name),
        # Written here by a query inside the warehouse; the IO manager only loads it for users' assets.
        io_manager_key="warehouse_io_manager",
        metadata={"table_spec": spec.to_dict(), "dagster/column_schema": column_schema(MART_SCHEMA)},
        kinds={"sql"},
        pool="warehouse_writes",
        automation_condition=FOLLOW_UPSTREAM,
        description=spec.description,
    )
    def daily_zone_mart(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=build_month_mart(service, warehouse.backend, parse_month(context.partition_key)))

    return daily_zone_mart


def build_month_mart(service: Service, backend: Warehouse, month: dt.date) -> dict[str, object]:
    """Replace the month's mart rows inside the warehouse; the materialization's metadata."""
    spec = mart_spec(service)
    rows = backend.replace_month_from_query(spec, month, daily_zone_mart_sql(service, backend, month))
    backend.comment(spec)
    per_day = backend.query(trips_per_day_sql(service, backend, month)).to_pylist()
    days = [(r["pickup_date"], int(r["trips"])) for r in per_day]
    zones = [
        (f"{r['pickup_zone']} ({r['pickup_borough']})", int(r["trips"]))
        for r in backend.query(top_zones_sql(service, backend, month)).to_pylist()
    ]
    title = f"{service.name} {month_label(month)}"
    return {
        **warehouse_table_metadata(backend, spec, month),
        "dagster/row_count": rows,
        "dagster/table_name": f"{backend.schema_name}.{spec.name}",
        # numbers, so the UI's Plots tab charts them across months
        "trips": sum(n for _, n in days),
        "pickup_days": len(days),
        "busiest_zone_trips": zones[0][1] if zones else 0,
        "chart": dg.MetadataValue.md(svg_markdown(month_chart_svg(title, days, zones), f"{title} trips per day and busiest zones")),
    }
