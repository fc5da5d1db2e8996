"""`make bench`: a TLC month end to end on this machine, the zoomcamp way and ours, side by side.

One run of `python -m benchmarks.run`:

1. generates realistic months with the project's generator (cached under data/bench/mirror: a rerun
   with the same sizes reuses the files) -- a yellow month (parquet and csv.gz), a yellow month of
   its largest era, an fhvhv month and an fhv month (parquet), and the months of the backfill -- and
   serves them over a local HTTP mirror;
2. starts a throwaway PostgreSQL (taxi_assets_tests/postgres_server.py), or uses --pg-url;
3. runs each variant in a child process while sampling the RSS of the child's whole process tree
   every 50 ms (benchmarks/rss.py), each after a probe of the host's speed (benchmarks/host_probe.py):
   - zoomcamp: the course's pandas recipe on the yellow csv.gz (benchmarks/zoomcamp.py);
   - dagster-in-process: our pipeline for one partition through `execute_in_process`, on a fresh
     lake and warehouse schema, in two scopes. `ingest` is the issue's chain, the one compared with
     the recipe: download from the mirror -> raw -> cleaned + rejected -> lake by pickup date ->
     Postgres table, with those assets' checks. `job` is the whole `<service>_monthly` job: the
     chain plus the rejects summary and the daily zone mart, with every check. Yellow runs
     `--repeats` times (default 3), each on a fresh lake and schema, and reports the median run;
     `job-large` is the whole job once on the month of yellow's largest era, for the history;
   - dagster-cli: the same yellow month through `dagster asset materialize` (a new process that loads
     the code location, as a user types it);
   - backfill-daemon (--backfill daemon, the default): N yellow months as one asset backfill launched
     over GraphQL (`launchPartitionBackfill`, as the UI does), executed by `dagster-daemon` (queued
     run coordinator, default run launcher) on an instance of its own; backfill-daemon-cli: the same
     months launched as `make backfill` does (runs of up to 12 months, queued through `dagster job
     launch` instead of waiting for the backfill daemon's next loop), on a daemon of its own;
     backfill-daemon-cli-monthly: as `make backfill MONTHS_PER_RUN=1` does (`dagster job backfill`, a
     run a month);
   - backfill-in-process (--backfill in-process, the --quick default, and the fallback when the
     daemon backfill fails): the same N months as N sequential in-process runs;
4. prints a table and writes benchmarks/results/bench-<UTC time>.json (a list of objects, one per
   variant).

Timing boundary. `seconds` is the variant's work as measured inside the child, from just before
the work starts (imports done, definitions loaded) to its end -- the same boundary for the zoomcamp
recipe and for ours. `process_seconds` is the child's whole life (interpreter start, imports, the
untimed zone lookup set-up included). `ratio_vs_zoomcamp` is rows/s over the zoomcamp's rows/s (for
the same month, the speed-up in time).

    python -m benchmarks.run                       # the full run (about 25 min on 2 cores)
    python -m benchmarks.run --quick               # tiny sizes, under a minute (the pytest smoke test)
    python -m benchmarks.run --yellow-rows 1000000 --skip zoomcamp --backfill in-process --months 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.children import SCOPES, SERVICE_ASSETS, _step_times, child_pipeline, child_zones
from benchmarks.common import (
    ARROW_POOL_ENV, PY, ROOT, YELLOW_MONTH, Result, _arrow_pool, _loadavg, _month_list, _r, _read_json, drop_schema,
    embedded_max_runs, log, pg_env, postgres,
)
from benchmarks.daemon import LAUNCHES, backfill_daemon, backfill_in_process
from benchmarks.history import LARGE_JOB_SCOPE, projections
from benchmarks.host_probe import probe_seconds, summary as probe_summary
from benchmarks.peers import (
    DLT_VERSION, compare_with_dlt, dlt_child, dlt_result, table_step_child, table_step_result, zoomcamp_result,
)
from benchmarks.report import print_report
from benchmarks.rss import run_sampled

FHVHV_MONTH = "2021-01"
#: The history's rows are mostly in yellow's large months (2011-2019, 7-14.5M rows each), which go
#: faster per row than the headline 3M month (a month's fixed cost is spread over more rows): the
#: whole job also runs on a month of its largest era, and the projection draws a line through the two.
YELLOW_LARGE_MONTH = "2014-03"
#: fhv's rate for the history: a month of its largest era (2015-01..2019-01, 670M of its 800M rows),
#: when the high-volume trips were still in its narrow files.
FHV_MONTH = "2017-06"
BACKFILL_START = "2020-01"  # the backfill's months: 2020-01 onwards (parquet)

FULL = {"yellow_rows": 3_000_000, "yellow_large_rows": 14_500_000, "fhvhv_rows": 20_000_000, "fhv_rows": 5_000_000,
        "months": 24, "backfill_rows": 3_000_000}
QUICK = {"yellow_rows": 20_000, "yellow_large_rows": 60_000, "fhvhv_rows": 30_000, "fhv_rows": 20_000, "months": 2,
         "backfill_rows": 10_000}

VARIANTS = ("zoomcamp", "dlt", "dagster-in-process", "dagster-cli", "backfill")
WAREHOUSES = ("duckdb", "postgres")


# ============================================================================ children (timed work)


@dataclass
class Bench:
    args: argparse.Namespace
    data: Path
    pg_url: str
    mirror_url: str
    mirror_root: Path
    results: list[Result] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)  # host_probe.probe_seconds() before each child
    _homes: set[str] = field(default_factory=set)

    def base_env(self, name: str, fmt: str, warehouse: str, home_name: str | None = None) -> dict[str, str]:
        """Environment of a variant: its own lake and warehouse schema; its own Dagster home unless
        `home_name` names a shared one (the in-process variants share one SQLite instance, created once)."""
        home = self.data / "dagster_home" / (home_name or name)
        if home_name is None or home_name not in self._homes:
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            # the instance config make writes for the embedded default (Makefile)
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n")
            self._homes.add(home_name or name)
        lake = self.data / "lake" / name
        shutil.rmtree(lake, ignore_errors=True)
        schema = "bench_" + name.replace("-", "_")
        drop_schema(self.pg_url, schema)
        source = f"{self.mirror_url}/trip-data" if fmt == "parquet" else self.mirror_url + "/{service}"
        env = {
            **os.environ,
            **pg_env(self.pg_url),
            "DAGSTER_HOME": str(home),
            "TAXI_SOURCE_URL": source,
            "TAXI_SOURCE_FORMAT": fmt,
            "TAXI_ZONES_URL": f"{self.mirror_url}/misc/taxi_zone_lookup.csv",
            "TAXI_LAKE_URI": str(lake),
            "TAXI_WAREHOUSE_SCHEMA": schema,
            "TAXI_DUCKDB_PATH": str(self.data / f"{name}.duckdb"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        if warehouse == "duckdb":
            env["TAXI_WAREHOUSE"] = "duckdb"
            Path(env["TAXI_DUCKDB_PATH"]).unlink(missing_ok=True)
        return env

    def _child(self, name: str, argv: list[str], env: dict[str, str]) -> tuple[Any, dict[str, Any], Path]:
        logs = self.data / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        self.probes.append(probe := probe_seconds())
        with open(log_path, "w") as fh:
            run = run_sampled(argv, env=env, cwd=str(ROOT), stdout=fh, stderr=subprocess.STDOUT,
                              timeout=self.args.timeout)
        result_path = self.data / "logs" / f"{name}.json"
        return run, {**_read_json(result_path), "host_probe_s": probe}, log_path

    def add(self, result: Result) -> Result:
        self.results.append(result)
        rps = f"{result.rows_per_s:,.0f} rows/s" if result.rows_per_s else "-"
        secs = f"{result.seconds:.2f} s" if result.seconds is not None else "-"
        peak = f"{result.peak_rss_mb:.0f} MB" if result.peak_rss_mb is not None else "-"
        log(f"   {result.variant} {result.service} {result.fmt}: {'ok' if result.ok else 'FAILED'} "
            f"{secs}, {rps}, peak RSS {peak}")
        return result

    # -- the variants ---------------------------------------------------------------------
    def pipeline_child(self, service: str, fmt: str, month: str, scope: str, warehouse: str, k: int,
                       label: str | None = None) -> tuple:
        """One run of the month in a child of its own, on a fresh lake and warehouse (schema or file):
        the first load of a month, as the monthly schedule does it. `label` names the variant's scope
        (and its lake, file and logs) when it is not the child's `scope`."""
        name = f"dagster-in-process-{service}-{fmt.replace('.', '')}-{label or scope}-{warehouse}"
        env = self.base_env(name, fmt, warehouse, home_name="in-process")
        result_path = self.data / "logs" / f"{name}-{k}.json"  # (one log and report per repeat)
        result_path.unlink(missing_ok=True)
        argv = [PY, "-m", "benchmarks.run", "child-pipeline", "--service", service, "--months", month, "--zones",
                "--scope", scope, "--result", str(result_path)]
        run, out, log_path = self._child(f"{name}-{k}", argv, env)
        return run, out, (out.get("runs") or [{}])[0], log_path

    def pipeline_result(self, service: str, fmt: str, rows: int, scope: str, warehouse: str, children: list,
                        label: str | None = None) -> Result:
        """`seconds` is the median run, every run's time is kept in `seconds_runs`, the peak RSS is the highest."""
        run, out, median, log_path = sorted(children, key=lambda c: c[2].get("seconds") or 0)[len(children) // 2]
        runs = [c[2] for c in children]
        ok = all(c.returncode == 0 and bool(o.get("ok")) for c, o, _, _ in children)
        steps = median.get("steps") or {}
        return self.add(Result(
            "dagster-in-process", service, fmt, rows, median.get("seconds"), max(c[0].peak_rss_mb or 0 for c in children) or None,
            process_seconds=run.wall_seconds, cpu_seconds=run.cpu_seconds, max_single_rss_mb=run.max_single_rss_mb,
            peak_processes=run.peak_processes, ok=ok, warehouse=warehouse, scope=label or scope,
            extra={
                "assets": list(SCOPES[scope]),
                "method": f"{out.get('job', '?')}.execute_in_process(partition_key=...)",
                "seconds_runs": [r.get("seconds") for r in runs],
                "host_probe_s": [c[1]["host_probe_s"] for c in children],
                "rows_read": (median.get("rows_kept") or 0) + (median.get("rows_rejected") or 0) or None,
                "rows_kept": median.get("rows_kept"),
                "rows_in_warehouse": median.get("rows_in_warehouse"),
                "rows_rejected": median.get("rows_rejected"),
                "run_seconds": median.get("run_seconds"),
                "steps_seconds": round(sum(steps.values()), 3) if steps else None,
                "steps": steps,
                "checks": median.get("checks"),
                "import_seconds": _r(out.get("import_seconds")),
                "lake_bytes": out.get("lake_bytes"),
                "error": next((r["error"] for r in runs if r.get("error")), None),
                "log": str(log_path),
            },
        ))

    def pipeline(self, service: str, fmt: str, month: str, rows: int, scope: str, warehouse: str, repeats: int = 1,
                 label: str | None = None) -> Result:
        children = [self.pipeline_child(service, fmt, month, scope, warehouse, k, label) for k in range(1, repeats + 1)]
        return self.pipeline_result(service, fmt, rows, scope, warehouse, children, label)

    def cli(self, service: str, fmt: str, month: str, rows: int) -> Result:
        """`dg launch` of the service's assets for one partition, as a user types it (README)."""
        name = f"dagster-cli-{service}-{fmt.replace('.', '')}"
        env = self.base_env(name, fmt, self.args.backfill_warehouse)
        setup = subprocess.run([PY, "-m", "benchmarks.run", "child-zones"], env=env, cwd=ROOT,
                               capture_output=True, text=True)
        if setup.returncode:
            log(setup.stdout[-2000:] + setup.stderr[-2000:])
        select = ",".join(f"{service}/{a}" for a in SERVICE_ASSETS)
        argv = [str(Path(PY).parent / "dg"), "launch", "--assets", select, "--partition", month]
        run, out, log_path = self._child(name, argv, env)
        import dagster as dg

        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            records = [r for r in instance.get_run_records() if r.dagster_run.tags.get("dagster/partition") == month]
            record = records[0] if records else None
            steps = _step_times(instance, record.dagster_run.run_id) if record else {}
        run_seconds = (record.end_time - record.start_time) if record and record.end_time and record.start_time else None
        ok = run.returncode == 0 and record is not None and record.dagster_run.is_success
        return self.add(Result(
            "dagster-cli", service, fmt, rows, run.wall_seconds, run.peak_rss_mb,
            process_seconds=run.wall_seconds, cpu_seconds=run.cpu_seconds, max_single_rss_mb=run.max_single_rss_mb,
            peak_processes=run.peak_processes, ok=ok, warehouse=self.args.backfill_warehouse, scope="job",
            extra={"method": f"dg launch --assets <{service} assets> --partition {month} (seconds = the whole command)",
                   "run_seconds": _r(run_seconds), "steps_seconds": round(sum(steps.values()), 3) if steps else None,
                   "steps": steps, "host_probe_s": out["host_probe_s"], "log": str(log_path)},
        ))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes for a smoke run: {QUICK}")
    parser.add_argument("--yellow-rows", type=int, help=f"rows of the yellow month (default {FULL['yellow_rows']:,})")
    parser.add_argument("--yellow-large-rows", type=int,
                        help=f"rows of the yellow month of its largest era, {YELLOW_LARGE_MONTH} (default {FULL['yellow_large_rows']:,})")
    parser.add_argument("--fhvhv-rows", type=int, help=f"rows of the fhvhv month (default {FULL['fhvhv_rows']:,})")
    parser.add_argument("--fhv-rows", type=int, help=f"rows of the fhv month (default {FULL['fhv_rows']:,})")
    parser.add_argument("--months", type=int, help=f"months in the backfill (default {FULL['months']})")
    parser.add_argument("--backfill-rows", type=int,
                        help=f"rows of each backfill month (default {FULL['backfill_rows']:,})")
    parser.add_argument("--backfill-concurrency", type=int, default=embedded_max_runs(),
                        help="max concurrent runs of the daemon backfill (default: as make's instance, half the "
                             f"cores and at least 2: {embedded_max_runs()} here)")
    parser.add_argument("--skip", default="", help=f"comma-separated variants to leave out: {', '.join(VARIANTS)}")
    parser.add_argument("--backfill", choices=("daemon", "in-process", "both"),
                        help="how the backfill runs: through dagster-daemon (default; falls back to in-process "
                             "runs, and says so, if the daemon backfill fails) or as sequential in-process runs "
                             "(the --quick default)")
    parser.add_argument("--pg-url", default=os.environ.get("TAXI_BENCH_POSTGRES_URL"),
                        help="an existing server (libpq URL); default: a throwaway one")
    parser.add_argument("--pg-fast", action="store_true",
                        help="start the throwaway server with fsync/synchronous_commit off (default: durable, with the "
                             "compose server's settings: wal_level=minimal)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of each yellow in-process variant; the median is reported (default 3; --quick 1)")
    parser.add_argument("--warehouse", choices=(*WAREHOUSES, "both"), default="both",
                        help="where our chain loads: the embedded default (duckdb), postgres, or both alternated (default)")
    parser.add_argument("--backfill-warehouse", choices=WAREHOUSES, default="duckdb",
                        help="where the backfill and the CLI variant load (default: the embedded default)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--timeout", type=float, default=3600, help="per variant, seconds")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for key, default in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants in --skip: {sorted(unknown)}; known: {VARIANTS}")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.backfill is None:
        # a webserver and a daemon do not start within a smoke run's minute
        args.backfill = "in-process" if args.quick else "daemon"
    if args.quick and not args.skip:
        args.skip = {"dagster-cli"}
    args.warehouses = WAREHOUSES if args.warehouse == "both" else (args.warehouse,)
    if "dlt" not in args.skip and DLT_VERSION is None:
        parser.error("dlt is not installed (make install puts it in .venv with the bench extra); or --skip dlt")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("child-pipeline", "child-zones"):
        child = argparse.ArgumentParser()
        child.add_argument("mode")
        child.add_argument("--service")
        child.add_argument("--months")
        child.add_argument("--zones", action="store_true")
        child.add_argument("--scope", choices=tuple(SCOPES), default="job")
        child.add_argument("--result")
        cargs = child.parse_args(argv)
        return child_pipeline(cargs) if cargs.mode == "child-pipeline" else child_zones(cargs)

    args = parse_args(argv)
    from devtools.generator import build_mirror
    from devtools.mirror import MirrorServer

    data: Path = args.data_dir
    data.mkdir(parents=True, exist_ok=True)
    started_at = dt.datetime.now(dt.timezone.utc)
    load_start = _loadavg()
    backfill_months = _month_list(BACKFILL_START, args.months)
    mirror_root = data / "mirror" / ("quick" if args.quick else "full")
    log(f"taxi_assets bench, {started_at:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load {load_start}, {ARROW_POOL_ENV}={_arrow_pool() or '(unset)'}")
    log(f"1/3 generating (cached in {mirror_root}): yellow {YELLOW_MONTH} {args.yellow_rows:,} rows parquet + csv.gz, "
        f"yellow {YELLOW_LARGE_MONTH} {args.yellow_large_rows:,} rows parquet, "
        f"fhvhv {FHVHV_MONTH} {args.fhvhv_rows:,} rows parquet, fhv {FHV_MONTH} {args.fhv_rows:,} rows parquet, "
        f"{args.months} yellow backfill months "
        f"of {args.backfill_rows:,} rows")
    t0 = time.perf_counter()
    generated = []
    generated += build_mirror(mirror_root, ["yellow"], [YELLOW_MONTH], "parquet", args.yellow_rows)
    if {"zoomcamp", "dagster-in-process"} - args.skip:
        generated += build_mirror(mirror_root, ["yellow"], [YELLOW_MONTH], "csv.gz", args.yellow_rows)
    if "dagster-in-process" not in args.skip:
        generated += build_mirror(mirror_root, ["yellow"], [YELLOW_LARGE_MONTH], "parquet", args.yellow_large_rows)
    generated += build_mirror(mirror_root, ["fhvhv"], [FHVHV_MONTH], "parquet", args.fhvhv_rows)
    generated += build_mirror(mirror_root, ["fhv"], [FHV_MONTH], "parquet", args.fhv_rows)
    if "backfill" not in args.skip:
        # the backfill months get their own size (a month already generated with another size is redone)
        backfill_root = mirror_root
        if args.backfill_rows != args.yellow_rows and YELLOW_MONTH in backfill_months:
            raise SystemExit("the backfill months must not include the yellow month when sizes differ")
        generated += build_mirror(backfill_root, ["yellow"], backfill_months, "parquet", args.backfill_rows)
    fresh = [g for g in generated if not g.reused and g.path.suffix != ".csv"]
    log(f"   {len(fresh)} file(s) generated, {len(generated) - len(fresh)} reused, {time.perf_counter() - t0:.1f} s")

    variants_started = time.perf_counter()
    with MirrorServer(mirror_root) as mirror, postgres(args.pg_url, args.pg_fast) as pg_url:
        log(f"2/3 mirror at {mirror.url}; Postgres {'(given)' if args.pg_url else '(throwaway, ' + ('fast' if args.pg_fast else 'durable, wal_level=minimal') + ' settings)'}")
        bench = Bench(args, data, pg_url, mirror.url, mirror_root)
        log("3/3 variants (each in a child process; RSS of its process tree sampled every 50 ms)")
        baseline = None
        if "zoomcamp" not in args.skip:
            baseline = zoomcamp_result(bench, args.yellow_rows)
        ours = "dagster-in-process" not in args.skip
        # The headline: our chain on each warehouse, the Postgres table step alone (on the month the
        # chain just put in its lake) and dlt on the same month, alternated run by run
        # (A B C D A B C D ...), so a slow minute on the shared machine falls on every variant.
        head: dict[tuple, list] = {}
        for k in range(1, args.repeats + 1):
            for warehouse in args.warehouses if ours else ():
                head.setdefault(("ours", warehouse), []).append(
                    bench.pipeline_child("yellow", "parquet", YELLOW_MONTH, "ingest", warehouse, k))
                if warehouse == "postgres" and "dlt" not in args.skip:
                    head.setdefault(("floor", None), []).append(table_step_child(bench, k))
            for filters in (False, True) if "dlt" not in args.skip else ():
                head.setdefault(("dlt", filters), []).append(dlt_child(bench, filters, k))
        for (kind, which), children in head.items():
            if kind == "ours":
                bench.pipeline_result("yellow", "parquet", args.yellow_rows, "ingest", which, children)
            elif kind == "floor":
                table_step_result(bench, children)
            else:
                dlt_result(bench, which, args.yellow_rows, children)
        if ours:
            for warehouse in args.warehouses:
                bench.pipeline("yellow", "csv.gz", YELLOW_MONTH, args.yellow_rows, "ingest", warehouse, args.repeats)
            job: dict[str, list] = {}
            for k in range(1, args.repeats + 1):
                for warehouse in args.warehouses:
                    job.setdefault(warehouse, []).append(
                        bench.pipeline_child("yellow", "parquet", YELLOW_MONTH, "job", warehouse, k))
            for warehouse, children in job.items():
                bench.pipeline_result("yellow", "parquet", args.yellow_rows, "job", warehouse, children)
        if "dagster-cli" not in args.skip:
            bench.cli("yellow", "parquet", YELLOW_MONTH, args.yellow_rows)
        if ours:
            for warehouse in args.warehouses:
                bench.pipeline("yellow", "parquet", YELLOW_LARGE_MONTH, args.yellow_large_rows, "job", warehouse,
                               label=LARGE_JOB_SCOPE)
                bench.pipeline("fhvhv", "parquet", FHVHV_MONTH, args.fhvhv_rows, "job", warehouse)
                bench.pipeline("fhv", "parquet", FHV_MONTH, args.fhv_rows, "job", warehouse)
        if "backfill" not in args.skip:
            daemon_ok = False
            if args.backfill in ("daemon", "both"):
                daemon_ok = all([backfill_daemon(bench, backfill_months, args.backfill_rows, launch).ok
                                 for launch in LAUNCHES])
                if not daemon_ok:
                    log("   the daemon backfill failed (see its log); measuring in-process runs instead")
            if args.backfill in ("in-process", "both") or not daemon_ok:
                backfill_in_process(bench, backfill_months, args.backfill_rows)

    common = {
        "run_started_at": started_at.isoformat(timespec="seconds"),
        "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "loadavg_start": load_start, "loadavg_end": _loadavg(), "host_probe_summary": probe_summary(bench.probes),
        "arrow_default_memory_pool": _arrow_pool(), "quick": bool(args.quick),
        "pg_settings": "given" if args.pg_url else ("fast" if args.pg_fast else "durable, wal_level=minimal"),
    }
    rows = [r.as_json(baseline) for r in bench.results]
    compare_with_dlt(rows)
    rows += projections(rows, args.warehouses)
    rows = [{**row, **common} for row in rows]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"bench-{started_at:%Y%m%dT%H%M%SZ}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    log("")
    print_report(rows)
    log(f"\n{len(rows)} variants in {time.perf_counter() - variants_started:.0f} s; load average "
        f"{load_start} -> {common['loadavg_end']}; results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
