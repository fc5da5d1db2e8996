"""The daily zone mart: per service, pickup day and pickup zone, computed inside the warehouse.

The SQL is built here once, with the few spellings that differ between engines taken from the
warehouse's dialect, so DuckDB, Postgres and BigQuery compute the same figures.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import pyarrow as pa

from taxi_assets.tlc.services import SOURCE_MONTH, Service


class SqlEngine(Protocol):
    """What the mart SQL needs of a warehouse: its spellings, and its quoted table names."""

    @property
    def dialect(self): ...

    def table_ref(self, table: str) -> str: ...


def _date_literal(day: dt.date) -> str:
    """A DATE literal; built from a date object only, so there is nothing to inject."""
    if not isinstance(day, dt.date):
        raise TypeError(f"expected a date, got {day!r}")
    return f"DATE '{day.isoformat()}'"


def trips_table(service: Service) -> str:
    return f"{service.name}_trips"


def mart_table(service: Service) -> str:
    return f"{service.name}_daily_zone_mart"


ZONES_TABLE = "taxi_zones"
REJECTS_SUMMARY_SUFFIX = "_rejects_summary"

#: A month's rejects per rule, as the warehouse keeps them.
REJECTS_SUMMARY_SCHEMA = pa.schema([(SOURCE_MONTH, pa.date32()), ("rule", pa.string()), ("rows", pa.int64())])
#: The mart's columns, as `daily_zone_mart_sql` makes them (each engine spells the types its way).
MART_SCHEMA = pa.schema(
    [
        (SOURCE_MONTH, pa.date32()), ("pickup_date", pa.date32()), ("pickup_location_id", pa.int32()),
        ("pickup_borough", pa.string()), ("pickup_zone", pa.string()), ("trips", pa.int64()), ("passengers", pa.int64()),
        ("distance_miles", pa.float64()), ("fares", pa.float64()), ("tips", pa.float64()), ("totals", pa.float64()),
        ("mean_duration_minutes", pa.float64()),
    ]
)


def daily_zone_mart_sql(service: Service, warehouse: SqlEngine, month: dt.date) -> str:
    """SELECT of one source month's mart rows: trips, passengers, distance, money, mean duration.

    The month is aggregated first and the few thousand groups are joined to the 265 zones after:
    joining every trip to its zone and grouping on the zone's names too cost Postgres twice the
    time, and the plain GROUP BY lets it aggregate in parallel workers.
    """
    d = warehouse.dialect
    cols = service.mart

    def total(column: str | None, name: str) -> str:
        # A service without the column (fhv has no fares) gets a typed NULL, so every engine
        # creates the same column type.
        return f"SUM(t.{column}) AS {name}" if column else f"CAST(NULL AS {d.float_type}) AS {name}"

    # Cast: a SUM of integers is DuckDB's HUGEINT (decimal(38,0) to most clients) and Postgres's numeric.
    passengers = f"CAST(SUM(t.{cols.passengers}) AS {d.int_type})" if cols.passengers else f"CAST(NULL AS {d.int_type})"
    return f"""
SELECT
    a.{SOURCE_MONTH} AS {SOURCE_MONTH},
    a.pickup_date AS pickup_date,
    a.pickup_location_id AS pickup_location_id,
    z.borough AS pickup_borough,
    z.zone AS pickup_zone,
    a.trips AS trips,
    a.passengers AS passengers,
    {d.round2("a.distance_sum")} AS distance_miles,
    {d.round2("a.fare_sum")} AS fares,
    {d.round2("a.tip_sum")} AS tips,
    {d.round2("a.total_sum")} AS totals,
    {d.round2("a.mean_seconds / 60.0")} AS mean_duration_minutes
FROM (
    SELECT
        t.{SOURCE_MONTH} AS {SOURCE_MONTH},
        {d.to_date("t.pickup_datetime")} AS pickup_date,
        t.pickup_location_id AS pickup_location_id,
        COUNT(*) AS trips,
        {passengers} AS passengers,
        {total(cols.distance, "distance_sum")},
        {total(cols.fare, "fare_sum")},
        {total(cols.tip, "tip_sum")},
        {total(cols.total, "total_sum")},
        AVG({d.seconds_between('t.pickup_datetime', 't.dropoff_datetime')}) AS mean_seconds
    FROM {warehouse.table_ref(trips_table(service))} AS t
    WHERE t.{SOURCE_MONTH} = {_date_literal(month)}
    GROUP BY 1, 2, 3
) AS a
LEFT JOIN {warehouse.table_ref(ZONES_TABLE)} AS z ON z.location_id = a.pickup_location_id
"""


def trips_per_day_sql(service: Service, warehouse: SqlEngine, month: dt.date) -> str:
    return (
        f"SELECT pickup_date, SUM(trips) AS trips FROM {warehouse.table_ref(mart_table(service))} "
        f"WHERE {SOURCE_MONTH} = {_date_literal(month)} GROUP BY pickup_date ORDER BY pickup_date"
    )


def top_zones_sql(service: Service, warehouse: SqlEngine, month: dt.date, limit: int = 10) -> str:
    """The month's busiest pickup zones by trips, from the mart."""
    return (
        f"SELECT pickup_borough, pickup_zone, SUM(trips) AS trips FROM {warehouse.table_ref(mart_table(service))} "
        f"WHERE {SOURCE_MONTH} = {_date_literal(month)} AND pickup_zone IS NOT NULL "
        f"GROUP BY pickup_borough, pickup_zone ORDER BY trips DESC, pickup_zone LIMIT {int(limit)}"
    )
