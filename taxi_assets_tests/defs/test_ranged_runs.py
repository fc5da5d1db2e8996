"""A run over several months (make backfill's): each month lands and is recorded as a run of its
own would land and record it, and a month that fails is that month's alone: the others land, and the
run fails naming it."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

import dagster as dg
import pyarrow.parquet as pq
import pytest

from devtools.mirror import Body, Status
from taxi_assets.defs.assets.ingest import AUDIT_CHECK
from taxi_assets.defs.assets.ranged import MonthChain
from taxi_assets.defs.jobs import service_job_name
from taxi_assets.tlc.services import YELLOW

from taxi_assets_tests.conftest import Pipeline, make_pipeline
from taxi_assets_tests.defs.test_write_audit_publish import parquet_bytes, snapshot
from taxi_assets_tests.e2e.test_pipeline_e2e import table_checksum

ASSETS = ("raw_file", "trips_cleaned", "trips_rejected", "trips_table", "rejects_summary", "daily_zone_mart")
CHECKS = {
    "trips_cleaned": ("audit", "reconciles_with_raw", "keys_not_null", "pickups_within_month"),
    "trips_table": ("matches_lake",),
    "daily_zone_mart": ("trips_add_up",),
}
TABLES = ("trips", "rejects_summary", "daily_zone_mart")


def run_range(pipeline: Pipeline, first: str, last: str):
    return pipeline.defs.resolve_job_def(service_job_name("yellow")).execute_in_process(
        instance=pipeline.instance,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        raise_on_error=False,
    )


def recorded(pipeline: Pipeline, month: str) -> dict[str, object]:
    """What the UI shows for the month: each asset's status and metadata keys, each check's status."""
    seen: dict[str, object] = {}
    for name in ASSETS:
        key = dg.AssetKey(["yellow", name])
        partitions = pipeline.defs.resolve_asset_graph().get(key).partitions_def
        status = pipeline.instance.get_status_by_partition(key, [month], partitions)[month]
        records = pipeline.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
        ).records
        keys = sorted(records[0].asset_materialization.metadata) if records else []
        seen[name] = (status.value if status else None, keys)
        for check in CHECKS.get(name, ()):
            seen[f"{name}.{check}"] = pipeline.check_status(dg.AssetCheckKey(key, check), month)
    return seen


@pytest.fixture(scope="module")
def month_by_month(tmp_path_factory, mirror):
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path_factory.mktemp("single"), mirror, instance)
        assert pipeline.run("zones").success
        for month in ("2023-01", "2023-02"):
            assert pipeline.run("yellow", month).success
        yield pipeline


def test_a_run_over_two_months_lands_and_records_each_as_its_own_run_would(tmp_path, mirror, month_by_month) -> None:
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance)
        assert pipeline.run("zones").success
        result = run_range(pipeline, "2023-01", "2023-02")
        assert result.success
        # one run did both months: the ingest step carried them; the other steps were skipped
        assert len(instance.get_runs(filters=dg.RunsFilter(job_name=service_job_name("yellow")))) == 1
        for month in ("2023-01", "2023-02"):
            alone = recorded(month_by_month, month)
            assert recorded(pipeline, month) == alone
            assert {v[0] for k, v in alone.items() if "." not in k} == {"MATERIALIZED"}
            assert {v for k, v in alone.items() if "." in k} == {"SUCCEEDED"}
            for table in TABLES:
                assert table_checksum(pipeline, f"yellow_{table}", month) == table_checksum(month_by_month, f"yellow_{table}", month)


def test_a_month_that_fails_is_failed_alone_and_the_next_month_lands(tmp_path, mirror) -> None:
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance)
        assert pipeline.run("zones").success
        mirror.inject("/trip-data/yellow_tripdata_2023-01.parquet", Status(404))
        try:
            result = run_range(pipeline, "2023-01", "2023-02")
        finally:
            mirror.clear_faults()
        assert not result.success
        assert {v[0] for k, v in recorded(pipeline, "2023-01").items() if "." not in k} == {"FAILED"}
        assert table_checksum(pipeline, "yellow_trips", "2023-01")[0] == 0
        landed = recorded(pipeline, "2023-02")
        assert {v[0] for k, v in landed.items() if "." not in k} == {"MATERIALIZED"}
        assert {v for k, v in landed.items() if "." in k} == {"SUCCEEDED"}
        assert table_checksum(pipeline, "yellow_trips", "2023-02")[0] > 0
        message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
        assert "1 of the run's 2 months failed" in message and "yellow 2023-01" in message and "2023-02" not in message
        assert "404" in message


def test_a_run_whose_every_month_fails_says_so_and_lands_nothing(tmp_path, mirror) -> None:
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance)
        assert pipeline.run("zones").success
        for month in ("2023-01", "2023-02"):
            mirror.inject(f"/trip-data/yellow_tripdata_{month}.parquet", Status(404))
        try:
            result = run_range(pipeline, "2023-01", "2023-02")
        finally:
            mirror.clear_faults()
        assert not result.success
        for month in ("2023-01", "2023-02"):
            assert {v[0] for k, v in recorded(pipeline, month).items() if "." not in k} == {"FAILED"}
        assert not list(pipeline.lake.local_path("").glob("**/*.parquet"))
        message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
        assert "2 of the run's 2 months failed." in message and "landed" not in message
        assert "yellow 2023-01" in message and "yellow 2023-02" in message


def test_no_check_is_recorded_without_its_month(tmp_path, mirror) -> None:
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance)
        assert pipeline.run("zones").success
        assert run_range(pipeline, "2023-01", "2023-02").success
        keys = [dg.AssetCheckKey(dg.AssetKey(["yellow", asset]), name) for asset, names in CHECKS.items() for name in names]
        infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=None)
        assert sorted({(i.check_key.name, i.partition_key) for i in infos}) == sorted(
            (name, month) for names in CHECKS.values() for name in names for month in ("2023-01", "2023-02")
        )


def test_part_of_the_ingest_alone_is_refused_with_nothing_published(tmp_path, mirror) -> None:
    """The step is subsettable only so that a range may yield none of its outputs."""
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance)
        assert pipeline.run("zones").success
        job = pipeline.defs.resolve_job_def(service_job_name("yellow"))
        result = job.execute_in_process(
            instance=instance, partition_key="2023-01", asset_selection=[dg.AssetKey(["yellow", "trips_cleaned"])], raise_on_error=False
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "are one pass over the month's file and are published together" in failure.step_failure_data.error.message
        assert not list(pipeline.lake.local_path("").glob("trips/**/*.parquet"))


def test_a_failed_blocking_check_stops_the_month_before_its_warehouse_tables(tmp_path, mirror, monkeypatch) -> None:
    from taxi_assets.defs.assets import ranged

    def nulls_in_january(service, cleaned):
        return dg.AssetCheckResult(check_name="keys_not_null", passed=cleaned.month != "2023-01", metadata={"nulls/pickup_datetime": 1})

    monkeypatch.setattr(ranged, "keys_present", nulls_in_january)
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance)
        assert pipeline.run("zones").success
        result = run_range(pipeline, "2023-01", "2023-02")
        assert not result.success
        january, february = recorded(pipeline, "2023-01"), recorded(pipeline, "2023-02")
        assert pipeline.check_status(dg.AssetCheckKey(dg.AssetKey(["yellow", "trips_cleaned"]), "keys_not_null"), "2023-01") == "FAILED"
        assert {k: v[0] for k, v in january.items() if "." not in k} == {
            "raw_file": "MATERIALIZED", "trips_cleaned": "MATERIALIZED", "trips_rejected": "MATERIALIZED",
            "trips_table": "FAILED", "rejects_summary": "FAILED", "daily_zone_mart": "FAILED",
        }
        assert table_checksum(pipeline, "yellow_trips", "2023-01")[0] == 0
        # the month after it went through whole
        assert {v[0] for k, v in february.items() if "." not in k} == {"MATERIALIZED"}
        assert {v for k, v in february.items() if "." in k} == {"SUCCEEDED"}
        assert table_checksum(pipeline, "yellow_trips", "2023-02")[0] > 0
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "yellow 2023-01: blocking check keys_not_null failed" in failure.step_failure_data.error.message


def test_a_month_its_audit_holds_back_keeps_its_stored_version_and_fails_the_run(tmp_path, mirror, mirror_root) -> None:
    """A bad re-publication inside a run over several months: the month before it lands again, the
    held-back month's stores stay exactly as they were, and the run fails naming the month and the cause."""
    february = "yellow_tripdata_2023-02.parquet"
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance)
        assert pipeline.run("zones").success
        assert run_range(pipeline, "2023-01", "2023-02").success
        before = snapshot(pipeline, month="2023-02")
        empty = pq.read_table(mirror_root / "trip-data" / february).slice(0, 0)
        mirror.inject(f"/trip-data/{february}", Body(parquet_bytes(empty)))
        try:
            result = run_range(pipeline, "2023-01", "2023-02")
        finally:
            mirror.clear_faults()
        assert not result.success
        after = snapshot(pipeline, month="2023-02")
        assert after["tables"] == before["tables"] and all(n > 0 for n, _ in after["tables"].values())
        stored = {path: sha for path, sha in before["files"].items() if "2023-02" in path}
        assert stored and {path: sha for path, sha in after["files"].items() if "2023-02" in path} == stored
        message = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.message
        assert "yellow 2023-02" in message and february in message and "has_rows" in message and "held back" in message
        audit = dg.AssetCheckKey(dg.AssetKey(["yellow", "trips_cleaned"]), AUDIT_CHECK)
        assert pipeline.check_status(audit, "2023-02") == "FAILED"
        # January went through again, whole: two materializations of each of its assets, its checks passed
        again = recorded(pipeline, "2023-01")
        assert {v[0] for k, v in again.items() if "." not in k} == {"MATERIALIZED"}
        assert {v for k, v in again.items() if "." in k} == {"SUCCEEDED"}
        for name in ASSETS:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["yellow", name]), asset_partitions=["2023-01"]), limit=5
            ).records
            assert len(records) == 2, name


def test_a_month_whose_failure_has_no_description_is_named_and_the_next_month_still_runs():
    """A dg.Failure may come without a description (a user's own asset code): the month is still
    named, not 'None', and the run goes on to the next month."""
    chain = MonthChain.__new__(MonthChain)  # only what run_months reads: the log, the service, run
    chain.context, chain.service = SimpleNamespace(log=logging.getLogger("test")), YELLOW
    ran = []
    chain.run = lambda month, events: (ran.append(month), iter(events))[1]

    def ingest_of(month):
        if month.month == 1:
            raise dg.Failure()
        return []

    with pytest.raises(dg.Failure) as failed:
        list(chain.run_months([dt.date(2024, 1, 1), dt.date(2024, 2, 1)], ingest_of))
    assert failed.value.description == (
        "1 of the run's 2 months failed, the others landed. yellow 2024-01: a Failure without a description"
    )
    assert ran == [dt.date(2024, 2, 1)]
