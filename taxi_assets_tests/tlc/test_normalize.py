"""Normalisation and raw reading against the real TLC schema history and real extracts.

Expectations here are written from the data (headers_by_month.txt, the CSV text, the parquet file), not from
normalize.py's tables, so a wrong alias or a silent all-null column fails a test.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_assets.tlc.normalize import (
    KNOWN_IGNORED,
    SECONDARY_ALIASES,
    SchemaError,
    canonical_name,
    csv_read_options,
    holds_canonical,
    plan_normalization,
)
from taxi_assets.tlc.raw_reader import RawFileError, count_raw_rows, iter_canonical_batches
from taxi_assets.tlc.services import FHV, GREEN, SERVICES, SOURCE_MONTH, TS, YELLOW
from taxi_assets.tlc.months import next_month, parse_month

try:
    from taxi_assets_tests.samples import head_lines, sample, samples_path, write_csv_gz
except ImportError:  # tests folder imported as rootdir-less modules
    from samples import head_lines, sample, samples_path, write_csv_gz


# Real source names (exactly as the TLC spells them) whose canonical name differs; any other accepted
# source name must already be the canonical name.
RENAMES = {
    "VendorID": "vendor_id",
    "tpep_pickup_datetime": "pickup_datetime",
    "tpep_dropoff_datetime": "dropoff_datetime",
    "lpep_pickup_datetime": "pickup_datetime",
    "lpep_dropoff_datetime": "dropoff_datetime",
    "RatecodeID": "ratecode_id",
    "PULocationID": "pickup_location_id",
    "DOLocationID": "dropoff_location_id",
    "PUlocationID": "pickup_location_id",
    "DOlocationID": "dropoff_location_id",
    "locationID": "pickup_location_id",  # fhv 2015-2016: the pickup zone
    "Dispatching_base_num": "dispatching_base_num",
    "Pickup_date": "pickup_datetime",
    "Pickup_DateTime": "pickup_datetime",
    "DropOff_datetime": "dropoff_datetime",
    "SR_Flag": "sr_flag",
}
# fhv 2018 has both; the base is in the first and the second (every other year's name) is empty.
EXPECTED_FALLBACKS = {"Dispatching_base_number"}
LATLON_WORDS = ("longitude", "latitude", "start_lon", "end_lon")


def read_all(path, service, month, fmt, name=None, **kw) -> pa.Table:
    """The file's canonical batches as one table of exactly `service.schema`: text a parquet file
    stores dictionary-encoded comes as dictionaries (the same in every batch), decoded here."""
    batches = list(iter_canonical_batches(path, service, month, fmt, name or Path(path).name, **kw))
    assert all(holds_canonical(b.schema, service) for b in batches)
    return pa.Table.from_batches(batches, schema=batches[0].schema if batches else service.schema).cast(service.schema)


# ---------------------------------------------------------------------------------------------------------------
# Every CSV header 2009-2020, one era (service + distinct header) per test, every month asserted.


def _header_lines() -> list[tuple[str, str]]:
    path = samples_path() / "heads" / "headers_by_month.txt"
    if not path.is_file():
        return []
    return [tuple(line.split("|", 1)) for line in path.read_text().splitlines() if line.strip()]


def _eras():
    lines = _header_lines()
    if not lines:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no headers_by_month.txt under {samples_path()}"))]
    eras: dict[tuple[str, str], list[dt.date]] = defaultdict(list)
    for name, header in lines:
        service, sep, month = name.partition("_tripdata_")
        if sep:
            eras[(service, header)].append(parse_month(month))
    return [
        pytest.param((service, header, months), id=f"{service}-{min(months):%Y-%m}..{max(months):%Y-%m}-{len(months)}m")
        for (service, header), months in sorted(eras.items(), key=lambda kv: (kv[0][0], min(kv[1])))
    ]


def test_headers_file_covers_every_month_once():
    lines = _header_lines() or pytest.skip(f"no headers_by_month.txt under {samples_path()}")
    months = defaultdict(list)
    others = []
    for name, _ in lines:
        service, sep, month = name.partition("_tripdata_")
        (months[service].append(parse_month(month)) if sep else others.append(name))
    assert others == ["taxi+_zone_lookup"], "an unexpected non-trip line: extend the era test"
    spans = {s: (min(m), max(m), len(m)) for s, m in months.items()}
    assert spans == {
        "yellow": (dt.date(2009, 1, 1), dt.date(2020, 6, 1), 138),
        "green": (dt.date(2013, 8, 1), dt.date(2020, 6, 1), 83),
        "fhv": (dt.date(2015, 1, 1), dt.date(2020, 6, 1), 66),
        "fhvhv": (dt.date(2019, 2, 1), dt.date(2020, 6, 1), 16),
    }
    assert all(len(set(m)) == len(m) for m in months.values())


def _expected_outcome(service: str, header: list[str], month: dt.date) -> str:
    """'accept', 'scope' (before the service's first month) or 'latlon', decided from the data."""
    if service == "yellow" and month < dt.date(2011, 1, 1):
        return "scope"
    if any(word in name.lower() for name in header for word in LATLON_WORDS):
        return "latlon"
    return "accept"


def _synthetic_value(typ: pa.DataType, i: int, month: dt.date) -> tuple[str, object]:
    """A distinct value per source column position, as CSV text and as the expected Python value."""
    if pa.types.is_timestamp(typ):
        value = dt.datetime(month.year, month.month, 2, 3, i, 5)
        return value.strftime("%Y-%m-%d %H:%M:%S"), value
    if pa.types.is_integer(typ):
        return str(10 + i), 10 + i
    if pa.types.is_floating(typ):
        return f"{i}.25", i + 0.25
    return f"S{i}", f"S{i}"


@pytest.mark.parametrize("era", _eras())
def test_every_csv_header_normalizes_or_is_refused(era, tmp_path):
    service_name, header_text, months = era
    service = SERVICES[service_name]
    header = next(csv.reader([header_text]))
    header = [h.strip() for h in header]
    declared = {f.name: f.type for f in service.schema}
    for month in months:
        outcome = _expected_outcome(service_name, header, month)
        expected_sources = {}
        for name in header:
            if outcome == "accept" and name not in EXPECTED_FALLBACKS:
                canonical = RENAMES.get(name, name)
                assert canonical in declared, f"{name} of a {service_name} file has no canonical column"
                expected_sources[canonical] = name
        file_name = service.file_name(month, "csv.gz")
        row1, expected1 = [], {}
        for i, name in enumerate(header):
            canonical = RENAMES.get(name, name) if name not in EXPECTED_FALLBACKS else None
            text, value = _synthetic_value(declared.get(canonical, pa.string()), i, month)
            row1.append(text)
            if canonical in expected_sources:
                expected1[canonical] = value
        # second row: only the pickup time, everything else empty -> nulls
        row2 = [row1[i] if RENAMES.get(h, h) == "pickup_datetime" else "" for i, h in enumerate(header)]
        path = write_csv_gz(tmp_path / file_name, [header_text.encode(), ",".join(row1).encode(),
                                                   ",".join(row2).encode()])
        if outcome != "accept":
            with pytest.raises(SchemaError) as err:
                read_all(path, service, month, "csv.gz", file_name)
            message = str(err.value)
            assert f"{service_name} {month:%Y-%m}" in message and file_name in message
            assert ("lat/lon" in message and "zone ids" in message) if outcome == "latlon" else "out of scope" in message
            continue
        schema = pa.schema([(h, pa.string()) for h in header])
        plan = plan_normalization(schema, service, month, file_name)
        assert plan.sources == expected_sources
        assert not plan.ignored
        assert set(plan.fallbacks.values()) == EXPECTED_FALLBACKS & set(header)
        assert "pickup_location_id" in plan.sources and "pickup_datetime" in plan.sources
        table = read_all(path, service, month, "csv.gz", file_name)
        assert table.schema.equals(service.schema)
        rows = table.to_pylist()
        assert len(rows) == 2
        for column in declared:
            if column == SOURCE_MONTH:
                assert rows[0][column] == rows[1][column] == month
            elif column in expected1:
                assert rows[0][column] == expected1[column], column
                if column != "pickup_datetime":
                    assert rows[1][column] is None, column
            else:
                assert rows[0][column] is None and rows[1][column] is None, column
        assert rows[1]["pickup_datetime"] == expected1["pickup_datetime"]


def test_lat_lon_eras_are_exactly_the_known_ones():
    lines = _header_lines() or pytest.skip(f"no headers_by_month.txt under {samples_path()}")
    refused = defaultdict(list)
    for name, header in lines:
        service, sep, month = name.partition("_tripdata_")
        if sep and _expected_outcome(service, next(csv.reader([header])), parse_month(month)) != "accept":
            refused[service].append(parse_month(month))
    assert {s: (min(m), max(m), len(m)) for s, m in refused.items()} == {
        "yellow": (dt.date(2009, 1, 1), dt.date(2016, 6, 1), 90),
        "green": (dt.date(2013, 8, 1), dt.date(2016, 6, 1), 35),
    }


OLD_NAMES = {  # pre-2016 spellings: refused files today, but the alias table must still know them
    "Trip_Pickup_DateTime": "pickup_datetime", "Trip_Dropoff_DateTime": "dropoff_datetime",
    "Lpep_dropoff_datetime": "dropoff_datetime", "surcharge": "extra", "Fare_Amt": "fare_amount",
    "Tip_Amt": "tip_amount", "Tolls_Amt": "tolls_amount", "Total_Amt": "total_amount", "rate_code": "ratecode_id",
    "Rate_Code": "ratecode_id", "RateCodeID": "ratecode_id", "store_and_forward": "store_and_fwd_flag",
    "Passenger_Count": "passenger_count", "Store_and_fwd_flag": "store_and_fwd_flag", "Ehail_fee": "ehail_fee",
    "vendor_id": "vendor_id",
}


def test_alias_table_knows_every_historical_column():
    lines = _header_lines() or pytest.skip(f"no headers_by_month.txt under {samples_path()}")
    unknown = set()
    for name, header in lines:
        if "_tripdata_" not in name:
            continue
        for column in next(csv.reader([header])):
            column = column.strip()
            expected = OLD_NAMES.get(column) or RENAMES.get(column)
            got = canonical_name(column)
            if expected:
                assert got == expected, column
            elif got is None and column.lower() not in KNOWN_IGNORED and column.lower() not in SECONDARY_ALIASES:
                unknown.add(column)
    assert not unknown


# ---------------------------------------------------------------------------------------------------------------
# Real file heads


def _head_names():
    heads = samples_path() / "heads"
    names = sorted(p.name for p in heads.glob("*_tripdata_*.csv")) if heads.is_dir() else []
    return names or [pytest.param("missing", marks=pytest.mark.skip(reason=f"no heads under {samples_path()}"))]


def _ts(text: str):
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S") if text else None


@pytest.mark.parametrize("name", _head_names())
def test_real_heads_read_as_csv_gz(name, tmp_path):
    lines = head_lines(f"heads/{name}")
    service = SERVICES[name.split("_tripdata_")[0]]
    month = parse_month(name.split("_tripdata_")[1][:7])
    path = write_csv_gz(tmp_path / (name + ".gz"), lines)
    table = read_all(path, service, month, "csv.gz", name)
    text_rows = list(csv.DictReader(io.StringIO(b"\n".join(lines).decode())))
    assert table.num_rows == len(text_rows) == len(lines) - 1 == count_raw_rows(path, "csv.gz")
    assert table.schema.equals(service.schema)
    header = list(text_rows[0])
    pick = next(h for h in header if "pickup_datetime" in h.lower())
    drop = next(h for h in header if "dropoff_datetime" in h.lower())
    pu = next(h for h in header if h.lower() == "pulocationid")
    rows = table.to_pylist()
    for text, row in zip(text_rows, rows, strict=True):
        assert row["pickup_datetime"] == _ts(text[pick])
        assert row["dropoff_datetime"] == _ts(text[drop])
        assert row["pickup_location_id"] == (int(text[pu]) if text[pu] else None)
        assert row[SOURCE_MONTH] == month
    start, end = dt.datetime(month.year, month.month, 1), dt.datetime(*next_month(month).timetuple()[:3])
    pickups = [r["pickup_datetime"] for r in rows]
    # Late-reported trips are real: 5 of the first 8 yellow 2019-01 rows were picked up in Nov/Dec 2018.
    assert sum(start <= p < end for p in pickups) >= 3
    assert all(start - dt.timedelta(days=62) <= p < end for p in pickups)
    ids = [r[c] for r in rows for c in ("pickup_location_id", "dropoff_location_id") if r[c] is not None]
    assert all(isinstance(i, int) and 1 <= i <= 265 for i in ids)
    assert ids or service is FHV  # fhv 2019-01 starts with bases that report no zones


def test_yellow_2020_07_head_normalizes_value_for_value(tmp_path):
    raw = sample("yellow_tripdata_2020-07_head.csv").read_bytes()
    text_rows = list(csv.reader(io.StringIO(raw.decode())))
    header, data = text_rows[0], text_rows[1:]
    assert len(header) == 18 and "airport_fee" not in {h.lower() for h in header}
    assert len(data) == 266 and all(len(r) == 18 for r in data)  # the file's last line is complete
    path = tmp_path / "yellow_tripdata_2020-07.csv.gz"
    path.write_bytes(gzip.compress(raw))
    month = dt.date(2020, 7, 1)
    table = read_all(path, YELLOW, month, "csv.gz", batch_rows=100)
    assert table.num_rows == 266 == count_raw_rows(path, "csv.gz")
    assert table["airport_fee"].null_count == 266 and table["cbd_congestion_fee"].null_count == 266
    plan = plan_normalization(pa.schema([(h, pa.string()) for h in header]), YELLOW, month, path.name)
    assert plan.absent == ("airport_fee", "cbd_congestion_fee") and plan.ignored == ()
    types = {f.name: f.type for f in YELLOW.schema}

    def parse(value: str, typ: pa.DataType):
        if value == "":
            return None
        if pa.types.is_timestamp(typ):
            return _ts(value)
        if pa.types.is_integer(typ):
            return int(value)
        return float(value) if pa.types.is_floating(typ) else value

    got = table.to_pylist()
    for text, row in zip(data, got, strict=True):
        for name, value in zip(header, text, strict=True):
            canonical = RENAMES.get(name, name)
            assert row[canonical] == parse(value, types[canonical]), (canonical, value)
    assert got[0]["pickup_datetime"] == dt.datetime(2020, 7, 1, 0, 25, 32)
    assert got[0]["pickup_location_id"] == 238 and got[0]["dropoff_location_id"] == 75
    assert got[-1]["passenger_count"] == 3 and got[-1]["total_amount"] == 12.8


def test_green_2020_10_pandas_parquet_normalizes():
    path = sample("green_tripdata_2020-10_sample1000.parquet")
    source = pq.read_table(path)
    month = dt.date(2020, 10, 1)
    plan = plan_normalization(source.schema, GREEN, month, path.name)
    assert plan.ignored == ("__index_level_0__",)
    assert plan.absent == ("cbd_congestion_fee",)
    batches = list(iter_canonical_batches(path, GREEN, month, "parquet", path.name, batch_rows=256))
    assert [b.num_rows for b in batches] == [256, 256, 256, 232]
    table = read_all(path, GREEN, month, "parquet", batch_rows=256)
    assert table.schema.equals(GREEN.schema)
    assert table["ehail_fee"].null_count == 1000
    assert table["pickup_datetime"].to_pylist() == source["lpep_pickup_datetime"].to_pylist()
    assert table["pickup_location_id"].to_pylist() == source["PULocationID"].to_pylist()
    assert table["ratecode_id"].to_pylist() == source["RatecodeID"].to_pylist()
    assert table["total_amount"].to_pylist() == source["total_amount"].to_pylist()
    assert set(table[SOURCE_MONTH].to_pylist()) == {month}
    assert count_raw_rows(path, "parquet") == 1000


# ---------------------------------------------------------------------------------------------------------------
# Parquet type drift, with small tables


MONTH = dt.date(2024, 1, 1)
FILE = "yellow_tripdata_2024-01.parquet"


def yellow_source(n: int = 2, **columns: pa.Array | None) -> pa.Table:
    """A TLC-parquet-shaped yellow table; keyword = column to replace (None drops it)."""
    t0 = dt.datetime(2024, 1, 5, 8, 0)
    base = {
        "VendorID": pa.array([1 + i % 2 for i in range(n)], pa.int64()),
        "tpep_pickup_datetime": pa.array([t0] * n, pa.timestamp("us")),
        "tpep_dropoff_datetime": pa.array([t0 + dt.timedelta(minutes=9)] * n, pa.timestamp("us")),
        "passenger_count": pa.array([1.0] * n),
        "trip_distance": pa.array([1.5] * n),
        "RatecodeID": pa.array([1.0] * n),
        "store_and_fwd_flag": pa.array(["N"] * n),
        "PULocationID": pa.array([161] * n, pa.int64()),
        "DOLocationID": pa.array([237] * n, pa.int64()),
        "payment_type": pa.array([1] * n, pa.int64()),
        "fare_amount": pa.array([9.3] * n),
        "extra": pa.array([2.5] * n),
        "mta_tax": pa.array([0.5] * n),
        "tip_amount": pa.array([2.0] * n),
        "tolls_amount": pa.array([0.0] * n),
        "improvement_surcharge": pa.array([1.0] * n),
        "total_amount": pa.array([17.8] * n),
        "congestion_surcharge": pa.array([2.5] * n),
        "airport_fee": pa.array([0.0] * n),
    }
    for name, arr in columns.items():
        if arr is None:
            base.pop(name)
        else:
            base[name] = arr
    return pa.table(base)


def through_parquet(table: pa.Table, tmp_path: Path, service=YELLOW, month=MONTH, name=FILE) -> pa.Table:
    path = tmp_path / name
    pq.write_table(table, path)
    return read_all(path, service, month, "parquet", name)


@pytest.mark.parametrize("id_type", [pa.int64(), pa.int32()])
def test_int64_and_int32_ids_both_land_as_int32(id_type, tmp_path):
    src = yellow_source(VendorID=pa.array([1, 7], id_type), PULocationID=pa.array([264, 1], id_type),
                        DOLocationID=pa.array([265, 132], id_type))
    out = through_parquet(src, tmp_path)
    assert out.schema.equals(YELLOW.schema)
    assert out["vendor_id"].to_pylist() == [1, 7]
    assert out["pickup_location_id"].to_pylist() == [264, 1]
    assert out["dropoff_location_id"].to_pylist() == [265, 132]


@pytest.mark.parametrize("arr", [pa.array([1.0, None, 6.0]), pa.array([1, None, 6], pa.int64()),
                                 pa.array([1, None, 6], pa.int32())], ids=["double", "int64", "int32"])
def test_passenger_count_and_ratecode_drift(arr, tmp_path):
    out = through_parquet(yellow_source(3, passenger_count=arr, RatecodeID=arr), tmp_path)
    assert out["passenger_count"].type == pa.int32() and out["ratecode_id"].type == pa.int32()
    assert out["passenger_count"].to_pylist() == [1, None, 6] == out["ratecode_id"].to_pylist()


@pytest.mark.parametrize("name", ["airport_fee", "Airport_fee"])
def test_airport_fee_either_case_keeps_values(name, tmp_path):
    src = yellow_source(airport_fee=None).append_column(name, pa.array([1.75, 0.0]))
    assert through_parquet(src, tmp_path)["airport_fee"].to_pylist() == [1.75, 0.0]


def test_both_airport_fee_spellings_are_refused(tmp_path):
    src = yellow_source().append_column("Airport_fee", pa.array([1.75, 0.0]))
    with pytest.raises(SchemaError, match=r"yellow 2024-01 \(yellow_tripdata_2024-01.parquet\).*airport_fee"):
        through_parquet(src, tmp_path)


@pytest.mark.parametrize("arr", [pa.nulls(2), pa.nulls(2, pa.int32())], ids=["null-typed", "int32-all-null"])
def test_all_null_columns_cast_to_anything(arr, tmp_path):
    src = yellow_source(airport_fee=arr, congestion_surcharge=arr, store_and_fwd_flag=arr, RatecodeID=arr)
    out = through_parquet(src, tmp_path)
    assert out.schema.equals(YELLOW.schema)
    for column in ("airport_fee", "congestion_surcharge", "store_and_fwd_flag", "ratecode_id"):
        assert out[column].null_count == 2
    plan = plan_normalization(src.schema, YELLOW, MONTH, FILE)  # present, just empty: not "absent"
    assert "airport_fee" in plan.sources and plan.absent == ("cbd_congestion_fee",)


@pytest.mark.parametrize("unit", ["ns", "us", "ms", "s"])
def test_timestamp_units_become_microseconds(unit, tmp_path):
    t = dt.datetime(2024, 1, 31, 23, 59, 58)
    src = yellow_source(tpep_pickup_datetime=pa.array([t, None], pa.timestamp(unit)),
                        tpep_dropoff_datetime=pa.array([t + dt.timedelta(seconds=1)] * 2, pa.timestamp(unit)))
    out = through_parquet(src, tmp_path)
    assert out["pickup_datetime"].type == TS
    assert out["pickup_datetime"].to_pylist() == [t, None]
    assert out["dropoff_datetime"].to_pylist() == [t + dt.timedelta(seconds=1)] * 2


def test_cbd_congestion_fee_present_or_absent(tmp_path):
    with_fee = through_parquet(yellow_source(cbd_congestion_fee=pa.array([0.75, 0.0])), tmp_path)
    assert with_fee["cbd_congestion_fee"].to_pylist() == [0.75, 0.0]
    without = through_parquet(yellow_source(), tmp_path)
    assert without["cbd_congestion_fee"].to_pylist() == [None, None]


def test_column_order_follows_the_canonical_schema(tmp_path):
    src = yellow_source()
    shuffled = src.select(list(reversed(src.column_names)))
    out = through_parquet(shuffled, tmp_path)
    assert out.schema.equals(YELLOW.schema)
    assert out.to_pylist() == through_parquet(src, tmp_path).to_pylist()


@pytest.mark.parametrize("column,arr,canonical", [
    ("passenger_count", pa.array([1.0, 1.5]), "passenger_count"),
    ("RatecodeID", pa.array([1.0, float("nan")]), "ratecode_id"),
    ("VendorID", pa.array([1, 3_000_000_000], pa.int64()), "vendor_id"),
    ("PULocationID", pa.array([1.0, 1e12]), "pickup_location_id"),
])
def test_lossy_casts_are_refused_naming_the_column(column, arr, canonical, tmp_path):
    with pytest.raises(SchemaError) as err:
        through_parquet(yellow_source(**{column: arr}), tmp_path)
    message = str(err.value)
    assert canonical in message and column in message and FILE in message and "yellow 2024-01" in message


def test_a_renamed_column_is_refused_not_nulled(tmp_path):
    src = yellow_source(tip_amount=None).append_column("tip_amount_usd", pa.array([2.0, 0.0]))
    with pytest.raises(SchemaError, match=r"tip_amount_usd.*tip_amount.*rename"):
        through_parquet(src, tmp_path)


@pytest.mark.parametrize("column,canonical", [("tpep_pickup_datetime", "pickup_datetime"),
                                              ("PULocationID", "pickup_location_id"),
                                              ("DOLocationID", "dropoff_location_id")])
def test_missing_required_column_is_refused(column, canonical, tmp_path):
    with pytest.raises(SchemaError, match=rf"yellow 2024-01 .*required.*{canonical}"):
        through_parquet(yellow_source(**{column: None}), tmp_path)


def test_parquet_of_a_csv_lat_lon_month_has_zone_ids_and_is_fine(tmp_path):
    src = yellow_source()  # the TLC re-published 2011-2016 as parquet with zone ids
    out = through_parquet(src, tmp_path, month=dt.date(2012, 5, 1), name="yellow_tripdata_2012-05.parquet")
    assert out["pickup_location_id"].to_pylist() == [161, 161]
    with pytest.raises(SchemaError, match=r"yellow 2010-12 \(yellow_tripdata_2010-12.parquet\): out of scope"):
        through_parquet(src, tmp_path, month=dt.date(2010, 12, 1), name="yellow_tripdata_2010-12.parquet")


def fhv_source(sr_flag: pa.Array | None, **extra: pa.Array) -> pa.Table:
    t0 = dt.datetime(2018, 3, 1, 7, 0)
    cols = {"Pickup_DateTime": pa.array([t0, t0], pa.timestamp("ns")),
            "DropOff_datetime": pa.array([None, t0], pa.timestamp("ns")),
            "PUlocationID": pa.array([None, 4.0]), "DOlocationID": pa.array([None, None], pa.float64())}
    if sr_flag is not None:
        cols["SR_Flag"] = sr_flag
    cols.update(extra)
    return pa.table(cols)


@pytest.mark.parametrize("arr,expected", [
    (pa.nulls(2), [None, None]),
    (pa.array([1, None], pa.int64()), [1, None]),
    (pa.array([1.0, None]), [1, None]),
    (pa.array(["1", ""]), [1, None]),
    (pa.array([None, " 1 "]), [None, 1]),
], ids=["null", "int64", "double", "string", "padded-string"])
def test_fhv_sr_flag_any_type_to_int32(arr, expected, tmp_path):
    src = fhv_source(arr, Dispatching_base_num=pa.array(["B00001", "B00002"]))
    out = through_parquet(src, tmp_path, FHV, dt.date(2018, 3, 1), "fhv_tripdata_2018-03.parquet")
    assert out.schema.equals(FHV.schema)
    assert out["sr_flag"].to_pylist() == expected
    assert out["pickup_location_id"].to_pylist() == [None, 4]
    assert out["dropoff_datetime"].to_pylist() == [None, dt.datetime(2018, 3, 1, 7, 0)]


def test_fhv_2018_two_base_columns_coalesce(tmp_path):
    """Real 2018 rows carry the base in Dispatching_base_number and leave Dispatching_base_num empty:
    the base must survive; where both are filled, every other year's name wins."""
    both = fhv_source(None, Dispatching_base_number=pa.array(["B02510", "B99999"]),
                      Dispatching_base_num=pa.array([None, "B00002"]))
    plan = plan_normalization(both.schema, FHV, dt.date(2018, 3, 1), "fhv_tripdata_2018-03.csv.gz")
    assert plan.sources["dispatching_base_num"] == "Dispatching_base_num"
    assert plan.fallbacks == {"dispatching_base_num": "Dispatching_base_number"}
    assert plan.ignored == ()
    out = through_parquet(both, tmp_path, FHV, dt.date(2018, 3, 1), "fhv_tripdata_2018-03.parquet")
    assert out["dispatching_base_num"].to_pylist() == ["B02510", "B00002"]
    only = fhv_source(None, Dispatching_base_number=pa.array(["B99999", "B99998"]))
    out = through_parquet(only, tmp_path, FHV, dt.date(2018, 3, 1), "fhv_tripdata_2018-03.parquet")
    assert out["dispatching_base_num"].to_pylist() == ["B99999", "B99998"]


# ---------------------------------------------------------------------------------------------------------------
# Streaming, CSV typing, broken files


def test_text_a_parquet_file_stores_as_a_dictionary_comes_as_one_of_the_same_values(tmp_path):
    """The file's dictionary codes are kept (no strings expanded, none hashed again by the lake's
    writer); the same dictionary type in every batch, a batch of nulls too. Text stored plain, or
    read from a CSV, comes as strings."""
    flags = ["N", "Y", None, "N"] * 250 + [None] * 200
    source = yellow_source(len(flags), store_and_fwd_flag=pa.array(flags))
    encoded = tmp_path / "encoded" / FILE
    encoded.parent.mkdir()
    pq.write_table(source, encoded, row_group_size=400)  # a dictionary a row group, as the reader meets them
    assert pq.ParquetFile(encoded).metadata.row_group(0).column(6).has_dictionary_page
    batches = list(iter_canonical_batches(encoded, YELLOW, MONTH, "parquet", FILE, batch_rows=200))
    assert len(batches) == 6 and batches[-1].column("store_and_fwd_flag").null_count == 200
    assert {b.schema.field("store_and_fwd_flag").type for b in batches} == {pa.dictionary(pa.int32(), pa.string())}
    assert all(b.schema.field(n).type == YELLOW.schema.field(n).type for b in batches for n in YELLOW.schema.names if n != "store_and_fwd_flag")
    assert read_all(encoded, YELLOW, MONTH, "parquet", batch_rows=200)["store_and_fwd_flag"].to_pylist() == flags

    plain = tmp_path / "plain" / FILE
    plain.parent.mkdir()
    pq.write_table(source, plain, use_dictionary=False)
    batches = list(iter_canonical_batches(plain, YELLOW, MONTH, "parquet", FILE, batch_rows=200))
    assert all(b.schema.equals(YELLOW.schema) for b in batches)
    assert pa.Table.from_batches(batches)["store_and_fwd_flag"].to_pylist() == flags


def test_parquet_batches_are_bounded(tmp_path):
    n = 1000
    out = list(iter_canonical_batches(
        _write(tmp_path, yellow_source(n)), YELLOW, MONTH, "parquet", FILE, batch_rows=128))
    assert len(out) == 8 and max(b.num_rows for b in out) == 128 and sum(b.num_rows for b in out) == n


def _write(tmp_path: Path, table: pa.Table) -> Path:
    pq.write_table(table, tmp_path / FILE)
    return tmp_path / FILE


YELLOW_HEADER = ("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
                 "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,"
                 "tolls_amount,improvement_surcharge,total_amount,congestion_surcharge")


def _yellow_csv_line(i: int, congestion: str = "2.5", passengers: str = "1", flag: str = "N") -> str:
    return (f"2,2024-01-03 10:{i % 60:02d}:00,2024-01-03 11:00:00,{passengers},1.20,1,{flag},{1 + i % 265},"
            f"{1 + (i * 7) % 265},1,7,0.5,0.5,1,0,0.3,9.8,{congestion}")


def test_csv_types_never_inferred_from_first_block(tmp_path):
    # 4,000 rows whose first 3,000 have empty congestion_surcharge and store_and_fwd_flag, tiny blocks.
    lines = [YELLOW_HEADER] + [_yellow_csv_line(i, "" if i < 3000 else "2.5", flag="" if i < 3000 else "Y")
                               for i in range(4000)]
    path = write_csv_gz(tmp_path / "yellow_tripdata_2024-01.csv.gz", [s.encode() for s in lines])
    batches = list(iter_canonical_batches(path, YELLOW, MONTH, "csv.gz", path.name, batch_rows=200))
    assert len(batches) > 10
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 4000 == count_raw_rows(path, "csv.gz")
    assert table["congestion_surcharge"].null_count == 3000
    assert table["congestion_surcharge"].to_pylist()[3000:] == [2.5] * 1000
    assert table["store_and_fwd_flag"].to_pylist()[2999:3001] == [None, "Y"]
    assert table["pickup_location_id"].to_pylist()[:3] == [1, 2, 3]
    read, convert = csv_read_options(YELLOW_HEADER.split(",") + ["mystery"], YELLOW, MONTH, path.name)
    assert set(convert.column_types) == set(read.column_names)
    assert convert.column_types["tpep_pickup_datetime"] == TS
    assert convert.column_types["mystery"] == pa.string()


@pytest.mark.parametrize("value", ["1.5", "two"])
def test_bad_csv_integer_is_refused_naming_the_column(value, tmp_path):
    lines = [YELLOW_HEADER, _yellow_csv_line(0), _yellow_csv_line(1, passengers=value)]
    path = write_csv_gz(tmp_path / "yellow_tripdata_2024-01.csv.gz", [s.encode() for s in lines])
    with pytest.raises(SchemaError, match=r"yellow 2024-01 \(yellow_tripdata_2024-01.csv.gz\).*passenger_count"):
        read_all(path, YELLOW, MONTH, "csv.gz")


def test_csv_integers_written_as_floats_are_accepted(tmp_path):
    lines = [YELLOW_HEADER, _yellow_csv_line(0, passengers="2.0")]
    path = write_csv_gz(tmp_path / "yellow_tripdata_2024-01.csv.gz", [s.encode() for s in lines])
    assert read_all(path, YELLOW, MONTH, "csv.gz")["passenger_count"].to_pylist() == [2]


@pytest.mark.parametrize("fmt,content", [
    ("parquet", b"<html>403 Forbidden</html>"),
    ("csv.gz", b"not gzip at all"),
    ("csv.gz", gzip.compress(("\n".join([YELLOW_HEADER] + [_yellow_csv_line(i) for i in range(2000)])).encode())[:-40]),
], ids=["html-as-parquet", "not-gzip", "truncated-gzip"])
def test_corrupt_files_raise_clear_errors(fmt, content, tmp_path):
    path = tmp_path / f"yellow_tripdata_2024-01.{fmt}"
    path.write_bytes(content)
    with pytest.raises(RawFileError, match=rf"yellow 2024-01 \(yellow_tripdata_2024-01.{fmt}\)"):
        read_all(path, YELLOW, MONTH, fmt)
    with pytest.raises(RawFileError, match=path.name):
        count_raw_rows(path, fmt)
