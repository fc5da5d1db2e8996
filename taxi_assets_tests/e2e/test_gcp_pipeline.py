"""The bar: the demo's months through the real pipeline with the lake on the GCS emulator and the
warehouse on the BigQuery emulator give the same rows, row counts and mart values as the embedded
default (local lake + DuckDB); re-running a month changes nothing and leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from devtools.generator import build_mirror
from taxi_assets.tlc.columns import describe_column
from taxi_assets.tlc.marts import mart_table, trips_table
from devtools.mirror import MirrorServer
from taxi_assets.tlc.services import get_service
from taxi_assets.tlc.months import parse_month

from taxi_assets_tests.conftest import Pipeline, make_pipeline

#: The demo's services and months (devtools/demo.py: yellow and green, 2023-01..2023-03).
DEMO = [("yellow", "2023-01"), ("yellow", "2023-02"), ("yellow", "2023-03"), ("green", "2023-01"), ("green", "2023-02"), ("green", "2023-03")]
ROWS = 1_500
VERSION = re.compile(r"_\d{8}T\d+Z-[0-9a-f]{8}-")


@pytest.fixture(scope="module")
def demo_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorServer]:
    root = tmp_path_factory.mktemp("demo-mirror")
    for service in ("yellow", "green"):
        build_mirror(root, [service], sorted({m for s, m in DEMO if s == service}), "parquet", ROWS)
    with MirrorServer(root, missing_status=403) as server:
        yield server


def rows(table) -> list[dict]:
    out = [{k: (v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v) for k, v in r.items()} for r in table.to_pylist()]
    return sorted(out, key=lambda r: json.dumps(r, default=str, sort_keys=True))


def same(a: list[dict], b: list[dict], what: str) -> None:
    assert len(a) == len(b), f"{what}: {len(a)} rows vs {len(b)}"
    for x, y in zip(a, b):
        assert x.keys() == y.keys(), what
        for key in x:
            if isinstance(x[key], float) and isinstance(y[key], float):
                assert math.isclose(x[key], y[key], rel_tol=1e-12, abs_tol=0.011), (what, key, x, y)
            else:
                assert x[key] == y[key], (what, key, x, y)


def snapshot(p: Pipeline, service: str, month: str) -> dict[str, list[dict]]:
    wh, day = p.warehouse, parse_month(month)
    svc = get_service(service)
    return {
        "trips": rows(wh.read_month(trips_table(svc), day)),
        "rejects": rows(wh.read_month(f"{service}_rejects_summary", day)),
        "mart": rows(wh.read_month(mart_table(svc), day)),
    }


def run_all(p: Pipeline) -> None:
    assert p.run("zones").success
    for service, month in DEMO:
        result = p.run(service, month)
        assert result.success, f"{service} {month}"
        failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
        assert failed == [], f"{service} {month}: checks failed {failed}"


def test_gcs_and_bigquery_match_the_embedded_default(tmp_path: Path, demo_mirror, gcs_emulator, bigquery_emulator):
    bucket = gcs_emulator.new_bucket()
    dataset = bigquery_emulator.new_dataset_name()
    with dg.instance_for_test() as local_instance, dg.instance_for_test() as gcp_instance:
        local = make_pipeline(tmp_path / "local", demo_mirror, local_instance)
        cloud = make_pipeline(
            tmp_path / "gcp", demo_mirror, gcp_instance,
            TAXI_LAKE_URI=f"gs://{bucket}/lake", TAXI_WAREHOUSE="bigquery",
            TAXI_BQ_PROJECT=bigquery_emulator.project, TAXI_BQ_DATASET=dataset, TAXI_BQ_LOCATION="US",
        )
        assert "BigQuery test-project." in cloud.warehouse.describe()
        assert cloud.lake.is_gcs
        run_all(local)
        run_all(cloud)

        # same rows, counts and mart values, month by month
        before = {}
        for service, month in DEMO:
            a, b = snapshot(local, service, month), snapshot(cloud, service, month)
            assert len(a["trips"]) > ROWS * 0.8 and len(a["mart"]) > 10 and a["rejects"]
            for part in a:
                same(b[part], a[part], f"{service} {month} {part}")
            before[(service, month)] = b
        zones = cloud.warehouse.query(f"SELECT * FROM {cloud.warehouse.table_ref('taxi_zones')}")
        assert zones.num_rows == 265 and "NA" in zones.column("zone").to_pylist()
        # the catalog: every column's description in the table's schema, and the table's own
        for table in ("yellow_trips", "yellow_daily_zone_mart", "yellow_rejects_summary", "taxi_zones"):
            bq_table = cloud.warehouse.client.get_table(cloud.warehouse.table_id(table))
            assert bq_table.description, table
            assert [f.description for f in bq_table.schema] == [describe_column(f.name) for f in bq_table.schema], table
            assert all(f.description for f in bq_table.schema), table

        # the lake on GCS has the local lake's layout, and nothing more
        objects = gcs_emulator.list(bucket)
        assert all(n.startswith("lake/") and not n.endswith("/") for n in objects)
        local_root = tmp_path / "local" / "lake"
        local_files = {
            p.relative_to(local_root).as_posix() for p in local_root.rglob("*")
            if p.is_file() and not p.relative_to(local_root).as_posix().startswith(("_locks/", "_staging/"))
        }
        assert {VERSION.sub("_V-", n.removeprefix("lake/")) for n in objects} == {VERSION.sub("_V-", f) for f in local_files}

        # the warehouse: partitioned on source_month, clustered on zones, no staging table left
        client = bigquery_emulator.client()
        trips = client.get_table(f"{bigquery_emulator.project}.{dataset}.yellow_trips")
        assert (trips.time_partitioning.type_, trips.time_partitioning.field) == ("MONTH", "source_month")
        assert trips.clustering_fields == ["pickup_location_id", "dropoff_location_id"]
        assert [f.name for f in trips.schema] == get_service("yellow").schema.names
        tables = {t.table_id for t in client.list_tables(f"{bigquery_emulator.project}.{dataset}")}
        assert not [t for t in tables if t.startswith("_stage")]
        parts = {r["partition_id"]: r["total_rows"] for r in client.query(
            f"SELECT partition_id, total_rows FROM `{bigquery_emulator.project}.{dataset}`.INFORMATION_SCHEMA.PARTITIONS "
            "WHERE table_name = 'yellow_trips'").result()}
        if parts:  # the emulator reports partitions by source month
            assert parts == {m.replace("-", ""): len(before[("yellow", m)]["trips"]) for s, m in DEMO if s == "yellow"}

        # the trips tables were loaded by load jobs straight from the cleaned month's day files in GCS
        loads = [j for j in client.list_jobs(max_results=1000) if j.job_type == "load" and j.destination.dataset_id == dataset]
        trip_loads = [j for j in loads if "_trips_" in j.destination.table_id]
        assert len(trip_loads) == len(DEMO)
        for job in trip_loads:
            service, stamp = job.destination.table_id.split("_")[2], job.destination.table_id.split("_")[4]
            manifest = cloud.lake.read_manifest(f"trips/{service}", f"{stamp[:4]}-{stamp[4:]}")
            assert sorted(job.source_uris) == sorted(f"gs://{bucket}/lake/trips/{service}/{e.path}" for e in manifest.files), job.source_uris

        # re-running a month changes nothing, in the warehouse or in the lake
        trips_objects = {n for n in objects if n.startswith("lake/trips/yellow/")}
        assert cloud.run("yellow", "2023-02").success
        for service, month in DEMO:
            after = snapshot(cloud, service, month)
            for part in after:
                same(after[part], before[(service, month)][part], f"re-run {service} {month} {part}")
        again = gcs_emulator.list(bucket)
        assert {VERSION.sub("_V-", n) for n in again} == {VERSION.sub("_V-", n) for n in objects}
        assert len(again) == len(objects)  # the old version of 2023-02 is gone
        changed = {n for n in again if n.startswith("lake/trips/yellow/")} - trips_objects
        assert changed and all("2023-02" in n for n in changed)  # only the re-run month was republished
        assert sum(r["trips"] for r in snapshot(cloud, "yellow", "2023-02")["mart"]) == len(before[("yellow", "2023-02")]["trips"])
