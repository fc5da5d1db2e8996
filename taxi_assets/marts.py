"""The daily zone mart: per service, pickup day and pickup zone, computed inside the warehouse.

The SQL is built here once, with the few spellings that differ between engines taken from the
warehouse's dialect, so DuckDB, Postgres and BigQuery compute the same figures.
"""

from __future__ import annotations

import datetime as dt

from taxi_assets.services import SOURCE_MONTH, Service
from taxi_assets.warehouse.base import WarehouseResource, sql_date_literal


def trips_table(service: Service) -> str:
    return f"{service.name}_trips"


def mart_table(service: Service) -> str:
    return f"{service.name}_daily_zone_mart"


ZONES_TABLE = "taxi_zones"
REJECTS_SUMMARY_SUFFIX = "_rejects_summary"


def daily_zone_mart_sql(service: Service, warehouse: WarehouseResource, month: dt.date) -> str:
    """SELECT of one source month's mart rows: trips, passengers, distance, money, mean duration."""
    d = warehouse.dialect
    cols = service.mart

    def total(column: str | None) -> str:
        # A service without the column (fhv has no fares) gets a typed NULL, so every engine
        # creates the same column type.
        return d.round2(f"SUM(t.{column})") if column else f"CAST(NULL AS {d.float_type})"

    passengers = f"SUM(t.{cols.passengers})" if cols.passengers else f"CAST(NULL AS {d.int_type})"
    return f"""
SELECT
    t.{SOURCE_MONTH} AS {SOURCE_MONTH},
    {d.to_date("t.pickup_datetime")} AS pickup_date,
    t.pickup_location_id AS pickup_location_id,
    z.borough AS pickup_borough,
    z.zone AS pickup_zone,
    COUNT(*) AS trips,
    {passengers} AS passengers,
    {total(cols.distance)} AS distance_miles,
    {total(cols.fare)} AS fares,
    {total(cols.tip)} AS tips,
    {total(cols.total)} AS totals,
    {d.round2(f"AVG({d.seconds_between('t.pickup_datetime', 't.dropoff_datetime')}) / 60.0")} AS mean_duration_minutes
FROM {warehouse.table_ref(trips_table(service))} AS t
LEFT JOIN {warehouse.table_ref(ZONES_TABLE)} AS z ON z.location_id = t.pickup_location_id
WHERE t.{SOURCE_MONTH} = {sql_date_literal(month)}
GROUP BY 1, 2, 3, 4, 5
"""


def trips_per_day_sql(service: Service, warehouse: WarehouseResource, month: dt.date) -> str:
    return (
        f"SELECT pickup_date, SUM(trips) AS trips FROM {warehouse.table_ref(mart_table(service))} "
        f"WHERE {SOURCE_MONTH} = {sql_date_literal(month)} GROUP BY pickup_date ORDER BY pickup_date"
    )


def bar_chart_markdown(rows: list[tuple[dt.date, int]], width: int = 40) -> str:
    """A small bar chart that the Dagster UI renders from markdown: one bar per pickup day."""
    if not rows:
        return "_no trips_"
    peak = max(n for _, n in rows) or 1
    lines = [f"{day:%a %d %b}  {'█' * max(1, round(n / peak * width)) if n else ''} {n:,}" for day, n in rows]
    return "Trips per pickup day\n\n```\n" + "\n".join(lines) + "\n```"
