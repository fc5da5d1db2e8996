"""The raw schema the TLC published for each service and month (parquet columns, CSV headers)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from devtools.generator.common import _D, F64, I32, I64, LAST_CSV_MONTH, NULL, STR, TS
from taxi_assets.tlc.months import month_label, parse_month
from taxi_assets.tlc.services import get_service

# ------------------------------------------------------------------------------------------ schemas
#: A column of a published file: (name in the file, key into _values() or None for all-null, type).
Column = tuple[str, "str | None", pa.DataType]

_TAXI_MONEY = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount")


def parquet_columns(service: str, month: str | dt.date) -> list[Column]:
    """The columns of the TLC's republished parquet file for that service and month."""
    m = parse_month(month) if isinstance(month, str) else month
    new = m >= _D(2023, 2, 1)  # the writer changed: narrower ids, integer codes, Airport_fee
    ids = I32 if new else I64
    cbd = [("cbd_congestion_fee", "cbd_congestion_fee", F64)] if m >= _D(2025, 1, 1) else []
    money = [(c, c, F64) for c in _TAXI_MONEY]
    if service == "yellow":
        codes = I64 if new or m < _D(2018, 7, 1) else F64
        if m < _D(2019, 1, 1):
            fees = [("congestion_surcharge", None, NULL), ("airport_fee", None, NULL)]
        elif m < _D(2022, 1, 1):
            fees = [("congestion_surcharge", "congestion_surcharge", F64), ("airport_fee", None, I32)]
        else:
            fees = [("congestion_surcharge", "congestion_surcharge", F64),
                    ("Airport_fee" if new else "airport_fee", "airport_fee", F64)]
        return [("VendorID", "VendorID", ids), ("tpep_pickup_datetime", "pickup", TS),
                ("tpep_dropoff_datetime", "dropoff", TS), ("passenger_count", "passenger_count", codes),
                ("trip_distance", "trip_distance", F64), ("RatecodeID", "RatecodeID", codes),
                ("store_and_fwd_flag", "store_and_fwd_flag", STR), ("PULocationID", "PULocationID", ids),
                ("DOLocationID", "DOLocationID", ids), ("payment_type", "payment_type", I64), *money,
                ("improvement_surcharge", "improvement_surcharge", F64), ("total_amount", "total_amount", F64),
                *fees, *cbd]
    if service == "green":
        codes = I64 if new else F64
        congestion = ("congestion_surcharge", "congestion_surcharge", F64) if m >= _D(2019, 1, 1) \
            else ("congestion_surcharge", None, NULL)
        return [("VendorID", "VendorID", ids), ("lpep_pickup_datetime", "pickup", TS),
                ("lpep_dropoff_datetime", "dropoff", TS), ("store_and_fwd_flag", "store_and_fwd_flag", STR),
                ("RatecodeID", "RatecodeID", codes), ("PULocationID", "PULocationID", ids),
                ("DOLocationID", "DOLocationID", ids), ("passenger_count", "passenger_count", codes),
                ("trip_distance", "trip_distance", F64), *money, ("ehail_fee", None, NULL),
                ("improvement_surcharge", "improvement_surcharge", F64), ("total_amount", "total_amount", F64),
                ("payment_type", "payment_type", codes), ("trip_type", "trip_type", codes), congestion, *cbd]
    if service == "fhv":
        return [("dispatching_base_num", "dispatching_base_num", STR), ("pickup_datetime", "pickup_datetime", TS),
                ("dropOff_datetime", "dropOff_datetime", TS), ("PUlocationID", "PUlocationID", F64),
                ("DOlocationID", "DOlocationID", F64),
                ("SR_Flag", "SR_Flag", I32) if m < _D(2019, 2, 1) else ("SR_Flag", None, NULL),
                ("Affiliated_base_number", "Affiliated_base_number", STR)]
    if service == "fhvhv":
        strings = ("hvfhs_license_num", "dispatching_base_num", "originating_base_num")
        times = ("request_datetime", "on_scene_datetime", "pickup_datetime", "dropoff_datetime")
        fhvhv_money = ("base_passenger_fare", "tolls", "bcf", "sales_tax", "congestion_surcharge", "airport_fee",
                       "tips", "driver_pay")
        flags = ("shared_request_flag", "shared_match_flag", "access_a_ride_flag", "wav_request_flag",
                 "wav_match_flag")
        return [*[(c, c, STR) for c in strings], *[(c, c, TS) for c in times],
                ("PULocationID", "PULocationID", I64), ("DOLocationID", "DOLocationID", I64),
                ("trip_miles", "trip_miles", F64), ("trip_time", "trip_time", I64),
                *[(c, c, F64) for c in fhvhv_money], *[(c, c, STR) for c in flags], *cbd]
    raise ValueError(f"unknown TLC service {service!r}")


_Y16 = ("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
        "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,"
        "tolls_amount,improvement_surcharge,total_amount")
_G16 = ("VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,"
        "DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,"
        "improvement_surcharge,total_amount,payment_type,trip_type")
#: (service, first month, header exactly as published, the _values() key of each column). Newest last.
CSV_ERAS: tuple[tuple[str, dt.date, str, tuple[str | None, ...]], ...] = (
    ("yellow", _D(2016, 7, 1), _Y16, ("VendorID", "pickup", "dropoff", "passenger_count", "trip_distance",
                                      "RatecodeID", "store_and_fwd_flag", "PULocationID", "DOLocationID",
                                      "payment_type", *_TAXI_MONEY, "improvement_surcharge", "total_amount")),
    ("yellow", _D(2019, 1, 1), _Y16 + ",congestion_surcharge",
     ("VendorID", "pickup", "dropoff", "passenger_count", "trip_distance", "RatecodeID", "store_and_fwd_flag",
      "PULocationID", "DOLocationID", "payment_type", *_TAXI_MONEY, "improvement_surcharge", "total_amount",
      "congestion_surcharge")),
    ("green", _D(2016, 7, 1), _G16, ("VendorID", "pickup", "dropoff", "store_and_fwd_flag", "RatecodeID",
                                     "PULocationID", "DOLocationID", "passenger_count", "trip_distance",
                                     *_TAXI_MONEY, "ehail_fee", "improvement_surcharge", "total_amount",
                                     "payment_type", "trip_type")),
    ("green", _D(2019, 1, 1), _G16 + ",congestion_surcharge",
     ("VendorID", "pickup", "dropoff", "store_and_fwd_flag", "RatecodeID", "PULocationID", "DOLocationID",
      "passenger_count", "trip_distance", *_TAXI_MONEY, "ehail_fee", "improvement_surcharge", "total_amount",
      "payment_type", "trip_type", "congestion_surcharge")),
    ("fhv", _D(2015, 1, 1), "Dispatching_base_num,Pickup_date,locationID",
     ("dispatching_base_num", "pickup_datetime", "PUlocationID")),
    ("fhv", _D(2017, 1, 1), "Dispatching_base_num,Pickup_DateTime,DropOff_datetime,PUlocationID,DOlocationID",
     ("dispatching_base_num", "pickup_datetime", "dropOff_datetime", "PUlocationID", "DOlocationID")),
    ("fhv", _D(2017, 7, 1),
     '"Dispatching_base_num","Pickup_DateTime","DropOff_datetime","PUlocationID","DOlocationID","SR_Flag"',
     ("dispatching_base_num", "pickup_datetime", "dropOff_datetime", "PUlocationID", "DOlocationID", "SR_Flag")),
    # 2018 carried the base twice, under two names: the real rows have it in the first, the second empty.
    ("fhv", _D(2018, 1, 1), '"Pickup_DateTime","DropOff_datetime","PUlocationID","DOlocationID","SR_Flag",'
                            '"Dispatching_base_number","Dispatching_base_num"',
     ("pickup_datetime", "dropOff_datetime", "PUlocationID", "DOlocationID", "SR_Flag", "dispatching_base_num",
      None)),
    ("fhv", _D(2019, 1, 1), "dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag",
     ("dispatching_base_num", "pickup_datetime", "dropOff_datetime", "PUlocationID", "DOlocationID", "SR_Flag")),
    ("fhvhv", _D(2019, 2, 1),
     "hvfhs_license_num,dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag",
     ("hvfhs_license_num", "dispatching_base_num", "pickup_datetime", "dropoff_datetime", "PULocationID",
      "DOLocationID", "SR_Flag")),
)


def csv_era(service: str, month: str | dt.date) -> tuple[str, tuple[str | None, ...]]:
    """(header line, value keys) of the CSV the TLC published for that month; ValueError if none exists."""
    m = parse_month(month) if isinstance(month, str) else month
    eras = [e for e in CSV_ERAS if e[0] == service and e[1] <= m]
    if not eras or m > LAST_CSV_MONTH:
        raise ValueError(f"no {service} CSV with zone ids for {month_label(m)}: the CSV eras generated run from "
                         f"{min((e[1] for e in CSV_ERAS if e[0] == service), default='-')} to "
                         f"{month_label(LAST_CSV_MONTH)}; use parquet")
    _, _, header, keys = eras[-1]
    return header, keys


def is_published(service: str, month: str, fmt: str) -> bool:
    """Whether the TLC (or the CSV mirror, for csv.gz) ever served this file."""
    m = parse_month(month)
    if m < get_service(service).first_month_date:
        return False
    if fmt == "csv.gz":
        try:
            csv_era(service, m)
        except ValueError:
            return False
    return True
