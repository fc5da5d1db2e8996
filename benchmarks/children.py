"""What a bench child process runs: one pipeline variant (or the zones) in process, timing each step."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

#: The issue's chain for a month: download -> raw -> cleaned (+ rejected) -> lake by date -> warehouse
#: table, with the checks on those assets. What the zoomcamp recipe is compared with.
INGEST_ASSETS = ("raw_file", "trips_cleaned", "trips_rejected", "trips_table")
#: The assets of a service month (the service's group, the `<service>_monthly` job): the chain, the
#: rejects summary and the daily zone mart. What a backfill selects.
SERVICE_ASSETS = (*INGEST_ASSETS, "rejects_summary", "daily_zone_mart")
#: What an in-process variant runs: the chain only, or the whole monthly job.
SCOPES = {"ingest": INGEST_ASSETS, "job": SERVICE_ASSETS}


def _step_times(instance, run_id: str) -> dict[str, float]:
    """Seconds per step of a finished run (STEP_START -> STEP_SUCCESS/FAILURE), from the event log."""
    return {
        s.step_key: round(s.end_time - s.start_time, 3)
        for s in instance.get_run_step_stats(run_id)
        if s.start_time is not None and s.end_time is not None
    }


def _run_bounds(instance, run_id: str) -> tuple[float | None, float | None, float | None]:
    """(created, started, ended) epoch seconds of a run."""
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        return None, None, None
    return record.create_timestamp.timestamp(), record.start_time, record.end_time


def _materialized_rows(result, asset_suffix: str) -> int | None:
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.path[-1] == asset_suffix:
            value = mat.metadata.get("dagster/row_count")
            return None if value is None else int(value.value)
    return None


def _scoped_job(defs, service: str, scope: str):
    """The service's monthly job, or (scope "ingest") the same month for the chain's assets only."""
    import dagster as dg

    from taxi_assets.defs.jobs import service_job_name

    job = defs.resolve_job_def(service_job_name(service))
    if scope == "job":
        return job
    name = f"{service}_bench_{scope}"
    selected = dg.define_asset_job(
        name, selection=dg.AssetSelection.assets(*[[service, a] for a in SCOPES[scope]]), partitions_def=job.partitions_def
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[selected])).resolve_job_def(name)


def child_pipeline(args: argparse.Namespace) -> int:
    """Service months, one after the other, through the job of `--scope`, in this process."""
    started = time.perf_counter()
    import dagster as dg

    from taxi_assets.definitions import build_definitions
    from taxi_assets.settings import Settings

    imported = time.perf_counter()
    settings = Settings.from_env()
    defs = build_definitions(settings)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    out: dict[str, Any] = {"import_seconds": imported - started}
    with dg.DagsterInstance.get() as instance:
        if args.zones:  # set-up, not timed: the zone lookup the cleaning step reads
            defs.resolve_job_def("zones").execute_in_process(instance=instance, run_config=quiet)
        job = _scoped_job(defs, args.service, args.scope)
        out["job"] = job.name
        out["setup_seconds"] = time.perf_counter() - imported
        runs = []
        work_started = time.perf_counter()
        for month in args.months.split(","):
            t0 = time.perf_counter()
            result = job.execute_in_process(partition_key=month, instance=instance, run_config=quiet,
                                            raise_on_error=False)
            seconds = time.perf_counter() - t0
            checks = {c.check_name: bool(c.passed) for c in result.get_asset_check_evaluations()}
            _, run_start, run_end = _run_bounds(instance, result.run_id)
            runs.append({
                "month": month, "run_id": result.run_id, "success": result.success, "seconds": round(seconds, 3),
                "run_seconds": None if run_start is None or run_end is None else round(run_end - run_start, 3),
                "steps": _step_times(instance, result.run_id),
                "rows_kept": _materialized_rows(result, "trips_cleaned"),
                "rows_rejected": _materialized_rows(result, "trips_rejected"),
                "rows_in_warehouse": _materialized_rows(result, "trips_table"),
                "checks": checks,
            })
            if not result.success:
                failure = next((e for e in result.all_events if e.is_failure), None)
                data = failure.event_specific_data if failure else None
                runs[-1]["error"] = getattr(getattr(data, "error", None), "message", "see the run log")
        out["work_seconds"] = time.perf_counter() - work_started
    # What the months left in the lake (raw, cleaned, rejected, date folders): what a GCS lake would upload.
    local = "://" not in settings.lake_uri
    out["lake_bytes"] = sum(f.stat().st_size for f in Path(settings.lake_uri).rglob("*.parquet")) if local else None
    out["runs"] = runs
    out["ok"] = all(r["success"] for r in runs)
    Path(args.result).write_text(json.dumps(out))
    return 0 if out["ok"] else 1


def child_zones(args: argparse.Namespace) -> int:
    """Materialize the zone lookup on the instance in $DAGSTER_HOME (set-up for the CLI and the daemon)."""
    import dagster as dg

    from taxi_assets.definitions import build_definitions
    from taxi_assets.settings import Settings

    defs = build_definitions(Settings.from_env())
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("zones").execute_in_process(instance=instance, raise_on_error=False)
    return 0 if result.success else 1


# ============================================================================ the parent
