"""A month at a real month's size (1.5M rows, like yellow 2021-01) through the whole chain, from a
fresh warehouse and then again over itself, on the embedded default (DuckDB) and on Postgres.

The other tests' months are 4k-80k rows, below DuckDB's 122,880-row row group: a first load that
lost every row of a real month passed them all. Timings are not asserted here (see `make bench`).
"""

from __future__ import annotations

import dagster as dg
import psycopg
import pyarrow.parquet as pq
import pytest

from devtools.generator import build_mirror
from devtools.mirror import MirrorServer
from taxi_assets.defs.assets.by_date import PARTITION_COLUMN, by_date_schema
from taxi_assets.tlc.months import parse_month
from taxi_assets.tlc.services import YELLOW

from taxi_assets_tests.conftest import make_pipeline
from taxi_assets_tests.storage.test_lake import dictionary_encoded

ROWS = 1_500_000
MONTH = "2021-01"


@pytest.fixture(scope="module")
def big_mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("big_mirror")
    build_mirror(root, ["yellow"], [MONTH], "parquet", ROWS)
    with MirrorServer(root) as server:
        yield server


def figures(pipeline) -> tuple:
    """Rows, and sums and bounds that change if any row or value is lost, doubled or altered."""
    wh = pipeline.warehouse
    return tuple(
        wh.query(
            f"SELECT COUNT(*) AS n, SUM(CAST(ROUND(total_amount * 100) AS BIGINT)) AS cents, SUM(pickup_location_id) AS zones, "
            f"MIN(pickup_datetime) AS first_pickup, MAX(dropoff_datetime) AS last_dropoff "
            f"FROM {wh.table_ref('yellow_trips')} WHERE source_month = DATE '{MONTH}-01'"
        ).to_pylist()[0].values()
    )


def load_twice(pipeline) -> None:
    assert pipeline.run("zones").success
    assert pipeline.run("yellow", MONTH).success
    days = pipeline.lake.month_files("trips/yellow", MONTH)
    kept = sum(pq.read_metadata(pipeline.lake.local_path(day)).num_rows for day in days)
    assert kept == pipeline.lake.read_manifest("trips/yellow", MONTH).rows
    rejected = pq.read_metadata(pipeline.lake.local_path(f"rejects/yellow/yellow_{MONTH}.parquet")).num_rows
    assert kept + rejected == ROWS and kept > ROWS * 0.9
    # a real month's trip times would overflow a dictionary: the lake writes them plain
    encoded = dictionary_encoded(pipeline.lake.local_path(days[len(days) // 2]))
    assert not encoded["pickup_datetime"] and not encoded["dropoff_datetime"] and encoded["pickup_location_id"], encoded
    # the raw file's dictionary-encoded text went to the day files as its codes, and reads back as text
    raw = pq.ParquetFile(pipeline.lake.local_path(f"raw/yellow/{MONTH}/{YELLOW.file_name(parse_month(MONTH), 'parquet')}"))
    assert raw.metadata.row_group(0).column(raw.schema_arrow.get_field_index("store_and_fwd_flag")).has_dictionary_page
    declared = by_date_schema(YELLOW).remove(by_date_schema(YELLOW).get_field_index(PARTITION_COLUMN))
    assert all(pq.read_schema(pipeline.lake.local_path(day)).remove_metadata().equals(declared) for day in days)
    first = figures(pipeline)
    assert first[0] == kept == pipeline.warehouse.count("yellow_trips", parse_month(MONTH))
    mart = pipeline.warehouse.read_month("yellow_daily_zone_mart", parse_month(MONTH))
    assert sum(mart.column("trips").to_pylist()) == kept

    assert pipeline.run("yellow", MONTH).success  # over itself: replaced, not appended
    assert figures(pipeline) == first
    assert pipeline.warehouse.count("yellow_trips") == kept


def test_real_size_month_on_the_embedded_default(tmp_path, big_mirror):
    with dg.instance_for_test() as instance:
        load_twice(make_pipeline(tmp_path, big_mirror, instance))


def test_real_size_month_on_postgres(tmp_path, big_mirror, postgres_url, pg_schema, monkeypatch):
    info = psycopg.conninfo.conninfo_to_dict(postgres_url)
    monkeypatch.setenv("TAXI_POSTGRES_URL", psycopg.conninfo.make_conninfo(postgres_url, password=info.get("password") or ""))
    with dg.instance_for_test() as instance:
        load_twice(make_pipeline(tmp_path, big_mirror, instance, TAXI_WAREHOUSE="postgres", TAXI_WAREHOUSE_SCHEMA=pg_schema))
