"""The values of a month's trips, service by service: times, zones, distances, money, dirty rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from devtools.generator.common import (
    _D,
    _NULL_INT,
    F64,
    I64,
    STR,
    TS,
    _clip,
    _const,
    _money,
    _null_where,
    _Rng,
    _seconds,
    _sum,
    _ts,
)
from devtools.generator.zones import AIRPORT_IDS, _zone_weights
from taxi_assets.tlc.months import next_month

# ------------------------------------------------------------------------------------------- values

#: Share of pickups in each hour of the day: a 4-5 am trough, a morning shoulder, an evening peak.
_HOURLY = (3.0, 2.1, 1.4, 1.0, 0.8, 1.0, 2.0, 3.4, 4.3, 4.4, 4.3, 4.4, 4.6, 4.6, 4.8, 5.0, 5.0, 5.4, 6.0,
           5.8, 5.1, 5.0, 4.7, 3.9)
#: Relative pickups by weekday, Monday first: busiest Thursday and Friday, quietest Sunday (the TLC's
#: yellow trips per day; the other services have the same rhythm, a little flatter).
_WEEKLY = (0.92, 1.0, 1.04, 1.08, 1.07, 0.98, 0.80)
#: Pickup times seen in real files that are absurd but valid: 2008/2009 clock resets and a 2088 typo.
_ABSURD = tuple(_seconds(t) for t in (dt.datetime(2008, 12, 31, 23, 58, 4), dt.datetime(2009, 1, 1, 0, 10, 11),
                                      dt.datetime(2088, 1, 24, 0, 15, 42)))


def _pickups(rng: _Rng, month: dt.date, dirty: bool) -> tuple[pa.Array, pa.Array]:
    """Pickup epoch seconds spread over the month with a weekly and an hourly rhythm, and the hour.

    The file runs in pickup order, as the TLC's do (every genuine head in shared/data/tlc starts in
    the month's first hour): row k of the file falls at quantile (k + u) / rows of the month's days,
    and each batch is sorted on the time. Order matters to what a month costs downstream: the
    lake's day folders get a few large row groups instead of one small one per batch.
    """
    start, end = _seconds(month), _seconds(next_month(month))
    days = (end - start) // 86400
    weights = np.array([_WEEKLY[(month + dt.timedelta(days=d)).weekday()] for d in range(days)])
    quantile = (np.arange(rng.first_row, rng.first_row + rng.n) + rng.uniform().to_numpy()) / max(rng.rows, 1)
    day = np.minimum(np.searchsorted(np.cumsum(weights) / weights.sum(), quantile, side="right"), days - 1)
    hour = rng.choice(tuple(range(24)), _HOURLY, I64)
    secs = pc.add(pc.add(pa.array(day * 86400.0), pc.multiply(pc.cast(hour, F64), 3600)),
                  pc.floor(pc.multiply(rng.uniform(), 3600)))
    order = pc.sort_indices(secs)
    secs, hour = pc.add(secs.take(order), float(start)), hour.take(order)
    if dirty:
        # Outside the month: mostly the evening before, some just after, a few absurd years.
        where = rng.uniform()
        before = pc.add(float(start - 86400), pc.floor(pc.multiply(where, 86400)))
        after = pc.add(float(end), pc.floor(pc.multiply(where, 7200)))
        absurd = pc.cast(rng.choice(_ABSURD, (1, 1, 1), I64), F64)
        outside = pc.if_else(pc.less(where, 0.85), before, pc.if_else(pc.less(where, 0.93), after, absurd))
        secs = pc.if_else(rng.defect("outside_month"), outside, secs)
    return secs, hour


def _locations(rng: _Rng, service: str, dirty: bool) -> tuple[pa.Array, pa.Array]:
    ids, weights = _zone_weights(service)
    pu = rng.choice(ids, weights, I64)
    do = pc.if_else(rng.chance(0.08), pu, rng.choice(ids, weights, I64))  # short hops inside one zone
    if dirty:
        bad = rng.choice((0, 999), (1, 1), I64)
        pu = pc.if_else(rng.defect("bad_location"), bad, pu)
        do = pc.if_else(rng.defect("bad_location_dropoff"), bad, do)
    return pu, do


def _trip(rng: _Rng, median_minutes: float, median_mph: float) -> tuple[pa.Array, pa.Array]:
    """Duration in seconds and distance in miles; distance grows with duration at a noisy speed."""
    minutes = _clip(rng.lognormal(median_minutes, 0.6), 1.0, 180.0)
    miles = _clip(pc.divide(pc.multiply(minutes, rng.lognormal(median_mph, 0.35)), 60.0), 0.3, 40.0)
    return pc.floor(pc.multiply(minutes, 60.0)), _money(miles)


def _dropoffs(rng: _Rng, pickup: pa.Array, duration: pa.Array, dirty: bool) -> pa.Array:
    dropoff = pc.add(pickup, duration)
    if dirty:
        dropoff = pc.if_else(rng.defect("dropoff_before_pickup"), pc.subtract(pickup, duration), dropoff)
    return dropoff


def _taxi(rng: _Rng, service: str, month: dt.date, dirty: bool) -> dict[str, pa.Array]:
    """Yellow and green rows under their parquet names, values as the fare rules of the era set them."""
    green = service == "green"
    n = rng.n
    pickup, hour = _pickups(rng, month, dirty)
    duration, distance = _trip(rng, 11.0 if not green else 10.0, 9.0 if not green else 11.0)
    pu, do = _locations(rng, service, dirty)
    if green:
        vendor = rng.choice((1, 2), (15, 85), I64)
    else:  # vendors 6 and 7 only show up in recent files
        vendor = rng.choice((1, 2, 6, 7), (25, 74, 0.3, 0.7) if month >= _D(2024, 1, 1) else (25, 75, 0, 0), I64)
    passengers = rng.choice((1, 2, 3, 4, 5, 6), (72, 14, 4, 2, 4.5, 3.5), I64)
    ratecode = rng.choice((1, 2, 3, 4, 5, 99), (95, 2.5, 0.3, 0.3, 1.7, 0.2), I64)
    payment = rng.choice((1, 2, 3, 4), (70, 27, 1.8, 1.2), I64)
    flag = rng.choice(("N", "Y"), (99.5, 0.5), STR)

    new_fares = month >= _D(2023, 1, 1)
    minutes = pc.divide(duration, 60.0)
    metered = pc.add(pc.add(3.0, pc.multiply(2.5, distance)), pc.multiply(0.2, minutes))
    metered = pc.divide(pc.round(pc.multiply(metered, 2.0)), 2.0)  # the meter moved in 50-cent steps
    fare = pc.if_else(pc.equal(ratecode, 2), 70.0 if new_fares else 52.0, metered)
    night = pc.or_(pc.greater_equal(hour, 20), pc.less(hour, 6))
    peak = pc.and_(pc.greater_equal(hour, 16), pc.less(hour, 20))
    extra = pc.if_else(night, 0.5, pc.if_else(peak, 1.0, 0.0))
    mta_tax = pc.if_else(rng.chance(0.98), 0.5, 0.0)
    improvement = _const(1.0 if new_fares else 0.3 if month >= _D(2015, 1, 1) else 0.0, n)
    tolls = pc.if_else(rng.chance(0.04), 6.55, 0.0)
    tipped = pc.and_(pc.equal(payment, 1), rng.chance(0.88))
    tip = pc.if_else(tipped, _money(pc.multiply(fare, _clip(rng.lognormal(0.2, 0.25), 0.05, 0.6))), 0.0)

    zero = _const(0.0, n)
    congestion = pa.nulls(n, F64)
    if month >= _D(2019, 2, 1):  # the surcharge began on 2019-02-01
        congestion = pc.if_else(rng.chance(0.1 if green else 0.92), 2.75 if green else 2.5, zero)
    airport = pa.nulls(n, F64)
    if month >= _D(2022, 1, 1) and not green:
        airport = pc.if_else(pc.is_in(pu, pa.array([132, 138], I64)), 1.75 if new_fares else 1.25, zero)
    cbd = pa.nulls(n, F64)
    if month >= _D(2025, 1, 1):
        cbd = pc.if_else(rng.chance(0.45), 0.75, zero)

    money = {"fare_amount": fare, "extra": extra, "mta_tax": mta_tax, "tip_amount": tip, "tolls_amount": tolls,
             "improvement_surcharge": improvement, "congestion_surcharge": congestion, "airport_fee": airport,
             "cbd_congestion_fee": cbd}
    money["total_amount"] = _money(_sum(*money.values()))

    if dirty:
        refund = rng.defect("refund")
        for name, arr in money.items():  # -0.0 + 0.0 == +0.0, so no "-0" in the CSV
            money[name] = pc.if_else(refund, pc.add(pc.negate(arr), 0.0), arr)
        payment = pc.if_else(refund, pc.if_else(rng.chance(0.5), 3, 4), payment)
        passengers = pc.if_else(rng.defect("zero_passengers"), 0, passengers)
        distance = pc.if_else(rng.defect("zero_distance"), 0.0, distance)

    cols = {
        "VendorID": vendor, "pickup": _ts(pickup), "dropoff": _ts(_dropoffs(rng, pickup, duration, dirty)),
        "passenger_count": passengers, "trip_distance": distance, "RatecodeID": ratecode,
        "store_and_fwd_flag": flag, "PULocationID": pu, "DOLocationID": do, "payment_type": payment,
        "ehail_fee": pa.nulls(n, F64),
        "trip_type": pc.if_else(pc.equal(ratecode, 5), 2, rng.choice((1, 2), (97, 3), I64)),
        **money,
    }
    if dirty:
        group = rng.defect("group_null")
        for name in ("VendorID", "passenger_count", "RatecodeID", "store_and_fwd_flag", "payment_type",
                     "trip_type"):
            cols[name] = _null_where(group, cols[name])
    return cols


_FHV_BASES = tuple(f"B{n:05d}" for n in (1, 8, 9, 13, 14, 37, 53, 111, 112, 149, 221, 225, 254, 256, 310, 381,
                                         647, 821, 900, 1051, 1145, 1231, 1239, 1312, 1437, 1899, 2049, 2285,
                                         2536, 2550, 2800, 2877, 2930, 3016, 3060, 3285, 3404))


def _fhv(rng: _Rng, month: dt.date, dirty: bool) -> dict[str, pa.Array]:
    """Livery and black-car rows: few columns, and null zones are ordinary (bases did not report them)."""
    n = rng.n
    pickup, _ = _pickups(rng, month, dirty)
    duration, _ = _trip(rng, 18.0, 12.0)
    pu, do = _locations(rng, "fhv", dirty)
    base = rng.choice(_FHV_BASES, (1,) * len(_FHV_BASES), STR)
    affiliated = pc.if_else(rng.chance(0.85), base, rng.choice(_FHV_BASES, (1,) * len(_FHV_BASES), STR))
    has_dropoff = month >= _D(2017, 1, 1)  # 2015-2016 files record only the pickup
    dropoff = _ts(_dropoffs(rng, pickup, duration, dirty)) if has_dropoff else pa.nulls(n, TS)
    shared = pc.if_else(rng.chance(0.03), 1, _NULL_INT) if month >= _D(2017, 7, 1) else pa.nulls(n, I64)
    return {
        "dispatching_base_num": base, "pickup_datetime": _ts(pickup), "dropOff_datetime": dropoff,
        "PUlocationID": _null_where(rng.chance(0.18), pu),
        "DOlocationID": _null_where(rng.chance(0.12), do) if has_dropoff else pa.nulls(n, I64),
        "SR_Flag": shared, "Affiliated_base_number": _null_where(rng.chance(0.03), affiliated),
    }


_HV_BASES = {"HV0002": ("B02907",), "HV0003": ("B02764", "B02682", "B02617", "B02512", "B02598", "B02765",
                                                "B02864", "B02869", "B02871", "B02872", "B02875", "B02887"),
             "HV0004": ("B02800",), "HV0005": ("B02510",)}


def _fhvhv(rng: _Rng, month: dt.date, dirty: bool) -> dict[str, pa.Array]:
    """Uber/Lyft/Via/Juno rows: request -> on scene -> pickup -> dropoff, fares with their fees."""
    n = rng.n
    shares = {"HV0002": 2 if month < _D(2020, 1, 1) else 0, "HV0003": 72,
              "HV0004": 2 if month < _D(2022, 1, 1) else 0, "HV0005": 26}
    company = rng.choice(tuple(shares), tuple(shares.values()), STR)
    uber = pc.equal(company, "HV0003")
    uber_base = rng.choice(_HV_BASES["HV0003"], (1,) * len(_HV_BASES["HV0003"]), STR)
    base = pc.if_else(uber, uber_base, pc.if_else(pc.equal(company, "HV0005"), "B02510",
                                                  pc.if_else(pc.equal(company, "HV0004"), "B02800", "B02907")))
    pickup, _ = _pickups(rng, month, dirty)
    duration, miles = _trip(rng, 16.0, 11.0)
    pu, do = _locations(rng, "fhvhv", dirty)
    wait = pc.floor(pc.multiply(_clip(rng.lognormal(5.0, 0.5), 1.0, 30.0), 60.0))
    on_scene = pc.subtract(pickup, pc.floor(pc.multiply(rng.uniform(), 120.0)))

    minutes = pc.divide(duration, 60.0)
    fare = _money(pc.add(pc.add(5.0, pc.multiply(1.6, miles)), pc.multiply(0.6, minutes)))
    airport_trip = pc.or_(pc.is_in(pu, pa.array(AIRPORT_IDS, I64)), pc.is_in(do, pa.array(AIRPORT_IDS, I64)))
    zero = _const(0.0, n)
    shared_request = rng.choice(("N", "Y"), (95, 5) if month < _D(2020, 4, 1) else (100, 0), STR)
    if dirty:
        fare = pc.if_else(rng.chance(0.0005), pc.negate(fare), fare)
        miles = pc.if_else(rng.chance(0.005), 0.0, miles)
    cols = {
        "hvfhs_license_num": company, "dispatching_base_num": base,
        "originating_base_num": _null_where(pc.invert(uber), base),
        "request_datetime": _ts(pc.subtract(pickup, wait)),
        "on_scene_datetime": _null_where(pc.invert(uber), _ts(on_scene)),
        "pickup_datetime": _ts(pickup), "dropoff_datetime": _ts(_dropoffs(rng, pickup, duration, dirty)),
        "PULocationID": pu, "DOLocationID": do, "trip_miles": miles, "trip_time": pc.cast(duration, I64),
        "base_passenger_fare": fare, "tolls": pc.if_else(rng.chance(0.05), 6.55, zero),
        "bcf": _money(pc.multiply(fare, 0.025)), "sales_tax": _money(pc.multiply(fare, 0.08875)),
        "congestion_surcharge": pc.if_else(rng.chance(0.55), 2.75, zero),
        "airport_fee": pc.if_else(airport_trip, 2.5, zero),
        "tips": pc.if_else(rng.chance(0.18), _money(pc.multiply(fare, rng.lognormal(0.15, 0.4))), zero),
        "driver_pay": _money(pc.multiply(fare, 0.72)),
        "shared_request_flag": shared_request,
        "shared_match_flag": pc.if_else(pc.and_(pc.equal(shared_request, "Y"), rng.chance(0.6)), "Y", "N"),
        "access_a_ride_flag": rng.choice(("N", "Y"), (99.8, 0.2), STR),
        "wav_request_flag": rng.choice(("N", "Y"), (95, 5), STR),
        "wav_match_flag": rng.choice(("N", "Y"), (92, 8), STR),
        "cbd_congestion_fee": pc.if_else(rng.chance(0.4), 1.5, zero) if month >= _D(2025, 1, 1) else zero,
    }
    # The 2019-2020 CSVs carry SR_Flag = 1 for shared requests, empty otherwise.
    cols["SR_Flag"] = pc.if_else(pc.equal(shared_request, "Y"), 1, _NULL_INT)
    return cols


def _values(service: str, rng: _Rng, month: dt.date, dirty: bool) -> dict[str, pa.Array]:
    if service in ("yellow", "green"):
        return _taxi(rng, service, month, dirty)
    return _fhv(rng, month, dirty) if service == "fhv" else _fhvhv(rng, month, dirty)
