"""Dagster's own storage on Postgres: the repo's dagster.yaml, pointed at a database of its own on
the test server through the DAGSTER_PG_* variables, records runs and materializations there; and
without that file the embedded default (SQLite) needs no server and no variable."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from taxi_assets_tests.postgres_server import create_database, drop_database

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


def test_dagster_yaml_takes_every_connection_setting_from_the_environment():
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    assert {key: value for key, value in db.items()} == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
        "scheme": "postgresql+psycopg2",
    }
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert config["concurrency"]["pools"]["default_limit"] >= 1


@pytest.fixture
def dagster_database(postgres_url: str):
    url = create_database(postgres_url, prefix="dagster_test")
    yield url
    drop_database(url, postgres_url)


def test_a_run_on_postgres_storage_records_its_run_and_materialization_there(tmp_path, monkeypatch, dagster_database):
    info = psycopg.conninfo.conninfo_to_dict(dagster_database)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_HOST", info.get("host", "127.0.0.1"))
    monkeypatch.setenv("DAGSTER_PG_PORT", info.get("port", "5432"))
    monkeypatch.setenv("DAGSTER_PG_USER", info.get("user", "postgres"))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", info.get("password", ""))
    monkeypatch.setenv("DAGSTER_PG_DB", info["dbname"])

    months = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", end_offset=0)

    @dg.asset(partitions_def=months)
    def tiny_month(context) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 3, "month": context.partition_key})

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.get_concurrency_config().run_queue_config.max_user_code_failure_retries == 3
        assert instance.run_retries_enabled and not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_monitoring_enabled
        result = dg.materialize([tiny_month], partition_key="2024-02-01", instance=instance)
        assert result.success
        run_id = result.run_id
    finally:
        instance.dispose()

    # Read Dagster's tables directly: the run and its events are in this database.
    with psycopg.connect(dagster_database) as conn:
        status = conn.execute("SELECT status FROM runs WHERE run_id = %s", [run_id]).fetchone()
        assert status == ("SUCCESS",)
        events = conn.execute(
            "SELECT dagster_event_type, asset_key, partition FROM event_logs WHERE run_id = %s AND dagster_event_type IS NOT NULL",
            [run_id],
        ).fetchall()
        kinds = {kind for kind, _, _ in events}
        # run events keep their historical names in the table
        assert {"PIPELINE_START", "PIPELINE_SUCCESS", "ASSET_MATERIALIZATION"} <= kinds, kinds
        materialized = [(key, partition) for kind, key, partition in events if kind == "ASSET_MATERIALIZATION"]
        assert materialized == [('["tiny_month"]', "2024-02-01")]
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()}
        assert {"runs", "event_logs", "jobs", "job_ticks", "concurrency_limits"} <= tables


def test_the_embedded_default_needs_no_server_and_no_variable(tmp_path, monkeypatch):
    for var in PG_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "dagster_home"  # like ./data/dagster_home: no dagster.yaml in it
    home.mkdir()

    @dg.asset
    def tiny() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 1})

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert dg.materialize([tiny], instance=instance).success
    finally:
        instance.dispose()
    # and the repo's file cannot be used by accident without its variables
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    with pytest.raises(Exception, match="DAGSTER_PG_"):
        dg.DagsterInstance.from_config(str(home)).run_storage  # noqa: B018
