"""The warehouse tables the platform makes, with what each is keyed, ordered and indexed on.

The stores know no TLC column; these specs, made from the TLC's columns, travel with every write.
"""

from __future__ import annotations

from taxi_assets.storage.warehouse.base import TableSpec
from taxi_assets.tlc.columns import describe_column
from taxi_assets.tlc.marts import MART_SCHEMA, REJECTS_SUMMARY_SUFFIX, ZONES_TABLE, mart_table, trips_table
from taxi_assets.tlc.services import SOURCE_MONTH, Service

#: Trips are loaded in pickup order (the lake's days in date order, each day sorted): Postgres
#: indexes the time with a BRIN. One btree on (pickup, dropoff) zone answers "from A", "from A to
#: B", and "to B" by a scan of that small index; BigQuery clusters on the same pair.
_ZONE_PAIR = ("pickup_location_id", "dropoff_location_id")


def trips_spec(service: Service) -> TableSpec:
    return TableSpec(
        trips_table(service),
        month_column=SOURCE_MONTH,
        time_column="pickup_datetime",
        index_columns=(_ZONE_PAIR,),
        cluster_columns=_ZONE_PAIR,
    )


def mart_spec(service: Service) -> TableSpec:
    """The mart is written by its own asset, not an IO manager, so its spec carries the comments the
    warehouse IO manager takes from the other assets' descriptions and column schemas."""
    return TableSpec(
        mart_table(service), month_column=SOURCE_MONTH, index_columns=(("pickup_date",),), cluster_columns=("pickup_location_id",),
        description=(
            f"{service.title} trips per pickup day and zone: trips, passengers, distance, fares, tips, "
            "totals and mean duration, with borough and zone names."
        ),
        column_descriptions=tuple((name, text) for name in MART_SCHEMA.names if (text := describe_column(name))),
    )


def rejects_summary_spec(service: Service) -> TableSpec:
    return TableSpec(f"{service.name}{REJECTS_SUMMARY_SUFFIX}", month_column=SOURCE_MONTH)


ZONES_SPEC = TableSpec(ZONES_TABLE, key_columns=("location_id",))
