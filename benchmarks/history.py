"""The whole TLC history, by service and era, and how long this machine would take to load it.

The rows are approximate: the TLC's yearly trip counts, rounded to the million, over the months our
services cover (yellow from 2011-01, green 2013-08, fhv 2015-01, fhvhv 2019-02; through 2025-09).
The projection is as good as they are, and scales linearly with them. Before 2019-02 the
high-volume for-hire trips (Uber, Lyft, Via, Juno) are in the fhv files, hence fhv's large first era.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Era:
    service: str
    first: str
    last: str
    months: int
    rows: int  # approximate
    note: str


HISTORY: tuple[Era, ...] = (
    Era("yellow", "2011-01", "2014-12", 48, 694_000_000, "peak years, ~14.5M a month"),
    Era("yellow", "2015-01", "2019-12", 60, 578_000_000, "ride-hailing takes over, 12M -> 7M a month"),
    Era("yellow", "2020-01", "2022-12", 36, 95_000_000, "the pandemic, ~2.6M a month"),
    Era("yellow", "2023-01", "2025-09", 33, 115_000_000, "~3.5M a month"),
    Era("green", "2013-08", "2016-12", 41, 54_000_000, "~1.3M a month"),
    Era("green", "2017-01", "2019-12", 36, 27_000_000, "~0.7M a month"),
    Era("green", "2020-01", "2025-09", 69, 6_000_000, "~0.1M a month"),
    Era("fhv", "2015-01", "2019-01", 49, 670_000_000, "high-volume trips still in fhv, ~14M a month"),
    Era("fhv", "2019-02", "2025-09", 80, 130_000_000, "~1.6M a month"),
    Era("fhvhv", "2019-02", "2025-09", 80, 1_400_000_000, "15-20M a month, the largest files"),
)

#: The service whose measured months each service's eras are carried from: green shares the yellow
#: schema's width (and is 2 % of the rows); fhv and fhvhv have their own (fhv's narrow files go faster).
RATE_FROM = {"yellow": "yellow", "green": "yellow", "fhv": "fhv", "fhvhv": "fhvhv"}
#: The scope label of the whole job on a month of yellow's largest era (`benchmarks.run.YELLOW_LARGE_MONTH`).
LARGE_JOB_SCOPE = "job-large"
#: The whole-job variants the history is carried from: the headline month and the large one.
JOB_SCOPES = ("job", LARGE_JOB_SCOPE)


def _jobs(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The parquet whole-job rows that ran well and timed their steps, by (warehouse, service),
    smallest month first."""
    jobs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: r["rows"]):
        if r["variant"] == "dagster-in-process" and r.get("scope") in JOB_SCOPES and r.get("format") == "parquet" \
                and r.get("ok") and r.get("rows_per_s") and r.get("steps_seconds"):
            jobs.setdefault((r["warehouse"], r["service"]), []).append(r)
    return jobs


def month_seconds(measured: list[dict[str, Any]], rows: float, wall: bool = False) -> float:
    """A month's data work at `rows` rows, carried from the service's measured months: issue 13's "data
    work", the time inside the job's steps (the measure the backfill's `data_work_seconds` is built
    on), or with `wall` the in-process run's own wall time (`seconds`, which also holds Dagster's
    creating the run and its events between steps).

    One measured month: its rate, rows over seconds. Two: the line through them, a fixed cost a month
    plus a cost a row; a fixed cost below zero (a noisy pair) is taken as zero, which charges every
    month more, never less, than the line; a larger month that took no longer: its rate alone.
    """
    def took(job: dict[str, Any]) -> float:
        return job["seconds"] if wall else job["steps_seconds"]

    small, large = measured[0], measured[-1]
    if large["rows"] <= small["rows"] or took(large) <= took(small):
        return rows * took(large) / large["rows"]
    per_row = (took(large) - took(small)) / (large["rows"] - small["rows"])
    return max(took(small) - per_row * small["rows"], 0.0) + per_row * rows


def _nearest(measured: list[dict[str, Any]], rows: float) -> dict[str, Any]:
    return min(measured, key=lambda job: abs(job["rows"] - rows))


def project(rows: list[dict[str, Any]], warehouse: str, overhead_seconds_per_month: float | None) -> dict[str, Any] | None:
    """The whole history's wall time on one warehouse, from the measured whole jobs per service.

    Data work: each era's months at `month_seconds` of their average size. With Dagster: plus the
    backfill's measured overhead per month (launch, start-up, event log, the runs' time between
    steps), once per service-month. `hours_at_run_wall` is the same months at the in-process runs'
    own wall time, a run a month. None when a service was not measured in this run.
    """
    jobs = {service: measured for (where, service), measured in _jobs(rows).items() if where == warehouse}
    if not all(RATE_FROM[e.service] in jobs for e in HISTORY):
        return None
    per_service: dict[str, dict[str, float]] = {}
    run_wall = 0.0
    for era in HISTORY:
        measured, size = jobs[RATE_FROM[era.service]], era.rows / era.months
        entry = per_service.setdefault(era.service, {"rows": 0, "months": 0, "seconds": 0.0})
        entry["rows"] += era.rows
        entry["months"] += era.months
        entry["seconds"] += era.months * month_seconds(measured, size)
        run_wall += era.months * month_seconds(measured, size, wall=True)
    data_seconds = sum(e["seconds"] for e in per_service.values())
    months = sum(e["months"] for e in per_service.values())
    total_rows = sum(e["rows"] for e in per_service.values())
    with_dagster = None if overhead_seconds_per_month is None else data_seconds + months * overhead_seconds_per_month
    return {
        "variant": "projection",
        "service": "all",
        "format": "parquet",
        "scope": "whole-history",
        "warehouse": warehouse,
        "rows": total_rows,
        "service_months": months,
        "seconds": round(data_seconds, 1),
        "rows_per_s": round(total_rows / data_seconds),
        "hours_data_work": round(data_seconds / 3600, 2),
        "overhead_seconds_per_month": None if overhead_seconds_per_month is None else round(overhead_seconds_per_month, 2),
        "hours_with_dagster_overhead": None if with_dagster is None else round(with_dagster / 3600, 2),
        "hours_at_run_wall": round(run_wall / 3600, 2),
        "carried_from": {s: [job["rows"] for job in measured] for s, measured in jobs.items()},
        "rates_rows_per_s": {s: round(e["rows"] / e["seconds"]) for s, e in per_service.items()},
        "per_service_hours": {s: round(e["seconds"] / 3600, 2) for s, e in per_service.items()},
        "peak_rss_mb": None,
        "ratio_vs_zoomcamp": None,
        "ok": True,
    }


#: Assets of the monthly job that open the warehouse (their steps and their checks' steps are named
#: after them). DuckDB lets one process write its file at a time and others wait for the lock (the
#: `warehouse_writes` pool is 1), so on the embedded default these steps follow one another on any
#: machine; everything else is lake work, which months do side by side.
WAREHOUSE_ASSETS = ("trips_table", "rejects_summary", "daily_zone_mart")
#: A month keeps about two cores busy (its reads, cleaning and parquet writes overlap; on 2 cores two
#: months at once gained nothing), so a machine of C cores runs C // 2 months at once.
CORES_PER_MONTH = 2
#: The machines the projection is carried to, and the upload bandwidth assumed for BigQuery.
BIGGER_MACHINES = (8, 32)
UPLOAD_GBIT_PER_S = 1.0


def warehouse_share(steps: dict[str, float]) -> float:
    """The share of a job's step time spent in steps that open the warehouse."""
    total = sum(steps.values())
    in_warehouse = sum(s for name, s in steps.items() if any(asset in name for asset in WAREHOUSE_ASSETS))
    return in_warehouse / total if total else 0.0


def project_elsewhere(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The whole history on bigger machines and on BigQuery, carried from this run's measurements.

    A model, stated so it can be checked: the same per-core speed as here, disk and memory not the
    bound; months run `cores // CORES_PER_MONTH` at a time. Each era's data work (`month_seconds`) is
    split, by the steps of the measured month nearest its size, into lake work (spreads over the
    months side by side) and warehouse steps (DuckDB: one after another, a floor on any machine,
    pessimistic since its insert would get more than this machine's two threads; Postgres: side by
    side as well). On BigQuery the machine
    does only the lake work and uploads the lake (its bytes per row measured from this run's lake) at
    `UPLOAD_GBIT_PER_S`, the two overlapped; the load and query jobs run in BigQuery, which cannot be
    measured here (the tests' emulator is not its speed), so they are not in the figure.
    """
    jobs = {key: measured for key, measured in _jobs(rows).items() if all(job.get("steps") for job in measured)}
    hours = lambda seconds: round(seconds / 3600, 2)  # noqa: E731
    at_once = {cores: max(cores // CORES_PER_MONTH, 1) for cores in (2, *BIGGER_MACHINES)}
    machines: dict[str, dict[str, float]] = {}
    out: dict[str, Any] = {"cores_per_month": CORES_PER_MONTH, "hours_on_cores": machines}
    for warehouse in ("duckdb", "postgres"):
        if not all((warehouse, RATE_FROM[e.service]) in jobs for e in HISTORY):
            continue
        seconds = lake = 0.0
        for era in HISTORY:
            measured, size = jobs[(warehouse, RATE_FROM[era.service])], era.rows / era.months
            era_seconds = era.months * month_seconds(measured, size)
            seconds += era_seconds
            lake += era_seconds * (1 - warehouse_share(_nearest(measured, size)["steps"]))
        for cores in BIGGER_MACHINES:
            spread = seconds / at_once[cores]
            machines.setdefault(str(cores), {})[warehouse] = hours(spread if warehouse == "postgres" else max(spread, seconds - lake))
        if warehouse != "duckdb":
            continue
        out["duckdb_warehouse_floor_hours"] = hours(seconds - lake)

        def lake_bytes_per_row(era: Era) -> float:
            job = _nearest(jobs[("duckdb", RATE_FROM[era.service])], era.rows / era.months)
            return (job.get("lake_bytes") or 0) / job["rows"]

        if all(lake_bytes_per_row(era) for era in HISTORY):
            upload = sum(era.rows * lake_bytes_per_row(era) for era in HISTORY)
            upload_seconds = upload * 8 / (UPLOAD_GBIT_PER_S * 1e9)
            out["bigquery"] = {
                "upload_gb": round(upload / 1e9, 1),
                "upload_gbit_per_s": UPLOAD_GBIT_PER_S,
                "upload_hours": hours(upload_seconds),
                "machine_hours_on_cores": {str(c): hours(max(lake / n, upload_seconds)) for c, n in at_once.items()},
            }
    return out if machines else None


def overhead_per_month(rows: list[dict[str, Any]]) -> float | None:
    """Dagster's own seconds per month in the daemon backfill (wall time beyond the data work): the one
    `make backfill` launches when it ran (the history is one backfill, so the UI's once-per-backfill wait
    for the backfill daemon's loop would not recur every 24 months), else the UI's."""
    for variant in ("backfill-daemon-cli", "backfill-daemon"):
        for row in rows:
            if row["variant"] == variant and row["ok"] and row["seconds"] and row.get("data_work_seconds"):
                return max(row["seconds"] - row["data_work_seconds"], 0.0) / row["months"]
    return None


def projections(rows: list[dict[str, Any]], warehouses: list[str]) -> list[dict[str, Any]]:
    """The projection rows of a run: one per warehouse measured, each with the figures carried elsewhere."""
    overhead, elsewhere = overhead_per_month(rows), project_elsewhere(rows)
    return [{**p, "elsewhere": elsewhere} for warehouse in warehouses if (p := project(rows, warehouse, overhead)) is not None]
