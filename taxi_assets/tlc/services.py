"""The four TLC services: when each starts, what its files are called, and its canonical schema.

Everything downstream (normalisation, cleaning, the lake, the warehouses, the marts) reads the
column names from here, so a service's schema is declared exactly once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from taxi_assets.tlc.months import month_label, parse_month

TS = pa.timestamp("us")
MONEY = pa.float64()

#: Column every cleaned row carries: the first day of the month of the file it came from.
SOURCE_MONTH = "source_month"

@dataclass(frozen=True)
class MartColumns:
    """How a service's columns feed the daily zone mart; None where the service has no such column."""

    passengers: str | None
    distance: str | None
    fare: str | None
    tip: str | None
    total: str | None


@dataclass(frozen=True)
class Service:
    name: str
    title: str
    #: First month whose TLC file has zone ids (earlier yellow files have lat/lon and are refused).
    first_month: str
    schema: pa.Schema
    mart: MartColumns
    #: Whether a null pickup/dropoff location is an ordinary value (fhv) or a defect (the taxis).
    locations_nullable: bool = False
    #: Whether a null dropoff time is an ordinary value (early fhv files have none).
    dropoff_nullable: bool = False

    def file_name(self, month: dt.date, fmt: str) -> str:
        """The TLC's own file name, e.g. yellow_tripdata_2024-01.parquet."""
        return f"{self.name}_tripdata_{month_label(month)}.{fmt}"

    @property
    def first_month_date(self) -> dt.date:
        return parse_month(self.first_month)


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, typ) for name, typ in fields] + [pa.field(SOURCE_MONTH, pa.date32())])


YELLOW = Service(
    name="yellow",
    title="Yellow taxi",
    first_month="2011-01",
    schema=_schema(
        ("vendor_id", pa.int32()),
        ("pickup_datetime", TS),
        ("dropoff_datetime", TS),
        ("passenger_count", pa.int32()),
        ("trip_distance", pa.float64()),
        ("ratecode_id", pa.int32()),
        ("store_and_fwd_flag", pa.string()),
        ("pickup_location_id", pa.int32()),
        ("dropoff_location_id", pa.int32()),
        ("payment_type", pa.int32()),
        ("fare_amount", MONEY),
        ("extra", MONEY),
        ("mta_tax", MONEY),
        ("tip_amount", MONEY),
        ("tolls_amount", MONEY),
        ("improvement_surcharge", MONEY),
        ("total_amount", MONEY),
        ("congestion_surcharge", MONEY),
        ("airport_fee", MONEY),
        ("cbd_congestion_fee", MONEY),
    ),
    mart=MartColumns("passenger_count", "trip_distance", "fare_amount", "tip_amount", "total_amount"),
)

GREEN = Service(
    name="green",
    title="Green taxi",
    first_month="2013-08",
    schema=_schema(
        ("vendor_id", pa.int32()),
        ("pickup_datetime", TS),
        ("dropoff_datetime", TS),
        ("store_and_fwd_flag", pa.string()),
        ("ratecode_id", pa.int32()),
        ("pickup_location_id", pa.int32()),
        ("dropoff_location_id", pa.int32()),
        ("passenger_count", pa.int32()),
        ("trip_distance", pa.float64()),
        ("fare_amount", MONEY),
        ("extra", MONEY),
        ("mta_tax", MONEY),
        ("tip_amount", MONEY),
        ("tolls_amount", MONEY),
        ("ehail_fee", MONEY),
        ("improvement_surcharge", MONEY),
        ("total_amount", MONEY),
        ("payment_type", pa.int32()),
        ("trip_type", pa.int32()),
        ("congestion_surcharge", MONEY),
        ("cbd_congestion_fee", MONEY),
    ),
    mart=MartColumns("passenger_count", "trip_distance", "fare_amount", "tip_amount", "total_amount"),
)

FHV = Service(
    name="fhv",
    title="For-hire vehicle",
    first_month="2015-01",
    schema=_schema(
        ("dispatching_base_num", pa.string()),
        ("pickup_datetime", TS),
        ("dropoff_datetime", TS),
        ("pickup_location_id", pa.int32()),
        ("dropoff_location_id", pa.int32()),
        ("sr_flag", pa.int32()),
        ("affiliated_base_number", pa.string()),
    ),
    mart=MartColumns(None, None, None, None, None),
    locations_nullable=True,
    dropoff_nullable=True,
)

FHVHV = Service(
    name="fhvhv",
    title="High-volume for-hire vehicle",
    first_month="2019-02",
    schema=_schema(
        ("hvfhs_license_num", pa.string()),
        ("dispatching_base_num", pa.string()),
        ("originating_base_num", pa.string()),
        ("request_datetime", TS),
        ("on_scene_datetime", TS),
        ("pickup_datetime", TS),
        ("dropoff_datetime", TS),
        ("pickup_location_id", pa.int32()),
        ("dropoff_location_id", pa.int32()),
        ("trip_miles", pa.float64()),
        ("trip_time", pa.int64()),
        ("base_passenger_fare", MONEY),
        ("tolls", MONEY),
        ("bcf", MONEY),
        ("sales_tax", MONEY),
        ("congestion_surcharge", MONEY),
        ("airport_fee", MONEY),
        ("tips", MONEY),
        ("driver_pay", MONEY),
        ("shared_request_flag", pa.string()),
        ("shared_match_flag", pa.string()),
        ("access_a_ride_flag", pa.string()),
        ("wav_request_flag", pa.string()),
        ("wav_match_flag", pa.string()),
        ("sr_flag", pa.int32()),
        ("cbd_congestion_fee", MONEY),
    ),
    # A rider's total is not published for fhvhv; the fare plus tips is the closest honest figure.
    mart=MartColumns(None, "trip_miles", "base_passenger_fare", "tips", None),
)

SERVICES: dict[str, Service] = {s.name: s for s in (YELLOW, GREEN, FHV, FHVHV)}

SOURCE_FORMATS = ("parquet", "csv.gz")


def get_service(name: str) -> Service:
    try:
        return SERVICES[name]
    except KeyError:
        raise ValueError(f"unknown TLC service {name!r}; expected one of {sorted(SERVICES)}") from None
