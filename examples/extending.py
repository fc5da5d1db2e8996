"""Building on taxi_assets: four assets of a user's own, merged into the platform's definitions.

Each asks for the platform's data in the type it wants, by annotation, and the platform's IO
managers hand it over (and store what it returns) exactly as they do for the platform's assets:
one partition replaced atomically. Run it on the demo's data (docs/extending.md):

    make demo MONTHS=2023-01..2023-12 SERVICES=yellow
    .venv/bin/dg dev -m examples.extending
"""

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from taxi_assets.definitions import build_definitions
from taxi_assets.defs.io_managers import SqlQuery
from taxi_assets.defs.partitions import monthly_partitions
from taxi_assets.storage.handles import WarehouseTable
from taxi_assets.tlc.services import YELLOW

YELLOW_MONTHS = monthly_partitions(YELLOW)
YEARS = dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 1 1 *", fmt="%Y", start=YELLOW.first_month[:4])


@dg.asset(
    key=["yellow", "tip_share_by_zone"],
    ins={"trips": dg.AssetIn(["yellow", "trips_table"])},
    partitions_def=YELLOW_MONTHS,
    io_manager_key="warehouse_io_manager",
    group_name="examples",
)
def tip_share_by_zone(trips: pd.DataFrame) -> pd.DataFrame:
    """Tips as a share of fares per pickup zone, for card payments (cash tips are not recorded).

    A month of the warehouse's trips as a pandas DataFrame; the result replaces its month in the
    warehouse table `yellow_tip_share_by_zone` (the IO manager adds `source_month`).
    """
    card = trips[trips["payment_type"] == 1]
    by_zone = card.groupby("pickup_location_id", as_index=False).agg(
        trips=("fare_amount", "size"), fares=("fare_amount", "sum"), tips=("tip_amount", "sum")
    )
    by_zone["tip_share"] = (by_zone["tips"] / by_zone["fares"]).where(by_zone["fares"] > 0).round(4)
    return by_zone


@dg.asset(
    key=["yellow", "fares_by_month_of_year"],
    ins={"cleaned": dg.AssetIn(["yellow", "trips_cleaned"])},
    partitions_def=YEARS,
    io_manager_key="lake_io_manager",
    group_name="examples",
)
def fares_by_month_of_year(cleaned: pa.Table) -> pa.Table:
    """Trips and fares of each month of a year, from the 12 cleaned months as one Arrow table.

    The year's input is the 12 months its time window maps to; it is written to the lake as
    `assets/yellow/fares_by_month_of_year/<year>.parquet`.
    """
    months = cleaned.group_by("source_month").aggregate([([], "count_all"), ("fare_amount", "sum")])
    return pa.table(
        {
            "month": months["source_month"],
            "trips": pc.cast(months["count_all"], pa.int64()),
            "fares": pc.round(months["fare_amount_sum"], 2),
        }
    ).sort_by("month")


@dg.asset(
    key=["yellow", "trips_per_month"],
    ins={"mart": dg.AssetIn(["yellow", "daily_zone_mart"])},
    io_manager_key="warehouse_io_manager",
    group_name="examples",
)
def trips_per_month(mart: pd.DataFrame) -> pd.DataFrame:
    """Trips per month over every month in the warehouse (an unpartitioned asset reads them all)."""
    totals = mart.groupby("source_month", as_index=False)["trips"].sum()
    return totals.sort_values("source_month").reset_index(drop=True)


@dg.asset(
    key=["yellow", "airport_pickups"],
    ins={"trips": dg.AssetIn(["yellow", "trips_table"])},
    partitions_def=YELLOW_MONTHS,
    io_manager_key="warehouse_io_manager",
    group_name="examples",
)
def airport_pickups(trips: WarehouseTable) -> SqlQuery:
    """Pickups at the three airports per day, computed inside the warehouse: no row leaves it.

    JFK (132), LaGuardia (138) and Newark (1) zones; the month's rows are `trips.sql`.
    """
    return SqlQuery(
        "SELECT source_month, CAST(pickup_datetime AS DATE) AS pickup_date, pickup_location_id, COUNT(*) AS trips "
        f"FROM ({trips.sql}) AS t WHERE pickup_location_id IN (1, 132, 138) GROUP BY 1, 2, 3"
    )


USER_ASSETS = [tip_share_by_zone, fares_by_month_of_year, trips_per_month, airport_pickups]


def build_extended_definitions(settings=None) -> dg.Definitions:
    return dg.Definitions.merge(build_definitions(settings), dg.Definitions(assets=USER_ASSETS))


defs = build_extended_definitions()
