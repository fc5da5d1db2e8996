"""The asset checks fail when what landed is wrong: they read the files and tables, not the run's word."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_assets.storage.handles import LakeFile, LakeMonthDataset, WarehouseTable
from taxi_assets.storage.warehouse.base import TableSpec
from taxi_assets.tlc.cleaning import rule_names_for
from taxi_assets.tlc.services import YELLOW
from taxi_assets.tlc.months import parse_month

from taxi_assets_tests.conftest import Pipeline

CLEANED = dg.AssetKey(["yellow", "trips_cleaned"])


def check(pipeline: Pipeline, asset_key: dg.AssetKey, name: str) -> dg.AssetChecksDefinition:
    return next(c for c in pipeline.defs.asset_checks if dg.AssetCheckKey(asset_key, name) in c.check_keys)


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def stored(pipeline: Pipeline, key: str) -> LakeFile:
    return LakeFile(pipeline.lake, key)


def cleaned(pipeline: Pipeline, month: str) -> LakeMonthDataset:
    return LakeMonthDataset(pipeline.lake, "trips/yellow", month, "pickup_date")


def test_checks_pass_on_a_clean_month_and_fail_on_tampered_files(pipeline: Pipeline):
    assert pipeline.run("zones").success
    assert pipeline.run("yellow", "2023-01").success
    kept = cleaned(pipeline, "2023-01")
    rejected = stored(pipeline, "rejects/yellow/yellow_2023-01.parquet")
    reconciles, keys_not_null = (dg.AssetCheckKey(CLEANED, name) for name in ("reconciles_with_raw", "keys_not_null"))
    found = evaluations(pipeline.run_checks("yellow", "2023-01", reconciles, keys_not_null))
    assert found.keys() == {"reconciles_with_raw", "keys_not_null"}  # only the checks asked for ran
    assert found["reconciles_with_raw"].passed and found["keys_not_null"].passed

    # lose some rejected rows: the month no longer reconciles with the raw file
    table = pq.read_table(rejected.lake.local_path(rejected.key))
    pq.write_table(table.slice(0, table.num_rows - 3), rejected.lake.local_path(rejected.key))
    run = pipeline.run_checks("yellow", "2023-01", reconciles)
    result = evaluations(run)["reconciles_with_raw"]
    assert not result.passed and not run.success  # blocking: its failure fails the run
    assert result.metadata["difference"].value == 3
    assert pipeline.check_status(reconciles, "2023-01") == "FAILED"

    # a null pickup in the kept rows (in one day's file)
    path = kept.lake.local_path(kept.files()[0])
    table = pq.read_table(path)
    pickups = table.column("pickup_datetime").to_pylist()
    pickups[5] = None
    index = table.schema.get_field_index("pickup_datetime")
    pq.write_table(table.set_column(index, "pickup_datetime", pa.array(pickups, pa.timestamp("us"))), path)
    result = evaluations(pipeline.run_checks("yellow", "2023-01", keys_not_null))["keys_not_null"]
    assert not result.passed
    assert result.metadata["nulls/pickup_datetime"].value == 1


def test_pickups_outside_month_warn_when_the_rule_is_off(pipeline: Pipeline):
    assert pipeline.run("zones").success
    # everything but pickup_required off, so no other rule catches the out-of-month rows first
    off = [r for r in rule_names_for(YELLOW) if r != "pickup_required"]
    config = {"ops": {"yellow_ingest": {"config": {"disabled_rules": off}}}}
    result = pipeline.run("yellow", "2023-01", run_config=config)
    check = evaluations(result)["pickups_within_month"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    kept = cleaned(pipeline, "2023-01").table_source(YELLOW.schema, order_by="pickup_datetime").open().read_all()
    assert str(pc.min(kept.column("pickup_datetime")).as_py()) == check.metadata["earliest"].value


def test_warehouse_check_sees_rows_that_are_not_in_the_lake(pipeline: Pipeline):
    assert pipeline.run("zones").success
    assert pipeline.run("yellow", "2023-01").success
    wh = pipeline.warehouse
    with wh.connect() as con:
        con.execute(f"DELETE FROM {wh.table_ref('yellow_trips')} WHERE trip_distance > 5")
    matches_lake = check(pipeline, dg.AssetKey(["yellow", "trips_table"]), "matches_lake")
    table = WarehouseTable(wh, TableSpec("yellow_trips"), (parse_month("2023-01"),))
    result = matches_lake(trips_table=table, cleaned=cleaned(pipeline, "2023-01"))
    assert not result.passed
    assert result.metadata["warehouse_rows"].value < result.metadata["lake_rows"].value


def test_a_failed_month_leaves_the_other_months_checks_green(pipeline: Pipeline):
    """Checks are partitioned like their assets: yellow 2023-03 (not on the mirror) fails to download,
    and 2023-01's checks stay passed while 2023-03's show as never having passed or failed on data."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    assert pipeline.run("zones").success
    assert pipeline.run("yellow", "2023-01").success
    failed = pipeline.run("yellow", "2023-03", raise_on_error=False)
    assert not failed.success
    check_keys = [k for c in pipeline.defs.asset_checks for k in c.check_keys if k.asset_key.path[0] == "yellow"]
    check_keys += [dg.AssetCheckKey(CLEANED, "audit")]
    assert len(check_keys) == 6
    infos = pipeline.instance.event_log_storage.get_asset_check_partition_info(check_keys)
    status = {(i.check_key.name, i.partition_key): i.latest_execution_status for i in infos}
    for key in check_keys:
        assert status[(key.name, "2023-01")] == Status.SUCCEEDED, key
        assert status.get((key.name, "2023-03")) not in (Status.FAILED, Status.SUCCEEDED), key
        assert (key.name, None) not in status  # nothing recorded for the asset as a whole


def test_a_backfill_records_each_months_checks_against_that_month(pipeline: Pipeline):
    """The runs an asset backfill launches (built by the function Dagster's backfill daemon calls) carry
    the month as `dagster/partition`, so every check of the month is recorded for that month. With any
    backfill policy on the assets they would carry a one-month range, and Dagster 1.13 would record
    the checks without a month, leaving each backfilled month's checks planned, shown as skipped."""
    from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests_with_backfill_policies
    from dagster._core.definitions.events import AssetKeyPartitionKey
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    assert pipeline.run("zones").success
    graph = pipeline.defs.resolve_asset_graph()
    chain = [key for key in graph.get_all_asset_keys() if key.path[0] == "yellow"]
    months = ["2023-01", "2023-02"]
    requests = build_run_requests_with_backfill_policies(
        [AssetKeyPartitionKey(key, month) for key in chain for month in months], graph, pipeline.instance
    )
    assert sorted(r.partition_key for r in requests) == months  # one run a month, the whole chain in it
    job = pipeline.defs.resolve_job_def("yellow_monthly")
    for request in requests:
        result = job.execute_in_process(
            partition_key=request.partition_key, tags=request.tags, asset_selection=request.asset_selection,
            instance=pipeline.instance,
        )
        assert result.success
    check_keys = [k for c in pipeline.defs.asset_checks for k in c.check_keys if k.asset_key.path[0] == "yellow"]
    check_keys += [dg.AssetCheckKey(CLEANED, "audit")]
    infos = pipeline.instance.event_log_storage.get_asset_check_partition_info(check_keys)
    status = {(i.check_key.name, i.partition_key): i.latest_execution_status for i in infos}
    assert {(key.name, month): Status.SUCCEEDED for key in check_keys for month in months} == status
    # What the check's Partitions tab shows: a result counts only while it is about the month's latest
    # materialization, so the audit must be given after the month is published.
    assert {(key.name, month): pipeline.check_status(key, month) for key in check_keys for month in months} == {
        (key.name, month): "SUCCEEDED" for key in check_keys for month in months
    }
