"""The peers: the zoomcamp recipe (the baseline every speed-up is over) and, in the bench's alternated
headline, dlt (what a user would pick instead of us) and our own Postgres table step alone (the floor
under our Postgres chain)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from typing import Any

from benchmarks.common import PY, ROOT, YELLOW_MONTH, Result, drop_schema

DLT_VERSION = importlib.metadata.version("dlt") if importlib.util.find_spec("dlt") else None


def zoomcamp_result(bench, rows: int) -> Result:
    """The course's pandas recipe on the yellow csv.gz month, into the same server, once."""
    name = "zoomcamp-yellow"
    result_path = bench.data / "logs" / f"{name}.json"
    result_path.unlink(missing_ok=True)
    url = f"{bench.mirror_url}/yellow/yellow_tripdata_{YELLOW_MONTH}.csv.gz"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [PY, "-m", "benchmarks.zoomcamp", "--url", url, "--pg-url", bench.pg_url, "--result", str(result_path)]
    run, out, log_path = bench._child(name, argv, env)
    ok = run.returncode == 0 and out.get("rows") == rows
    return bench.add(Result(
        "zoomcamp", "yellow", "csv.gz", rows, out.get("work_seconds"), run.peak_rss_mb,
        process_seconds=run.wall_seconds, cpu_seconds=run.cpu_seconds, max_single_rss_mb=run.max_single_rss_mb,
        peak_processes=run.peak_processes, ok=ok, warehouse="postgres",
        extra={"rows_loaded": out.get("rows_loaded"), "rows_read": out.get("rows"), "host_probe_s": out["host_probe_s"],
               "method": "pandas.read_csv(chunksize=100000, dtype map) + to_sql(if_exists='append') via "
                         "SQLAlchemy/psycopg2", "log": str(log_path)},
    ))


def dlt_child(bench, filters: bool, k: int) -> tuple:
    """dlt on the same parquet month, into the same server, a fresh dataset each run."""
    name = "dlt-zoomcamp-filters" if filters else "dlt-parquet-adbc"
    dataset = "bench_" + name.replace("-", "_")
    drop_schema(bench.pg_url, dataset)
    result_path = bench.data / "logs" / f"{name}-{k}.json"
    result_path.unlink(missing_ok=True)
    parquet = bench.mirror_root / "trip-data" / f"yellow_tripdata_{YELLOW_MONTH}.parquet"
    argv = [PY, "-m", "benchmarks.dlt_peer", "--parquet", str(parquet), "--pg-url", bench.pg_url,
            "--dataset", dataset, "--result", str(result_path), *(["--filters"] if filters else [])]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUNTIME__LOG_LEVEL": "WARNING"}
    run, out, log_path = bench._child(f"{name}-{k}", argv, env)
    drop_schema(bench.pg_url, dataset)  # its WAL and files are not left for the next variant to flush
    return run, out, log_path

def dlt_result(bench, filters: bool, rows: int, children: list) -> Result:
    run, out, log_path = sorted(children, key=lambda c: c[1].get("work_seconds") or 0)[len(children) // 2]
    ok = all(c.returncode == 0 and o.get("rows") == rows for c, o, _ in children)
    return bench.add(Result(
        "dlt-zoomcamp-filters" if filters else "dlt-parquet-adbc", "yellow", "parquet", rows, out.get("work_seconds"),
        max(c[0].peak_rss_mb or 0 for c in children) or None,
        process_seconds=run.wall_seconds, cpu_seconds=run.cpu_seconds, max_single_rss_mb=run.max_single_rss_mb,
        peak_processes=run.peak_processes, ok=ok, warehouse="postgres",
        extra={"method": f"dlt {DLT_VERSION}: Arrow batches of the parquet file -> pipeline.run(loader_file_format="
                         "'parquet') -> Postgres through its ADBC job; write_disposition='replace'"
                         + ("; passenger_count > 0 and trip_distance > 0 on each batch" if filters else ""),
               "seconds_runs": [o.get("work_seconds") for _, o, _ in children],
               "host_probe_s": [o["host_probe_s"] for _, o, _ in children],
               "rows_loaded": out.get("rows_loaded"), "file_formats": out.get("file_formats"), "log": str(log_path)},
    ))


TABLE_STEP = "postgres-table-step"
#: Where the headline's Postgres chain leaves its lake (Bench.pipeline_child's name for it).
_CHAIN = "dagster-in-process-yellow-parquet-ingest-postgres"


def table_step_child(bench, k: int) -> tuple:
    """The table step alone on the month the Postgres chain of this round just put in its lake."""
    schema = "bench_" + TABLE_STEP.replace("-", "_")
    drop_schema(bench.pg_url, schema)
    result_path = bench.data / "logs" / f"{TABLE_STEP}-{k}.json"
    result_path.unlink(missing_ok=True)
    argv = [PY, "-m", "benchmarks.table_step", "--lake", str(bench.data / "lake" / _CHAIN), "--month", YELLOW_MONTH,
            "--pg-url", bench.pg_url, "--schema", schema, "--result", str(result_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run, out, log_path = bench._child(f"{TABLE_STEP}-{k}", argv, env)
    drop_schema(bench.pg_url, schema)
    return run, out, log_path


def table_step_result(bench, children: list) -> Result:
    run, out, log_path = sorted(children, key=lambda c: c[1].get("work_seconds") or 0)[len(children) // 2]
    rows = out.get("rows")
    ok = all(c.returncode == 0 and o.get("rows") and o.get("rows") == o.get("rows_in_lake") for c, o, _ in children)
    return bench.add(Result(
        TABLE_STEP, "yellow", "parquet", rows or 0, out.get("work_seconds"),
        max(c[0].peak_rss_mb or 0 for c in children) or None,
        process_seconds=run.wall_seconds, cpu_seconds=run.cpu_seconds, max_single_rss_mb=run.max_single_rss_mb,
        peak_processes=run.peak_processes, ok=ok, warehouse="postgres", scope="table",
        extra={"method": "PostgresWarehouse.replace_month of the month's cleaned day files from the Postgres chain's "
                         "lake (binary COPY, CHECK, time BRIN, zone-pair btree, ANALYZE, durable commit, swap); "
                         "no download, cleaning, lake writes or Dagster",
               "seconds_runs": [o.get("work_seconds") for _, o, _ in children],
               "host_probe_s": [o["host_probe_s"] for _, o, _ in children], "log": str(log_path)},
    ))


def compare_with_dlt(rows: list[dict[str, Any]]) -> None:
    """The faster dlt variant of the same run over our yellow parquet chain (`x_vs_dlt`), and over
    the Postgres table step alone; the Postgres chain over that table step (`x_of_table_step`), and
    its ceiling here: dlt over the chain's ingest and table steps back to back (`x_vs_dlt_ceiling`)."""
    peers = [r["seconds"] for r in rows if r["variant"].startswith("dlt") and r["ok"] and r["seconds"]]
    floor = next((r["seconds"] for r in rows if r["variant"] == TABLE_STEP and r["ok"] and r["seconds"]), None)
    for row in rows:
        headline = (row["variant"], row["service"], row["format"], row.get("scope")) == (
            "dagster-in-process", "yellow", "parquet", "ingest")
        compared = headline or row["variant"] == TABLE_STEP
        row["x_vs_dlt"] = round(min(peers) / row["seconds"], 2) if compared and peers and row["seconds"] else None
        if headline and row.get("warehouse") == "postgres" and floor and row["seconds"]:
            row["x_of_table_step"] = round(row["seconds"] / floor, 2)
            steps = row.get("steps") or {}
            data_steps = [s for step, s in steps.items() if step.endswith(("_ingest", "__trips_table"))]
            if peers and len(data_steps) == 2:
                # The load sends the month day by day, each day sorted, so it starts only once the ingest
                # has written every day: a chain run takes at least its two data steps back to back.
                # dlt over that sum is the most the chain can reach on this machine without giving up
                # the month's time order, with Dagster and the checks costing nothing.
                row["x_vs_dlt_ceiling"] = round(min(peers) / sum(data_steps), 2)
