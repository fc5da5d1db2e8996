"""The generator must write what the TLC published: per-era raw schemas, the real CSV headers, exact row
counts, dirty rows at realistic rates, the same bytes for the same seed. These tests read the files back,
they do not trust return values."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from devtools import generator as gen

F64, I64, I32, STR, NULL = pa.float64(), pa.int64(), pa.int32(), pa.string(), pa.null()
TS = pa.timestamp("us")

#: Real headers, copied from the TLC's CSVs (shared/data/tlc/heads/headers_by_month.txt).
YELLOW_2019_HEADER = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
    "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,"
    "tolls_amount,improvement_surcharge,total_amount,congestion_surcharge"
)
GREEN_2019_HEADER = (
    "VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,"
    "DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,"
    "improvement_surcharge,total_amount,payment_type,trip_type,congestion_surcharge"
)
FHV_2019_HEADER = "dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag"
FHVHV_2019_HEADER = (
    "hvfhs_license_num,dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag"
)
SHARED_TLC = Path(os.environ.get("TAXI_SHARED_TLC", Path(__file__).resolve().parents[3] / "shared/data/tlc"))


def schema_of(path: Path) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in pq.read_schema(path)]


def share(mask: pa.Array) -> float:
    """Fraction of rows where mask is true (null counts as false)."""
    return pc.sum(pc.cast(pc.fill_null(mask, False), I64)).as_py() / len(mask)


def csv_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().split("\r\n")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generated")


def make(out: Path, service: str, month: str, fmt: str = "parquet", rows: int = 2_000, **kw) -> Path:
    suffix = "-".join(f"{k}{v}" for k, v in kw.items())
    path = out / f"{service}_{month}_{rows}{suffix}.{fmt}"
    if not path.exists():
        gen.generate_month(service, month, fmt, rows, path, **kw)
    return path


@pytest.fixture(scope="module")
def yellow_50k(out: Path) -> pa.Table:
    """One dirty 2021-03 yellow month, shared by the data-quality tests."""
    return pq.read_table(make(out, "yellow", "2021-03", rows=50_000, batch_rows=20_000))


# ------------------------------------------------------------------------------------ schemas


def test_yellow_2019_parquet_has_the_republished_19_columns(out: Path) -> None:
    codes = F64  # passenger_count / RatecodeID are doubles from 2018-07 to 2023-01
    assert schema_of(make(out, "yellow", "2019-03")) == [
        ("VendorID", I64), ("tpep_pickup_datetime", TS), ("tpep_dropoff_datetime", TS),
        ("passenger_count", codes), ("trip_distance", F64), ("RatecodeID", codes), ("store_and_fwd_flag", STR),
        ("PULocationID", I64), ("DOLocationID", I64), ("payment_type", I64), ("fare_amount", F64), ("extra", F64),
        ("mta_tax", F64), ("tip_amount", F64), ("tolls_amount", F64), ("improvement_surcharge", F64),
        ("total_amount", F64), ("congestion_surcharge", F64), ("airport_fee", I32),
    ]
    table = pq.read_table(make(out, "yellow", "2019-03"))
    assert table["airport_fee"].null_count == table.num_rows  # an all-null int32 column, as in the real files
    assert table["congestion_surcharge"].null_count < table.num_rows


def test_yellow_2023_02_drift(out: Path) -> None:
    before, after = dict(schema_of(make(out, "yellow", "2023-01"))), dict(schema_of(make(out, "yellow", "2023-02")))
    assert "airport_fee" in before and "Airport_fee" not in before
    assert "Airport_fee" in after and "airport_fee" not in after
    for name in ("VendorID", "PULocationID", "DOLocationID"):
        assert (before[name], after[name]) == (I64, I32)
    for name in ("passenger_count", "RatecodeID"):
        assert (before[name], after[name]) == (F64, I64)
    assert len(before) == len(after) == 19


def test_older_yellow_eras(out: Path) -> None:
    early = dict(schema_of(make(out, "yellow", "2018-06")))
    assert early["RatecodeID"] == early["passenger_count"] == I64  # double only from 2018-07
    assert dict(schema_of(make(out, "yellow", "2018-07")))["RatecodeID"] == F64
    assert early["congestion_surcharge"] == early["airport_fee"] == NULL  # all-null, typed null
    table = pq.read_table(make(out, "yellow", "2019-01"))
    assert table["congestion_surcharge"].null_count == table.num_rows  # the surcharge began 2019-02


@pytest.mark.parametrize("service", ["yellow", "green", "fhvhv"])
def test_cbd_congestion_fee_from_2025_01(out: Path, service: str) -> None:
    assert "cbd_congestion_fee" not in dict(schema_of(make(out, service, "2024-12", rows=500)))
    names = [n for n, _ in schema_of(make(out, service, "2025-01", rows=500))]
    assert names[-1] == "cbd_congestion_fee"


def test_green_schema(out: Path) -> None:
    schema = schema_of(make(out, "green", "2020-10"))
    assert [n for n, _ in schema] == GREEN_2019_HEADER.split(",")
    types = dict(schema)
    assert types["lpep_pickup_datetime"] == TS and types["ehail_fee"] == NULL
    assert types["trip_type"] == types["payment_type"] == F64
    table = pq.read_table(make(out, "green", "2020-10"))
    assert table["ehail_fee"].null_count == table.num_rows
    assert set(pc.unique(table["trip_type"]).to_pylist()) <= {1.0, 2.0, None}
    assert dict(schema_of(make(out, "green", "2018-12")))["congestion_surcharge"] == NULL


def test_fhv_schema_and_its_normal_nulls(out: Path) -> None:
    path = make(out, "fhv", "2019-05", rows=10_000)
    assert schema_of(path) == [
        ("dispatching_base_num", STR), ("pickup_datetime", TS), ("dropOff_datetime", TS), ("PUlocationID", F64),
        ("DOlocationID", F64), ("SR_Flag", NULL), ("Affiliated_base_number", STR),
    ]
    table = pq.read_table(path)
    assert 0.10 < share(pc.is_null(table["PUlocationID"])) < 0.30  # ordinary for fhv, not a defect
    assert dict(schema_of(make(out, "fhv", "2018-05")))["SR_Flag"] == I32


def test_fhvhv_schema_and_values(out: Path) -> None:
    path = make(out, "fhvhv", "2021-03", rows=10_000)
    flags = ["shared_request_flag", "shared_match_flag", "access_a_ride_flag", "wav_request_flag", "wav_match_flag"]
    money = ["base_passenger_fare", "tolls", "bcf", "sales_tax", "congestion_surcharge", "airport_fee", "tips",
             "driver_pay"]
    assert schema_of(path) == [
        ("hvfhs_license_num", STR), ("dispatching_base_num", STR), ("originating_base_num", STR),
        ("request_datetime", TS), ("on_scene_datetime", TS), ("pickup_datetime", TS), ("dropoff_datetime", TS),
        ("PULocationID", I64), ("DOLocationID", I64), ("trip_miles", F64), ("trip_time", I64),
        *[(m, F64) for m in money], *[(f, STR) for f in flags],
    ]
    table = pq.read_table(path)
    assert set(pc.unique(table["hvfhs_license_num"]).to_pylist()) == {"HV0003", "HV0004", "HV0005"}
    for flag in flags:
        assert set(pc.unique(table[flag]).to_pylist()) <= {"Y", "N"}
    assert share(pc.less_equal(table["request_datetime"], table["pickup_datetime"])) == 1.0
    # Lyft reports no on-scene time.
    lyft = pc.equal(table["hvfhs_license_num"], "HV0005")
    assert pc.filter(table["on_scene_datetime"], lyft).null_count == pc.sum(pc.cast(lyft, I64)).as_py()


def test_months_the_tlc_never_published_are_refused(out: Path) -> None:
    with pytest.raises(ValueError):
        gen.generate_month("fhvhv", "2019-01", "parquet", 10, out / "x.parquet")
    with pytest.raises(ValueError):
        gen.generate_month("yellow", "2022-01", "csv.gz", 10, out / "x.csv.gz")


# ---------------------------------------------------------------------------------------- csv.gz


@pytest.mark.parametrize(
    ("service", "month", "header"),
    [("yellow", "2019-01", YELLOW_2019_HEADER), ("yellow", "2021-07", YELLOW_2019_HEADER),
     ("green", "2019-09", GREEN_2019_HEADER), ("fhv", "2019-01", FHV_2019_HEADER),
     ("fhvhv", "2020-01", FHVHV_2019_HEADER),
     ("fhv", "2018-03", '"Pickup_DateTime","DropOff_datetime","PUlocationID","DOlocationID","SR_Flag",'
                        '"Dispatching_base_number","Dispatching_base_num"')],
)
def test_csv_header_is_the_real_one(out: Path, service: str, month: str, header: str) -> None:
    lines = csv_lines(make(out, service, month, "csv.gz", rows=1_234))
    assert lines[0] == header
    assert lines[-1] == "" and len(lines) == 1_234 + 2  # CRLF after every row, the last one included
    assert all(line.count(",") == header.count(",") for line in lines[1:-1])


def test_csv_headers_match_headers_by_month() -> None:
    """Every CSV month we can generate, against the real header list (needs ../shared)."""
    listing = SHARED_TLC / "heads" / "headers_by_month.txt"
    if not listing.exists():
        pytest.skip(f"{listing} not found (set TAXI_SHARED_TLC to the shared data/tlc folder)")
    checked = 0
    for line in listing.read_text().splitlines():
        name, _, header = line.partition("|")
        service, _, month = name.partition("_tripdata_")
        if month and gen.is_published(service, month, "csv.gz"):
            assert gen.csv_era(service, month)[0] == header, name
            checked += 1
    assert checked > 150


def test_csv_values_look_like_the_tlc_files(out: Path) -> None:
    path = make(out, "yellow", "2019-03", "csv.gz", rows=5_000)
    first = csv_lines(path)[1].split(",")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first[1])
    assert re.fullmatch(r"-?\d+\.\d+", first[10])  # fare like "12.5" or "7.0"
    table = pacsv.read_csv(path)  # pyarrow reads the gzip by extension
    assert table.num_rows == 5_000 and table.column_names == YELLOW_2019_HEADER.split(",")
    assert table["tpep_pickup_datetime"].type == pa.timestamp("s")
    assert table["VendorID"].null_count > 0  # empty fields are nulls
    assert gzip.GzipFile(path).read(1)  # a plain single gzip stream


# ------------------------------------------------------------------------------- rows, determinism


@pytest.mark.parametrize("fmt", ["parquet", "csv.gz"])
def test_row_count_is_exact_across_batches(out: Path, fmt: str) -> None:
    path = gen.generate_month("green", "2020-02", fmt, 12_345, out / f"batches.{fmt}", batch_rows=5_000).path
    if fmt == "parquet":
        meta = pq.ParquetFile(path).metadata
        assert (meta.num_rows, meta.num_row_groups) == (12_345, 3)  # written batch by batch
    else:
        assert len(csv_lines(path)) == 12_345 + 2


@pytest.mark.parametrize("fmt", ["parquet", "csv.gz"])
def test_same_seed_same_bytes(out: Path, fmt: str) -> None:
    one = gen.generate_month("yellow", "2020-01", fmt, 3_000, out / f"a.{fmt}", seed=7)
    two = gen.generate_month("yellow", "2020-01", fmt, 3_000, out / f"b.{fmt}", seed=7)
    other_seed = gen.generate_month("yellow", "2020-01", fmt, 3_000, out / f"c.{fmt}", seed=8)
    other_month = gen.generate_month("yellow", "2020-02", fmt, 3_000, out / f"d.{fmt}", seed=7)
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.sha256 == two.sha256
    assert len({one.sha256, other_seed.sha256, other_month.sha256}) == 3


# ------------------------------------------------------------------------------------- dirty rows


def test_group_nulls_go_together(yellow_50k: pa.Table) -> None:
    group = ["VendorID", "passenger_count", "RatecodeID", "store_and_fwd_flag", "payment_type"]
    masks = [pc.is_null(yellow_50k[c]) for c in group]
    for mask in masks[1:]:
        assert mask.equals(masks[0])
    assert 0.02 <= share(masks[0]) <= 0.05


def test_dirty_rates(yellow_50k: pa.Table) -> None:
    t = yellow_50k
    assert 0.008 <= share(pc.equal(t["passenger_count"], 0)) <= 0.025
    assert 0.008 <= share(pc.equal(t["trip_distance"], 0)) <= 0.025
    negative = pc.less(t["total_amount"], 0)
    assert 0.001 <= share(negative) <= 0.006
    for money in ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge"):
        assert pc.max(pc.filter(t[money], negative)).as_py() <= 0  # a refund is negative throughout
    assert 0 < share(pc.less(t["tpep_dropoff_datetime"], t["tpep_pickup_datetime"])) <= 0.003
    start, end = dt.datetime(2021, 3, 1), dt.datetime(2021, 4, 1)
    outside = pc.or_(pc.less(t["tpep_pickup_datetime"], pa.scalar(start, TS)),
                     pc.greater_equal(t["tpep_pickup_datetime"], pa.scalar(end, TS)))
    assert 0 < share(outside) <= 0.002
    assert share(pc.equal(pc.year(t["tpep_pickup_datetime"]), 2021)) > 0.998
    bad = pc.or_(pc.less(t["PULocationID"], 1), pc.greater(t["PULocationID"], 265))
    assert 0 < share(bad) <= 0.002


def test_clean_months_have_none_of_it(out: Path) -> None:
    t = pq.read_table(make(out, "yellow", "2021-03", rows=20_000, dirty=False))
    assert t["passenger_count"].null_count == 0
    assert share(pc.equal(t["passenger_count"], 0)) == share(pc.less(t["total_amount"], 0)) == 0
    assert share(pc.less(t["tpep_dropoff_datetime"], t["tpep_pickup_datetime"])) == 0
    assert pc.min(t["tpep_pickup_datetime"]).as_py() >= dt.datetime(2021, 3, 1)
    assert pc.max(t["tpep_pickup_datetime"]).as_py() < dt.datetime(2021, 4, 1)


def test_values_are_plausible(yellow_50k: pa.Table) -> None:
    t = yellow_50k
    hours = pc.hour(t["tpep_pickup_datetime"])
    assert share(pc.equal(hours, 18)) > 3 * share(pc.equal(hours, 4))  # an evening peak, a night trough
    assert len(pc.unique(pc.day(t["tpep_pickup_datetime"]))) >= 31
    miles = pc.quantile(t["trip_distance"], q=[0.05, 0.5, 0.95]).to_pylist()
    assert 0.3 <= miles[1] <= 4 and miles[2] <= 20
    parts = ["fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge",
             "congestion_surcharge"]
    total = t[parts[0]]
    for part in parts[1:]:
        total = pc.add(total, pc.fill_null(t[part], 0))
    assert pc.max(pc.abs(pc.subtract(total, t["total_amount"]))).as_py() < 0.011
    cash = pc.equal(t["payment_type"], 2)
    assert pc.max(pc.filter(t["tip_amount"], cash)).as_py() == 0  # cash tips are not recorded
    assert share(pc.greater(pc.filter(t["tip_amount"], pc.equal(t["payment_type"], 1)), 0)) > 0.7
    passengers = pc.value_counts(t["passenger_count"]).to_pylist()
    assert max(passengers, key=lambda v: v["counts"])["values"] == 1
    zones = pc.filter(t["PULocationID"], pc.and_(pc.greater_equal(t["PULocationID"], 1),
                                                 pc.less_equal(t["PULocationID"], 265)))
    assert len(zones) / t.num_rows > 0.998 and pc.max(zones).as_py() == 265


# ------------------------------------------------------------------------------------ zone lookup


def test_pickups_have_a_weekly_and_an_hourly_rhythm(yellow_50k: pa.Table) -> None:
    """Charts of generated months look like real ones: quiet Sundays and early mornings."""
    pickups = yellow_50k["tpep_pickup_datetime"]
    days = pc.cast(pickups, pa.date32()).to_pylist()
    in_month = [d for d in days if d.month == days[len(days) // 2].month]
    per_weekday = [0] * 7
    for d in in_month:
        per_weekday[d.weekday()] += 1
    month_days = set(in_month)
    mean = [per_weekday[w] / sum(1 for d in month_days if d.weekday() == w) for w in range(7)]
    assert mean[3] > 1.2 * mean[6] and mean[4] > 1.2 * mean[6]  # Thursday, Friday vs Sunday
    hours = pc.value_counts(pc.hour(pickups)).to_pylist()
    by_hour = {v["values"]: v["counts"] for v in hours}
    assert by_hour[18] > 4 * by_hour[4]


def test_zone_lookup_shape(out: Path) -> None:
    path = gen.generate_zone_lookup(out / "misc" / "taxi_zone_lookup.csv").path
    raw = path.read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[0] == b'"LocationID","Borough","Zone","service_zone"'
    assert len(lines) == 267 and lines[-1] == b"" and b"\n" not in raw.replace(b"\r\n", b"")
    assert lines[1] == b'1,"EWR","Newark Airport","EWR"'
    assert lines[132] == b'132,"Queens","JFK Airport","Airports"'
    assert lines[138] == b'138,"Queens","LaGuardia Airport","Airports"'
    assert lines[264:266] == [b'264,"Unknown","NV","N/A"', b'265,"Unknown","NA","N/A"']
    assert all(re.fullmatch(rb'\d+(,"[^"]+"){3}', line) for line in lines[1:-1])
    table = pacsv.read_csv(path)
    boroughs = {b["values"]: b["counts"] for b in pc.value_counts(table["Borough"]).to_pylist()}
    assert boroughs == {"EWR": 1, "Queens": 69, "Bronx": 43, "Manhattan": 69, "Staten Island": 20,
                        "Brooklyn": 61, "Unknown": 2}
    assert set(table["service_zone"].to_pylist()) == {"EWR", "Boro Zone", "Yellow Zone", "Airports", "N/A"}
    assert len(set(table["Zone"].to_pylist())) == 265


def test_zone_na_is_a_name_not_a_null(out: Path) -> None:
    """"NA" (zone 265) and "N/A" (service_zone) are in every default null list; a reader that lets strings
    be null (pandas' default, Arrow's strings_can_be_null=True) silently loses them."""
    data = gen.generate_zone_lookup(out / "lookup.csv").path.read_bytes()

    def read(**convert) -> pa.Table:
        return pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(**convert))

    trap = read(strings_can_be_null=True)
    assert trap["Zone"][264].as_py() is None and trap["service_zone"].null_count == 2
    for kept in (read(), read(strings_can_be_null=False), read(null_values=[], strings_can_be_null=True)):
        assert kept["Zone"][263:].to_pylist() == ["NV", "NA"]
        assert kept["service_zone"].null_count == 0


# ----------------------------------------------------------------------------------------- mirror


def test_build_mirror_layout_and_rerun(tmp_path: Path) -> None:
    files = gen.build_mirror(tmp_path, ["yellow", "fhvhv"], ["2019-01", "2019-02"], "parquet", 1_000)
    paths = sorted(str(f.path.relative_to(tmp_path)) for f in files)
    # fhvhv starts 2019-02: the real site has no 2019-01 file, so neither does the mirror.
    assert paths == ["misc/taxi_zone_lookup.csv", "trip-data/fhvhv_tripdata_2019-02.parquet",
                     "trip-data/yellow_tripdata_2019-01.parquet", "trip-data/yellow_tripdata_2019-02.parquet"]
    yellow = [f for f in files if f.path.name.startswith("yellow")]
    assert yellow[0].sha256 != yellow[1].sha256  # each month has its own seed
    sidecar = json.loads((tmp_path / "trip-data/yellow_tripdata_2019-01.parquet.generated.json").read_text())
    assert sidecar | {"sha256": None} == {"generator_version": gen.GENERATOR_VERSION, "service": "yellow",
                                          "month": "2019-01", "fmt": "parquet", "rows": 1_000, "seed": 0,
                                          "dirty": True, "sha256": None}
    assert sidecar["sha256"] == yellow[0].sha256
    assert pq.read_metadata(yellow[0].path).num_rows == 1_000

    mtimes = {f.path: f.path.stat().st_mtime_ns for f in files}
    again = gen.build_mirror(tmp_path, ["yellow", "fhvhv"], ["2019-01", "2019-02"], "parquet", 1_000)
    assert all(f.reused for f in again if f.path.suffix == ".parquet")
    assert {f.path: f.path.stat().st_mtime_ns for f in again} == mtimes
    assert [f.sha256 for f in again] == [f.sha256 for f in files]

    bigger = gen.build_mirror(tmp_path, ["yellow"], ["2019-01"], "parquet", 1_500)
    assert not bigger[0].reused and pq.read_metadata(bigger[0].path).num_rows == 1_500


def test_build_mirror_csv_layout(tmp_path: Path) -> None:
    files = gen.build_mirror(tmp_path, ["green", "fhv"], ["2021-07", "2021-08"], "csv.gz", 500)
    assert sorted(str(f.path.relative_to(tmp_path)) for f in files) == [
        "fhv/fhv_tripdata_2021-07.csv.gz", "green/green_tripdata_2021-07.csv.gz", "misc/taxi_zone_lookup.csv"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--out", str(tmp_path), "--services", "yellow,green", "--months", "2023-01..2023-03", "--rows", "300"]
    assert gen.main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 7 and all(line.startswith("wrote ") for line in printed)
    assert (tmp_path / "trip-data" / "green_tripdata_2023-03.parquet").exists()
    gen.main(argv)
    assert all(line.startswith("kept ") for line in capsys.readouterr().out.splitlines())


def test_fhv_2018_csv_carries_the_base_in_the_first_of_its_two_columns(tmp_path):
    """As the TLC published it: Dispatching_base_number filled, Dispatching_base_num empty; read
    back, every row keeps its base."""
    from taxi_assets.tlc.raw_reader import iter_canonical_batches
    from taxi_assets.tlc.services import FHV
    from taxi_assets.tlc.months import parse_month

    path = tmp_path / "fhv_tripdata_2018-05.csv.gz"
    gen.generate_month("fhv", "2018-05", "csv.gz", 2_000, path)
    with gzip.open(path, "rt") as fh:
        header, first = fh.readline().strip(), fh.readline().strip()
    assert header.endswith('"Dispatching_base_number","Dispatching_base_num"')
    assert first.split(",")[-2] and first.split(",")[-1] == ""
    table = pa.Table.from_batches(list(iter_canonical_batches(path, FHV, parse_month("2018-05"), "csv.gz", path.name)))
    assert table.num_rows == 2_000 and table.column("dispatching_base_num").null_count == 0
