"""`python -m benchmarks.run --quick` end to end: it runs, and its JSON says what the bench promises.

No timing assertions: the machine's speed is not under test, only that every variant ran on the rows
that were generated and that the results file carries the fields runs are compared on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from benchmarks import host_probe
from benchmarks.history import HISTORY, RATE_FROM, month_seconds
from benchmarks.report import _probe_before
from benchmarks.common import _month_list
from devtools.backfill import MONTHS_PER_RUN
from benchmarks.run import BACKFILL_START, QUICK

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"variant", "service", "scope", "warehouse", "rows", "seconds", "rows_per_s", "peak_rss_mb", "ratio_vs_zoomcamp",
            "loadavg_start", "loadavg_end", "arrow_default_memory_pool"}


def _quick_bench(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    """`benchmarks.run --quick` with its data under tmp_path/bench and its results in tmp_path/results."""
    argv = [sys.executable, "-m", "benchmarks.run", "--quick", "--data-dir", str(tmp_path / "bench"),
            "--results-dir", str(tmp_path / "results"), *options]
    if os.environ.get("TAXI_TEST_POSTGRES_URL"):
        argv += ["--pg-url", os.environ["TAXI_TEST_POSTGRES_URL"]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, f"bench failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def test_quick_bench_writes_one_result_file_with_the_generated_rows(tmp_path: Path) -> None:
    done = _quick_bench(tmp_path, "--timeout", "300")

    files = list((tmp_path / "results").glob("bench-*.json"))
    assert len(files) == 1, files
    rows = json.loads(files[0].read_text())
    assert isinstance(rows, list) and rows
    measured = [r for r in rows if r["variant"] != "projection"]
    for row in rows:
        assert REQUIRED <= row.keys(), f"{row['variant']} lacks {REQUIRED - row.keys()}"
        assert row["ok"] is True, row
        assert row["arrow_default_memory_pool"] == (os.environ.get("ARROW_DEFAULT_MEMORY_POOL") or None)
        assert row["seconds"] > 0 and row["rows_per_s"] > 0
    assert all(r["peak_rss_mb"] > 0 for r in measured)
    # how fast the machine was before each child: a row keeps its children's probes (one per run), and the
    # run's summary counts every one of them
    probes = []
    for row in measured:
        seen = row["host_probe_s"]
        seen = seen if isinstance(seen, list) else [seen]
        assert len(seen) == len(row.get("seconds_runs") or [None]) and all(p > 0 for p in seen), row["variant"]
        probes += seen
    summary = rows[0]["host_probe_summary"]
    assert all(r["host_probe_summary"] == summary for r in rows)
    assert summary["n"] == len(probes) and (summary["min"], summary["max"]) == (min(probes), max(probes))
    assert f"median {summary['median']:.3f} s" in done.stdout
    # ... and the bar's lines say how fast it was just before the run they report
    embedded = next(r for r in measured if (r["variant"], r["scope"], r["warehouse"], r["format"]) == (
        "dagster-in-process", "ingest", "duckdb", "parquet"))
    assert f"({embedded['seconds']:.2f} s; host probe {embedded['host_probe_s'][0]:.2f} s before it)" in done.stdout
    by_variant = {(r["variant"], r["service"], r["format"], r["scope"], r["warehouse"]): r for r in rows}
    ours = {("dagster-in-process", "yellow", "parquet", "ingest"), ("dagster-in-process", "yellow", "csv.gz", "ingest"),
            ("dagster-in-process", "yellow", "parquet", "job"), ("dagster-in-process", "yellow", "parquet", "job-large"),
            ("dagster-in-process", "fhvhv", "parquet", "job"),
            ("dagster-in-process", "fhv", "parquet", "job")}
    assert set(by_variant) == {
        ("zoomcamp", "yellow", "csv.gz", None, "postgres"),
        # the peer: dlt on the same parquet month into the same server, plain and with the zoomcamp's filters
        ("dlt-parquet-adbc", "yellow", "parquet", None, "postgres"),
        ("dlt-zoomcamp-filters", "yellow", "parquet", None, "postgres"),
        # the floor under our Postgres chain: its table step alone, on the month the chain put in its lake
        ("postgres-table-step", "yellow", "parquet", "table", "postgres"),
        # ours on the embedded default and on Postgres, in the same run
        *((*key, warehouse) for key in ours for warehouse in ("duckdb", "postgres")),
        ("backfill-in-process", "yellow", "parquet", "job", "duckdb"),
        ("projection", "all", "parquet", "whole-history", "duckdb"),
        ("projection", "all", "parquet", "whole-history", "postgres"),
    }
    for warehouse in ("duckdb", "postgres"):
        # the ingest scope is the issue's chain with its checks; the job adds the rejects summary and the mart
        ingest = by_variant[("dagster-in-process", "yellow", "parquet", "ingest", warehouse)]
        job = by_variant[("dagster-in-process", "yellow", "parquet", "job", warehouse)]
        assert set(ingest["checks"]) == {"audit", "keys_not_null", "pickups_within_month", "reconciles_with_raw", "matches_lake"}
        assert not any("mart" in step or "rejects_summary" in step for step in ingest["steps"])
        assert set(job["checks"]) == set(ingest["checks"]) | {"trips_add_up"}
        assert any("daily_zone_mart" in step for step in job["steps"]) and any("rejects_summary" in step for step in job["steps"])
        # the headline row says how it stands against the faster dlt variant of the same run
        faster_dlt = min(r["seconds"] for r in rows if r["variant"].startswith("dlt"))
        assert ingest["x_vs_dlt"] == round(faster_dlt / ingest["seconds"], 2)
    assert all(len(r["seconds_runs"]) == 1 for r in rows if r["variant"] == "dagster-in-process")  # --quick: one run each
    # the table step alone loaded the rows the chain kept, and says how far dlt is from it
    floor = by_variant[("postgres-table-step", "yellow", "parquet", "table", "postgres")]
    chain = by_variant[("dagster-in-process", "yellow", "parquet", "ingest", "postgres")]
    assert floor["rows"] == chain["rows_kept"] == chain["rows_in_warehouse"]
    assert floor["x_vs_dlt"] == round(faster_dlt / floor["seconds"], 2)
    assert chain["x_of_table_step"] == round(chain["seconds"] / floor["seconds"], 2)
    # the most the chain could reach here: its sorted load cannot start before the ingest step ends
    assert chain["x_vs_dlt_ceiling"] == round(faster_dlt / (chain["steps"]["yellow_ingest"] + chain["steps"]["yellow__trips_table"]), 2)
    assert f"at most ~{chain['x_vs_dlt_ceiling']:.2f}x on this machine" in done.stdout
    assert by_variant[("dagster-in-process", "yellow", "parquet", "ingest", "duckdb")].get("x_of_table_step") is None
    assert f"the table step alone ({floor['seconds']:.2f} s)" in done.stdout

    # the baseline has no ratio to itself; everything else is compared with it
    assert by_variant[("zoomcamp", "yellow", "csv.gz", None, "postgres")]["ratio_vs_zoomcamp"] is None
    assert all(r["ratio_vs_zoomcamp"] > 0 for r in measured if r["variant"] != "zoomcamp")

    # dlt read every generated row; with the filters it loaded fewer
    plain, filtered = (by_variant[(v, "yellow", "parquet", None, "postgres")] for v in ("dlt-parquet-adbc", "dlt-zoomcamp-filters"))
    assert plain["rows_loaded"] == plain["rows"] == QUICK["yellow_rows"]
    assert 0 < filtered["rows_loaded"] < filtered["rows"]
    assert "parquet" in plain["file_formats"]

    # the whole history, carried from this run's whole jobs (yellow's two months for the taxis, fhvhv's
    # and fhv's for their own rows): their data work, the time inside their steps, and their runs' wall
    assert QUICK["yellow_large_rows"] > QUICK["yellow_rows"]
    for warehouse in ("duckdb", "postgres"):
        projection = by_variant[("projection", "all", "parquet", "whole-history", warehouse)]
        jobs = {s: [by_variant[("dagster-in-process", s, "parquet", scope, warehouse)] for scope in scopes]
                for s, scopes in (("yellow", ("job", "job-large")), ("fhvhv", ("job",)), ("fhv", ("job",)))}
        assert [job["rows"] for job in jobs["yellow"]] == [QUICK["yellow_rows"], QUICK["yellow_large_rows"]] == projection["carried_from"]["yellow"]
        for job in (job for measured in jobs.values() for job in measured):
            assert 0 < job["steps_seconds"] < job["seconds"]
            assert job["steps_seconds"] == pytest.approx(sum(job["steps"].values()), abs=1e-3)
        assert projection["rows"] == sum(e.rows for e in HISTORY)
        assert projection["seconds"] == pytest.approx(
            sum(e.months * month_seconds(jobs[RATE_FROM[e.service]], e.rows / e.months) for e in HISTORY), rel=1e-3)
        assert projection["hours_at_run_wall"] == pytest.approx(
            sum(e.months * month_seconds(jobs[RATE_FROM[e.service]], e.rows / e.months, wall=True) for e in HISTORY) / 3600,
            abs=0.006)
        assert projection["hours_at_run_wall"] > projection["hours_data_work"]
        fhv = jobs["fhv"][0]
        assert projection["rates_rows_per_s"]["fhv"] == pytest.approx(fhv["rows"] / fhv["steps_seconds"], abs=1)
    assert "projected on this machine, duckdb" in done.stdout
    # ... and carried to bigger machines and to BigQuery, from the steps and the lake this run measured
    assert all(r["lake_bytes"] > 0 for r in measured if r["variant"] == "dagster-in-process")
    elsewhere = by_variant[("projection", "all", "parquet", "whole-history", "duckdb")]["elsewhere"]
    assert elsewhere["bigquery"]["upload_gb"] > 0
    assert elsewhere["hours_on_cores"]["8"]["duckdb"] >= elsewhere["duckdb_warehouse_floor_hours"] > 0
    assert "carried to bigger machines" in done.stdout and "on BigQuery" in done.stdout

    # rows: what the generator wrote, read back by each variant
    mirror = tmp_path / "bench" / "mirror" / "quick"
    yellow = pq.ParquetFile(mirror / "trip-data" / "yellow_tripdata_2021-01.parquet").metadata.num_rows
    fhvhv = pq.ParquetFile(mirror / "trip-data" / "fhvhv_tripdata_2021-01.parquet").metadata.num_rows
    fhv = pq.ParquetFile(mirror / "trip-data" / "fhv_tripdata_2017-06.parquet").metadata.num_rows
    large = pq.ParquetFile(mirror / "trip-data" / "yellow_tripdata_2014-03.parquet").metadata.num_rows
    assert (yellow, large, fhvhv, fhv) == (QUICK["yellow_rows"], QUICK["yellow_large_rows"], QUICK["fhvhv_rows"], QUICK["fhv_rows"])
    zoomcamp = by_variant[("zoomcamp", "yellow", "csv.gz", None, "postgres")]
    assert zoomcamp["rows"] == zoomcamp["rows_read"] == yellow
    assert 0 < zoomcamp["rows_loaded"] < yellow  # passenger_count > 0 dropped some
    for (*key, warehouse), generated in (
        (key + (warehouse,), large if key[3] == "job-large" else {"yellow": yellow, "fhvhv": fhvhv, "fhv": fhv}[key[1]])
        for key in ours for warehouse in ("duckdb", "postgres")
    ):
        row = by_variant[(*key, warehouse)]
        assert row["rows"] == row["rows_read"] == generated, row
        assert row["rows_kept"] + row["rows_rejected"] == generated
        assert row["rows_in_warehouse"] == row["rows_kept"]
    # the same rule drops the same rows: the zoomcamp's filter and our passenger_count rule agree
    assert by_variant[("dagster-in-process", "yellow", "csv.gz", "ingest", "duckdb")]["rows_kept"] <= zoomcamp["rows_loaded"]
    backfill = by_variant[("backfill-in-process", "yellow", "parquet", "job", "duckdb")]
    assert backfill["rows"] == QUICK["months"] * QUICK["backfill_rows"]
    assert backfill["months"] == QUICK["months"] and backfill["months_per_minute"] > 0
    assert 0 <= backfill["overhead_share_of_run_time"] <= 1
    assert "x zoomcamp" in done.stdout  # the table was printed
    # the bar is read only on its own sizes: a --quick run measures every figure and judges none
    bar = done.stdout[done.stdout.index("Against issue 13's bar"):].splitlines()[1:7]
    assert len(bar) == 6 and all(" - " in line and "not measured" not in line for line in bar), bar
    assert backfill["data_work_seconds"] == pytest.approx(backfill["step_seconds_total"], abs=0.01)


def test_the_daemon_backfill_runs_every_launch_on_its_own_when_everything_else_is_skipped(tmp_path: Path) -> None:
    """`make bench`'s daemon backfill, alone (`--skip` of every other variant): the UI's asset backfill
    and make backfill's two launches each bring up a webserver and a daemon, and every month lands
    through them. (Skipping the other variants once left the daemon without its logs folder.)"""
    _quick_bench(tmp_path, "--backfill", "daemon", "--warehouse", "duckdb", "--timeout", "240",
                 "--skip", "zoomcamp,dlt,dagster-cli,dagster-in-process")
    data = tmp_path / "bench"

    (result_file,) = (tmp_path / "results").glob("bench-*.json")
    rows = {r["variant"]: r for r in json.loads(result_file.read_text())}
    # no fallback to in-process runs: every daemon launch succeeded
    assert set(rows) == {"backfill-daemon", "backfill-daemon-cli", "backfill-daemon-cli-monthly"}, sorted(rows)
    for variant, row in rows.items():
        assert row["ok"] is True and row["backfill_status"] in ("COMPLETED", "COMPLETED_SUCCESS"), row
        # make backfill's runs carry up to MONTHS_PER_RUN months each; the others, a month each
        runs = -(-QUICK["months"] // MONTHS_PER_RUN) if variant == "backfill-daemon-cli" else QUICK["months"]
        assert row["months"] == QUICK["months"] and row["runs"] == runs and row["run_statuses"] == ["SUCCESS"], row
        assert row["rows"] == QUICK["months"] * QUICK["backfill_rows"]
        # every month landed in that variant's own warehouse, kept rows only
        name = f"{variant}-yellow"  # the bench's names for the variant's warehouse file and schema
        with duckdb.connect(str(data / f"{name}.duckdb"), read_only=True) as con:
            schema = "bench_" + name.replace("-", "_")
            per_month = con.execute(f'SELECT source_month, COUNT(*) FROM "{schema}".yellow_trips GROUP BY 1 ORDER BY 1').fetchall()
        assert [f"{m:%Y-%m}" for m, _ in per_month] == _month_list(BACKFILL_START, QUICK["months"]), per_month
        assert all(0 < n <= QUICK["backfill_rows"] for _, n in per_month), per_month
        assert (data / "logs" / f"{variant}-yellow-daemon.log").stat().st_size > 0
        # the CPU the months cost, process by process, from the launch on: the run workers did the
        # months' work in the daemon's tree; make backfill's launcher is a process of its own
        cpu = row["cpu_seconds_by_process"]
        assert cpu["daemon_tree"] > 0 and cpu["webserver_tree"] >= 0
        assert (cpu["launcher"] > 0) == (variant != "backfill-daemon"), cpu
        assert row["cpu_seconds"] == pytest.approx(cpu["daemon_tree"] + cpu["launcher"], abs=0.11)
        assert row["cpu_seconds_per_month"] == pytest.approx(row["cpu_seconds"] / QUICK["months"], abs=0.01)
    assert "make backfill" in rows["backfill-daemon-cli"]["method"] and "MONTHS_PER_RUN=1" in rows["backfill-daemon-cli-monthly"]["method"]
    assert "launchPartitionBackfill" in rows["backfill-daemon"]["method"]


def test_the_host_probe_times_the_same_work_every_time() -> None:
    assert host_probe.work() == host_probe.work()  # a seeded input and a fixed loop: its seconds compare across runs
    assert host_probe.probe_seconds() > 0
    assert host_probe.summary([0.3, 0.2, 0.6]) == {"n": 3, "min": 0.2, "median": 0.3, "max": 0.6, "first": 0.3, "last": 0.6}
    assert host_probe.summary([]) is None
    # the bar's line reports the median run, so it names the probe taken just before that run
    row = {"seconds": 3.0, "seconds_runs": [3.2, 3.0, 2.9], "host_probe_s": [0.2, 0.31, 0.19]}
    assert _probe_before(row) == "; host probe 0.31 s before it"


def test_runs_side_by_side_are_measured_against_the_work_their_steps_take_alone() -> None:
    """Two runs at once stretch each other's steps (they share the cores): the backfill's overhead is
    the wall time beyond what the same job's steps take alone, not beyond the stretched steps."""
    from types import SimpleNamespace

    from benchmarks.common import Result
    from benchmarks.daemon import _backfill_extra, work_alone_seconds
    from benchmarks.history import overhead_per_month

    alone = Result("dagster-in-process", "yellow", "parquet", 3_000_000, 9.0, 700.0, warehouse="duckdb", scope="job",
                   extra={"steps_seconds": 8.0})
    other = Result("dagster-in-process", "yellow", "parquet", 3_000_000, 20.0, 700.0, warehouse="postgres", scope="job",
                   extra={"steps_seconds": 15.0})
    bench = SimpleNamespace(results=[other, alone], args=SimpleNamespace(backfill_warehouse="duckdb"))
    work = work_alone_seconds(bench, 24, 1_500_000)
    assert work == pytest.approx(96.0)  # 24 months of half the rows, at the DuckDB job's rate
    # 24 months in 120 s of wall; the runs' steps, stretched by sharing the cores, add up to 150 s
    row = {"variant": "backfill-daemon", "ok": True, "seconds": 120.0,
           **_backfill_extra(24, 120.0, 150.0, 160.0, {}, work)}
    assert row["data_work_seconds"] == pytest.approx(96.0)
    assert row["dagster_overhead_share"] == pytest.approx(0.2)
    assert overhead_per_month([row]) == pytest.approx(1.0)
    # make backfill's launch is the history's: its measured overhead is the one carried
    cli = {**row, "variant": "backfill-daemon-cli", "seconds": 108.0}
    assert overhead_per_month([row, cli]) == pytest.approx(0.5)
    # nothing to measure against: no figure rather than a flattering one
    unmeasured = _backfill_extra(24, 120.0, 150.0, 160.0, {}, None)
    assert unmeasured["dagster_overhead_share"] is None
    assert overhead_per_month([{**row, **unmeasured}]) is None
    assert work_alone_seconds(SimpleNamespace(results=[other], args=bench.args), 24, 3_000_000) is None


def test_the_history_is_carried_to_bigger_machines_and_to_bigquery_from_the_measured_steps() -> None:
    """Lake work spreads over months side by side; DuckDB's warehouse steps stay one at a time (a
    floor on any machine); on BigQuery the machine does the lake work and uploads the lake."""
    from benchmarks.history import RATE_FROM, project_elsewhere

    def job(warehouse: str, service: str, rows: int, seconds: float, steps: dict[str, float], bytes_per_row: int) -> dict:
        """A whole job whose steps, in the proportions of `steps`, take `seconds`; its run a second more."""
        scale = seconds / sum(steps.values())
        return {"variant": "dagster-in-process", "scope": "job", "format": "parquet", "ok": True, "warehouse": warehouse,
                "service": service, "rows": rows, "rows_per_s": rows / (seconds + 1.0), "steps_seconds": seconds,
                "steps": {f"{service}__{k}": v * scale for k, v in steps.items()}, "lake_bytes": rows * bytes_per_row}

    yellow_steps = {"ingest": 9.0, "trips_table": 0.6, "rejects_summary": 0.2,
                    "daily_zone_mart": 0.1, "daily_zone_mart_trips_add_up": 0.1}  # a tenth of it in the warehouse
    fhvhv_steps = {"ingest": 45.0, "trips_table": 4.0, "daily_zone_mart": 1.0}  # a tenth too
    fhv_steps = {"ingest": 4.5, "trips_table": 0.4, "daily_zone_mart": 0.1}  # and here
    rows = [
        job("duckdb", "yellow", 3_000_000, 6.0, yellow_steps, 40), job("duckdb", "fhvhv", 20_000_000, 50.0, fhvhv_steps, 30),
        job("duckdb", "fhv", 5_000_000, 5.0, fhv_steps, 20),
        job("postgres", "yellow", 3_000_000, 10.0, yellow_steps, 40), job("postgres", "fhvhv", 20_000_000, 80.0, fhvhv_steps, 30),
        job("postgres", "fhv", 5_000_000, 8.0, fhv_steps, 20),
    ]
    taxis, hire, fhv = (sum(e.rows for e in HISTORY if RATE_FROM[e.service] == s) for s in ("yellow", "fhvhv", "fhv"))
    duck = taxis / 500_000 + hire / 400_000 + fhv / 1_000_000
    duck_lake = duck * 0.9
    pg = taxis / 300_000 + hire / 250_000 + fhv / 625_000
    e = project_elsewhere(rows)
    hours = lambda s: pytest.approx(s / 3600, abs=0.01)  # noqa: E731
    assert e["duckdb_warehouse_floor_hours"] == hours(duck - duck_lake)
    on = e["hours_on_cores"]
    assert on["8"]["duckdb"] == hours(duck / 4)  # 4 months at once: the lake work is the bound
    assert on["32"]["duckdb"] == hours(duck - duck_lake)  # 16 months at once: the warehouse is
    assert on["8"]["postgres"] == hours(pg / 4) and on["32"]["postgres"] == hours(pg / 16)
    upload = taxis * 40 + hire * 30 + fhv * 20
    bq = e["bigquery"]
    assert bq["upload_gb"] == pytest.approx(upload / 1e9, abs=0.1)
    assert bq["machine_hours_on_cores"]["2"] == hours(max(duck_lake, upload * 8 / 1e9))
    assert bq["machine_hours_on_cores"]["32"] == hours(max(duck_lake / 16, upload * 8 / 1e9))
    # a lake it could not measure (a bucket) leaves BigQuery out, not the machines
    unmeasured = [{**r, "lake_bytes": None} for r in rows]
    assert "bigquery" not in project_elsewhere(unmeasured) and project_elsewhere(unmeasured)["hours_on_cores"] == on
    # a run that measured only one warehouse's jobs projects that one; none at all, nothing
    assert set(project_elsewhere(rows[:3])["hours_on_cores"]["8"]) == {"duckdb"}
    assert project_elsewhere([]) is None


def test_a_month_is_carried_from_the_line_through_the_measured_months() -> None:
    """Two measured months of a service: a fixed cost a month plus a cost a row, from the time inside
    the jobs' steps (or with wall=True the runs' own time); one month: its rate alone."""
    from benchmarks.history import month_seconds, project

    def job(rows: int, steps: float, wall: float, scope: str = "job", service: str = "yellow") -> dict:
        return {"variant": "dagster-in-process", "scope": scope, "format": "parquet", "ok": True, "warehouse": "duckdb",
                "service": service, "rows": rows, "seconds": wall, "rows_per_s": rows / wall, "steps_seconds": steps}

    small, large = job(3_000_000, 2.8, 3.1), job(14_500_000, 10.7, 11.0, "job-large")
    per_row = 7.9 / 11_500_000
    fixed = 2.8 - per_row * 3_000_000  # ~0.74 s a month
    assert month_seconds([small, large], 14_500_000) == pytest.approx(10.7)
    assert month_seconds([small, large], 100_000) == pytest.approx(fixed + per_row * 100_000)
    assert month_seconds([small, large], 3_000_000, wall=True) == pytest.approx(3.1)
    assert month_seconds([small], 14_500_000) == pytest.approx(2.8 / 3_000_000 * 14_500_000)
    # a noisy pair whose line would make a month's fixed cost negative: no fixed cost, the same cost a row
    slow_large = job(14_500_000, 15.0, 15.3, "job-large")
    assert month_seconds([small, slow_large], 1_000_000) == pytest.approx((15.0 - 2.8) / 11_500_000 * 1_000_000)
    assert month_seconds([small, slow_large], 1_000_000) > 2.8 / 3_000_000 * 1_000_000
    # a larger month that took less time than the smaller one: the larger one's rate, no line
    fast_large = job(14_500_000, 2.5, 2.9, "job-large")
    assert month_seconds([small, fast_large], 1_000_000) == pytest.approx(2.5 / 14_500_000 * 1_000_000)

    # the projection carries each era's months at their average size: green's 146 small months pay
    # yellow's fixed cost each, yellow's large months less a row than the 3M month alone would say
    rows = [small, large, job(20_000_000, 24.0, 24.3, service="fhvhv"), job(5_000_000, 2.8, 3.2, service="fhv")]
    by_line = project(rows, "duckdb", None)
    by_rate = project([r for r in rows if r["scope"] == "job"], "duckdb", None)
    eras = [e for e in HISTORY if e.service in ("yellow", "green")]
    assert by_line["per_service_hours"]["yellow"] + by_line["per_service_hours"]["green"] == pytest.approx(
        sum(e.months * fixed + e.rows * per_row for e in eras) / 3600, abs=0.011)
    assert by_line["per_service_hours"]["yellow"] < by_rate["per_service_hours"]["yellow"]
    assert by_line["per_service_hours"]["green"] > by_rate["per_service_hours"]["green"]
    assert by_line["per_service_hours"]["fhvhv"] == by_rate["per_service_hours"]["fhvhv"] == pytest.approx(
        1_400_000_000 * 24.0 / 20_000_000 / 3600, abs=0.006)
    assert by_line["carried_from"] == {"yellow": [3_000_000, 14_500_000], "fhvhv": [20_000_000], "fhv": [5_000_000]}


def test_a_ranged_run_records_each_month_it_finished_and_fails_the_rest() -> None:
    """The facts `benchmarks.ranged_runs` reports, which a backfill of several months per run relies on."""
    from benchmarks.ranged_runs import probe

    failed = probe("events only", fail_at="2024-03-01")["months"]
    assert {m: (v["cleaned"], v["cleaned_rows_per_materialization"], v["audit"]) for m, v in failed.items()} == {
        "2024-01-01": ("MATERIALIZED", [100], "SUCCEEDED"),
        "2024-02-01": ("MATERIALIZED", [200], "SUCCEEDED"),
        "2024-03-01": ("FAILED", [], "PLANNED"),
        "2024-04-01": ("FAILED", [], "PLANNED"),
    }
    # Without an output the downstream asset does not run; with one, Dagster adds its own
    # materialization of every month, after ours and without the month's metadata.
    assert {v["table"] for v in probe("events only", fail_at=None)["months"].values()} == {None}
    with_output = probe("events + output", fail_at=None)["months"]
    assert [v["cleaned_rows_per_materialization"] for v in with_output.values()] == [[100, None], [200, None], [300, None], [400, None]]
    assert {v["table"] for v in with_output.values()} == {"MATERIALIZED"}


def test_a_ranged_runs_first_step_can_record_the_downstream_months_it_did() -> None:
    """The design the backfill's ranges can take: separate assets kept, the first step doing each
    month's whole chain and recording it; the downstream step skipped, its months kept as recorded."""
    from benchmarks.ranged_runs import probe

    def seen(fail_at):
        months = probe("chain in the first step", fail_at=fail_at)["months"]
        return {m: (v["cleaned"], v["table"], v["table_rows_per_materialization"], v["matches"]) for m, v in months.items()}

    assert seen(None) == {
        "2024-01-01": ("MATERIALIZED", "MATERIALIZED", [10], "SUCCEEDED"),
        "2024-02-01": ("MATERIALIZED", "MATERIALIZED", [20], "SUCCEEDED"),
        "2024-03-01": ("MATERIALIZED", "MATERIALIZED", [30], "SUCCEEDED"),
        "2024-04-01": ("MATERIALIZED", "MATERIALIZED", [40], "SUCCEEDED"),
    }
    assert seen("2024-03-01") == {
        "2024-01-01": ("MATERIALIZED", "MATERIALIZED", [10], "SUCCEEDED"),
        "2024-02-01": ("MATERIALIZED", "MATERIALIZED", [20], "SUCCEEDED"),
        "2024-03-01": ("FAILED", "FAILED", [], "PLANNED"),
        "2024-04-01": ("FAILED", "FAILED", [], "PLANNED"),
    }


def test_the_tree_sampler_adds_up_the_cpu_of_every_process_in_the_tree() -> None:
    """`TreeSampler.cpu_seconds`: a child and its own child each use 0.6 s of CPU (by their own
    clocks) and stay a moment, so the sampler sees both; nothing outside the tree is counted."""
    from benchmarks.rss import TreeSampler

    burn = ("import time\nwhile time.process_time() < 0.6: pass\ntime.sleep(0.4)\n")
    script = (f"import subprocess, sys\nkid = subprocess.Popen([sys.executable, '-c', {burn!r}])\n{burn}kid.wait()\n")
    outside = subprocess.Popen([sys.executable, "-c", burn])  # the same work, not in the sampled tree
    proc = subprocess.Popen([sys.executable, "-c", script])
    with TreeSampler(proc.pid) as sampler:
        proc.wait()
    outside.wait()
    assert 1.1 <= sampler.cpu_seconds < 1.7, sampler.cpu_seconds  # (/proc counts whole clock ticks)


def test_the_bar_is_judged_on_the_issues_sizes_and_says_what_was_not_measured() -> None:
    from benchmarks.report import bar_verdicts

    ours = {"variant": "dagster-in-process", "format": "parquet", "ok": True}
    rows = [
        {**ours, "service": "yellow", "scope": "ingest", "warehouse": "duckdb", "rows": 3_000_000, "seconds": 2.9, "rows_per_s": 1_034_483},
        {**ours, "service": "yellow", "scope": "job", "warehouse": "duckdb", "rows": 3_000_000, "seconds": 4.5, "rows_per_s": 666_667},
        {**ours, "service": "yellow", "scope": "ingest", "warehouse": "postgres", "rows": 3_000_000, "seconds": 7.0, "x_vs_dlt": 1.3,
         "x_vs_dlt_ceiling": 1.45},
        {**ours, "service": "fhvhv", "scope": "job", "warehouse": "duckdb", "rows": 20_000_000, "peak_rss_mb": 690.0},
        {**ours, "service": "fhvhv", "scope": "job", "warehouse": "postgres", "rows": 20_000_000, "peak_rss_mb": 1100.0},
        {"variant": "backfill-daemon", "ok": True, "months": 24, "dagster_overhead_share": 0.4},
        {"variant": "backfill-daemon-cli", "ok": True, "months": 24, "dagster_overhead_share": 0.08},
        {"variant": "projection", "warehouse": "duckdb", "ok": True, "hours_data_work": 1.2, "hours_at_run_wall": 1.31,
         "hours_with_dagster_overhead": 1.25, "carried_from": {"yellow": [3_000_000, 14_500_000]},
         "elsewhere": {"duckdb_warehouse_floor_hours": 0.64}},
    ]
    verdicts = {goal.split()[0] + " " + goal.split()[1]: (measured, met) for goal, measured, met in bar_verdicts(rows)}
    assert verdicts["embedded ingest"] == ("1,034,483 rows/s (2.90 s)", True)
    assert verdicts["embedded whole"] == ("1.55x (4.50 s)", False)
    assert verdicts["Postgres chain"] == ("1.30x (7.00 s); at most ~1.45x here (the chain's ingest and table steps alone)", False)
    assert verdicts["fhvhv month"] == ("duckdb 690 MB, postgres 1100 MB", False)  # one warehouse over 1 GB fails it
    assert verdicts["daemon backfill,"] == ("8 % (backfill-daemon-cli)", True)  # make backfill's launch is the one read
    assert verdicts["whole history"] == (
        "1.20 h projected from the jobs' steps (the steps in DuckDB, each month's copy, the marts and their checks: "
        "0.64 h of it); 1.31 h at the runs' wall, a run a month; 1.25 h with the daemon backfill's overhead", False)
    # the bar is on the data work: the runs' wall or the backfill's overhead above an hour does not fail it
    under = {**rows[-1], "hours_data_work": 0.98}
    assert {g.split()[1]: met for g, _, met in bar_verdicts([*rows[:-1], under])}["history"] is True
    # ... drawn from yellow's largest months, or from one month's rate; a line through smaller months is not judged
    one_month = {**under, "carried_from": {"yellow": [3_000_000]}}
    short_line = {**under, "carried_from": {"yellow": [3_000_000, 5_000_000]}}
    assert {g.split()[1]: met for g, _, met in bar_verdicts([*rows[:-1], one_month])}["history"] is True
    assert {g.split()[1]: met for g, _, met in bar_verdicts([*rows[:-1], short_line])}["history"] is None

    # one warehouse's fhvhv, a smaller month, no dlt, no backfill: shown, not judged
    small = [{**rows[0], "rows": 20_000, "rows_per_s": 5_000_000}, {**rows[2], "x_vs_dlt": None}, rows[3], rows[-1]]
    verdicts = {goal.split()[0] + " " + goal.split()[1]: (measured, met) for goal, measured, met in bar_verdicts(small)}
    assert verdicts["embedded ingest"] == ("5,000,000 rows/s (2.90 s) (below the bar's size)", None)
    assert verdicts["Postgres chain"] == ("not measured", None)
    assert verdicts["fhvhv month"] == ("duckdb 690 MB (below the bar's size, or one warehouse only)", None)
    assert verdicts["daemon backfill,"] == ("not measured", None) == verdicts["embedded whole"]
    assert verdicts["whole history"] == (
        "1.20 h projected from the jobs' steps (the steps in DuckDB, each month's copy, the marts and their checks: "
        "0.64 h of it); 1.31 h at the runs' wall, a run a month; 1.25 h with the daemon backfill's overhead "
        "(from months below the bar's sizes)", None)
