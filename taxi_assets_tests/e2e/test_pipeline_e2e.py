"""End to end: a month from the local HTTP mirror through every asset, checked in the lake files and
the DuckDB tables; the same month twice gives identical data; a failed download stores nothing."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from devtools.mirror import Status
from taxi_assets.tlc.services import SERVICES, get_service
from taxi_assets.tlc.months import parse_month

from taxi_assets_tests.conftest import MIRROR_MONTHS, Pipeline


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_checksum(pipeline: Pipeline, table: str, month: str) -> tuple[int, str]:
    """Row count and an order-independent checksum of a warehouse month's contents."""
    rows = pipeline.warehouse.read_month(table, parse_month(month))
    digests = sorted(hashlib.sha256(json.dumps(r, default=str, sort_keys=True).encode()).hexdigest() for r in rows.to_pylist())
    return rows.num_rows, hashlib.sha256("".join(digests).encode()).hexdigest()


def check_month_landed(pipeline: Pipeline, mirror_root, service_name: str, month: str) -> dict[str, int]:
    service = get_service(service_name)
    lake_root = pipeline.lake.local_path("")
    file_name = f"{service_name}_tripdata_{month}.parquet"

    # raw: byte-for-byte the published file
    raw = lake_root / "raw" / service_name / month / file_name
    assert sha256(raw) == sha256(mirror_root / "trip-data" / file_name)
    raw_rows = pq.read_metadata(raw).num_rows

    # cleaned (pickup-date folders, every kept row once in the folder of its pickup date) + rejected:
    # reconcile with the raw file, canonical schema, every rejected row has a rule
    manifest = json.loads((lake_root / "trips" / service_name / "_manifests" / f"{month}.json").read_text())
    files = [lake_root / "trips" / service_name / f["path"] for f in manifest["files"]]
    cleaned = pa.concat_tables([pq.read_table(f) for f in files])
    rejected = pq.read_table(lake_root / "rejects" / service_name / f"{service_name}_{month}.parquet")
    assert cleaned.schema.equals(service.schema), cleaned.schema
    assert cleaned.num_rows + rejected.num_rows == raw_rows
    assert rejected.column("reject_rule").null_count == 0
    start = parse_month(month)
    pickups = cleaned.column("pickup_datetime")
    assert pc.min(pickups).as_py().date() >= start
    assert pc.max(pickups).as_py().date() < parse_month(f"{start.year + start.month // 12}-{start.month % 12 + 1:02d}")
    assert set(cleaned.column("source_month").to_pylist()) == {start}

    by_date = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(lake_root / "trips" / service_name)).to_table()
    assert by_date.num_rows == cleaned.num_rows == manifest["rows"]
    for f in files:
        day = f.parent.name.removeprefix("pickup_date=")
        dates = pc.cast(pq.read_table(f).column("pickup_datetime"), "date32")
        assert {d.isoformat() for d in dates.to_pylist()} == {day}

    # warehouse: trips, rejects summary and mart agree with the lake
    wh = pipeline.warehouse
    assert wh.count(f"{service_name}_trips", start) == cleaned.num_rows
    summary = wh.read_month(f"{service_name}_rejects_summary", start).to_pylist()
    assert sum(r["rows"] for r in summary) == rejected.num_rows
    by_rule = rejected.group_by("reject_rule").aggregate([([], "count_all")]).to_pylist()
    assert {r["rule"]: r["rows"] for r in summary} == {r["reject_rule"]: r["count_all"] for r in by_rule}
    mart = wh.read_month(f"{service_name}_daily_zone_mart", start)
    assert sum(mart.column("trips").to_pylist()) == cleaned.num_rows
    # counts are integers, not DuckDB's HUGEINT (decimal(38,0) in pandas and BI tools)
    assert mart.schema.field("trips").type == mart.schema.field("passengers").type == pa.int64()
    return {"raw": raw_rows, "kept": cleaned.num_rows, "rejected": rejected.num_rows}


def undescribed_columns(result) -> dict[str, list[str]]:
    """Columns of every materialization's column schema that have no description, by asset."""
    found = {}
    for event in result.get_asset_materialization_events():
        schema = event.materialization.metadata.get("dagster/column_schema")
        missing = [c.name for c in schema.schema.columns if not c.description] if schema else ["(no column schema)"]
        if missing:
            found[event.asset_key.to_user_string()] = missing
    return found


def test_every_service_month_lands_in_lake_and_warehouse(pipeline: Pipeline, mirror_root):
    zones_run = pipeline.run("zones")
    assert zones_run.success and undescribed_columns(zones_run) == {}
    zones = pipeline.warehouse.query(f"SELECT * FROM {pipeline.warehouse.table_ref('taxi_zones')} ORDER BY location_id")
    assert zones.num_rows == 265
    assert zones.to_pylist()[-1]["zone"] == "NA"  # a name, not a null

    for service_name, months in MIRROR_MONTHS.items():
        for month in months:
            result = pipeline.run(service_name, month)
            assert result.success
            failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
            assert failed == [], f"{service_name} {month}: checks failed {failed}"
            for event in result.get_asset_materialization_events():
                meta = event.materialization.metadata
                name = event.asset_key.to_user_string()
                assert {"dagster/column_schema", "preview", "dagster/row_count"} <= set(meta), f"{name}: {sorted(meta)}"
            assert undescribed_columns(result) == {}, f"{service_name} {month}"
            raw_meta = next(e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "raw_file")
            assert raw_meta["source_url"].url.endswith(f"{service_name}_tripdata_{month}.parquet")
            assert len(raw_meta["sha256"].text) == 64
            counts = check_month_landed(pipeline, mirror_root, service_name, month)
            assert counts["rejected"] > 0, "the generator's dirty rows must be rejected"
            assert counts["kept"] > counts["raw"] * 0.8


def test_same_month_twice_gives_identical_data(pipeline: Pipeline, mirror_root):
    assert pipeline.run("zones").success
    assert pipeline.run("yellow", "2023-02").success
    first = {t: table_checksum(pipeline, t, "2023-02") for t in ("yellow_trips", "yellow_daily_zone_mart", "yellow_rejects_summary")}
    lake_root = pipeline.lake.local_path("")
    cleaned_first = pipeline.lake.read_partitioned_month("trips/yellow", "2023-02", "pickup_date").to_table()

    assert pipeline.run("yellow", "2023-02").success
    second = {t: table_checksum(pipeline, t, "2023-02") for t in first}
    assert second == first
    assert pipeline.lake.read_partitioned_month("trips/yellow", "2023-02", "pickup_date").to_table().equals(cleaned_first)
    # the date-partitioned month holds one version only: the old files were removed
    parts = list((lake_root / "trips/yellow").rglob("*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in parts) == cleaned_first.num_rows
    assert pipeline.warehouse.count("yellow_trips") == first["yellow_trips"][0]


def test_switching_a_rule_off_keeps_its_rows(pipeline: Pipeline):
    assert pipeline.run("zones").success
    assert pipeline.run("yellow", "2023-01").success
    before = pipeline.warehouse.count("yellow_trips", parse_month("2023-01"))
    summary = {r["rule"]: r["rows"] for r in pipeline.warehouse.read_month("yellow_rejects_summary", parse_month("2023-01")).to_pylist()}
    assert summary.get("passenger_count_positive", 0) > 0

    config = {"ops": {"yellow_ingest": {"config": {"disabled_rules": ["passenger_count_positive"]}}}}
    assert pipeline.run("yellow", "2023-01", run_config=config).success
    after = pipeline.warehouse.count("yellow_trips", parse_month("2023-01"))
    summary_after = {r["rule"]: r["rows"] for r in pipeline.warehouse.read_month("yellow_rejects_summary", parse_month("2023-01")).to_pylist()}
    assert "passenger_count_positive" not in summary_after
    # rows that only broke that rule are now kept; rows that also broke a later rule move to it
    assert before < after <= before + summary["passenger_count_positive"]


def test_unknown_rule_name_fails_clearly(pipeline: Pipeline):
    assert pipeline.run("zones").success
    config = {"ops": {"yellow_ingest": {"config": {"disabled_rules": ["no_such_rule"]}}}}
    result = pipeline.run("yellow", "2023-01", run_config=config, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no_such_rule" in failure.event_specific_data.error.message


@pytest.mark.parametrize("status", [403, 404, 200])
def test_failed_download_keeps_what_was_stored(pipeline: Pipeline, mirror, status):
    assert pipeline.run("zones").success
    assert pipeline.run("green", "2023-01").success
    raw = pipeline.lake.local_path("raw/green/2023-01/green_tripdata_2023-01.parquet")
    before = sha256(raw)
    rows_before = pipeline.warehouse.count("green_trips", parse_month("2023-01"))

    body = b"<!DOCTYPE html><html>maintenance</html>" if status == 200 else b""
    fault = Status(status, body=body, content_type="text/html" if status == 200 else None)
    mirror.inject("/trip-data/green_tripdata_2023-01.parquet", *([fault] * 3))
    result = pipeline.run("green", "2023-01", raise_on_error=False)
    mirror.clear_faults()
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.message
    assert "green 2023-01" in message and "green_tripdata_2023-01.parquet" in message
    assert sha256(raw) == before
    assert pipeline.warehouse.count("green_trips", parse_month("2023-01")) == rows_before
    assert not list(pipeline.lake.local_path("raw/green/2023-01").glob("*.part"))


def test_month_not_published_names_it(pipeline: Pipeline):
    """A month the mirror does not have: CloudFront's 403, reported as not published yet."""
    assert pipeline.run("zones").success
    result = pipeline.run("green", "2023-05", raise_on_error=False)
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.message
    assert "green 2023-05 is not published yet: 403" in message
    assert not pipeline.lake.local_path("raw/green/2023-05").exists()


def test_all_services_have_the_full_graph():
    from taxi_assets.definitions import defs as load

    defs = load()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for name in SERVICES:
        for asset in ("raw_file", "trips_cleaned", "trips_rejected", "trips_table", "rejects_summary", "daily_zone_mart"):
            assert f"{name}/{asset}" in keys
    # the catalog, before anything is materialized: every column of the trips described
    graph = defs.resolve_asset_graph()
    for name, service in SERVICES.items():
        for asset in ("trips_cleaned", "trips_rejected", "trips_table"):
            columns = graph.get(dg.AssetKey([name, asset])).metadata["dagster/column_schema"].columns
            assert {c.name for c in columns} >= set(service.schema.names)
            assert all(c.description for c in columns), (name, asset, [c.name for c in columns if not c.description])
    # and every asset that is a table: each has a column schema, each column of it described;
    # every asset filed under the team and tagged with its layer (and its service)
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == ["team:taxi-data-platform"], key
        assert node.tags["layer"] in ("raw", "cleaned", "rejected", "lake", "warehouse", "mart", "reference"), key
        assert node.tags.get("service") == (key.path[0] if key.path[0] in SERVICES else None), key
        if key.path[-1] == "raw_file":
            continue  # a raw file's columns are the month's era's: described on each materialization
        schema = graph.get(key).metadata.get("dagster/column_schema")
        assert schema is not None, key
        assert all(c.description for c in schema.columns), (key, [c.name for c in schema.columns if not c.description])


def test_an_unreachable_source_says_where_to_look(tmp_path, mirror, monkeypatch):
    """Nothing listens at the source: the failure leads with the month and file, then points at
    TAXI_SOURCE_URL and make dev-offline."""
    import socket

    from taxi_assets_tests.conftest import make_pipeline

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again when the block ends: a refused connection
    monkeypatch.setattr("taxi_assets.storage.http.transfer.MAX_BACKOFF_SECONDS", 0.01)  # the five attempts, without their waits
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance, TAXI_SOURCE_URL=f"http://127.0.0.1:{dead}/trip-data")
        assert pipeline.run("zones").success
        result = pipeline.run("yellow", "2023-01", raise_on_error=False)
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.message
    assert "yellow 2023-01: download failed" in message.splitlines()[0]  # the cause first, no trace before it
    assert f"TAXI_SOURCE_URL (http://127.0.0.1:{dead}/trip-data)" in message and "make dev-offline" in message
