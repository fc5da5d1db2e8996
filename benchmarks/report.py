"""The bench's table on the terminal."""

from __future__ import annotations

from typing import Any

from benchmarks.common import log
from benchmarks.history import HISTORY


def print_report(rows: list[dict[str, Any]]) -> None:
    """The run's table, the history projected from it, and where it stands against the issue's bar."""
    print_table(rows)
    print_projection(rows)
    print_bar(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'variant':29} {'warehouse':9} {'service':7} {'format':7} {'rows':>11} {'seconds':>8} {'rows/s':>11} "
              f"{'peak RSS MB':>11} {'x zoomcamp':>10} {'x dlt':>6} {'process s':>9} {'cpu s':>7}")
    log(header)
    log("-" * len(header))
    for r in rows:
        if r["variant"] == "projection":
            continue
        fmt = lambda v, spec: format(v, spec) if v is not None else "-".rjust(int(spec.strip("><").split(".")[0].split(",")[0]))  # noqa: E731
        variant = r["variant"] + (f"/{r['scope']}" if r.get("scope") else "")
        log(f"{variant:29} {r.get('warehouse') or '-':9} {r['service']:7} {r['format']:7} {r['rows']:>11,} "
            f"{fmt(r['seconds'], '>8.2f')} {fmt(r['rows_per_s'], '>11,.0f')} {fmt(r['peak_rss_mb'], '>11.0f')} "
            f"{fmt(r['ratio_vs_zoomcamp'], '>10.1f')} {fmt(r.get('x_vs_dlt'), '>6.2f')} "
            f"{fmt(r['process_seconds'], '>9.1f')} {fmt(r['cpu_seconds'], '>7.1f')}{'' if r['ok'] else '  FAILED'}")
    chain = next((r for r in rows if r.get("x_of_table_step") is not None), None)
    floor = next((r for r in rows if r["variant"] == "postgres-table-step" and r.get("x_vs_dlt") is not None), None)
    if chain and floor:
        log(f"Postgres: our chain {chain['seconds']:.2f} s = {chain['x_of_table_step']:.2f}x the table step alone "
            f"({floor['seconds']:.2f} s); the faster dlt over our chain {chain['x_vs_dlt']:.2f}x, over the table "
            f"step alone {floor['x_vs_dlt']:.2f}x (the issue's bar: {BAR_X_DLT}x)"
            + (f"; at most ~{chain['x_vs_dlt_ceiling']:.2f}x on this machine: the chain's ingest and table steps "
               "back to back (the month's sorted load waits for the ingest), nothing else" if chain.get("x_vs_dlt_ceiling") else ""))
    for r in rows:
        if r.get("months_per_minute") is not None:
            log(f"{r['variant']} ({r.get('warehouse')}): {r['months']} months, {r['months_per_minute']} months/min; "
                f"steps {r['step_seconds_total']} s of {r['run_seconds_total']} run-s; data work "
                f"{r.get('data_work_seconds') if r.get('data_work_seconds') is not None else '-'} s "
                f"({r.get('data_work_from')}); Dagster overhead {_pct(r.get('dagster_overhead_share'))} of wall "
                f"({_pct(r.get('overhead_share_of_run_time'))} inside runs)"
                + (f"; CPU {r['cpu_seconds_per_month']} s a month (daemon, code servers, run workers, launcher; "
                   f"the webserver {r['cpu_seconds_by_process']['webserver_tree']} s in all)"
                   if r.get("cpu_seconds_per_month") else ""))


def print_projection(rows: list[dict[str, Any]]) -> None:
    projections = [r for r in rows if r["variant"] == "projection"]
    if not projections:
        log("\nwhole-history projection: not made (needs the yellow, fhvhv and fhv whole-job rates of this run)")
        return
    total = sum(e.rows for e in HISTORY)
    log(f"\nThe whole TLC history (approximate rows, benchmarks/history.py): {total / 1e9:.2f} billion rows, "
        f"{sum(e.months for e in HISTORY)} service-months")
    for era in HISTORY:
        log(f"   {era.service:6} {era.first}..{era.last} {era.months:>3} months {era.rows / 1e6:>7,.0f}M rows  ({era.note})")
    for p in projections:
        with_dagster = p.get("hours_with_dagster_overhead")
        log(f"projected on this machine, {p['warehouse']}: {p['hours_data_work']:.2f} h of data work, the monthly jobs' "
            f"steps ({p['rows_per_s']:,} rows/s blended; per service {p['per_service_hours']}); "
            f"{p['hours_at_run_wall']:.2f} h at the in-process runs' own wall time, a run a month"
            + (f"; {with_dagster:.2f} h with the daemon backfill's measured overhead of {p['overhead_seconds_per_month']} s "
               "a month (make backfill's, when it ran)"
               if with_dagster is not None else ""))
    elsewhere = projections[0].get("elsewhere")
    if elsewhere:
        log(_elsewhere_line(elsewhere))


#: Issue 13's bar, as `make bench` from a fresh clone is to show it: each figure on the sizes it names.
BAR_ROWS_PER_S, BAR_JOB_OVER_CHAIN, BAR_X_DLT, BAR_PEAK_MB, BAR_OVERHEAD, BAR_HISTORY_HOURS = 1_000_000, 1.5, 1.5, 1000, 0.10, 1.0
BAR_YELLOW_ROWS, BAR_FHVHV_ROWS, BAR_BACKFILL_MONTHS = 3_000_000, 20_000_000, 24
#: The history is judged only when yellow's line reaches its largest months (or it had one month, a
#: rate that charges large months more): a line through smaller months undercharges them.
BAR_YELLOW_LARGE_ROWS = 14_500_000
#: The backfill launch the bar is read on: `make backfill`'s (the others are printed above it).
BAR_BACKFILL = "backfill-daemon-cli"


def bar_verdicts(rows: list[dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    """(goal, what this run measured, met?) for each figure of issue 13's bar; met is None when the
    run did not measure it at the bar's size (a variant skipped, failed or run on fewer rows)."""
    def find(**want: Any) -> dict[str, Any] | None:
        return next((r for r in rows if r.get("ok") and all(r.get(k) == v for k, v in want.items())), None)

    def verdict(goal: str, row: object, measured, met, full_size: bool, short: str = "below the bar's size"):
        if not row:
            return goal, "not measured", None
        return goal, measured() + ("" if full_size else f" ({short})"), met() if full_size else None

    ours = {"variant": "dagster-in-process", "service": "yellow", "format": "parquet"}
    chain, job = (find(**ours, scope=scope, warehouse="duckdb") for scope in ("ingest", "job"))
    postgres = find(**ours, scope="ingest", warehouse="postgres")
    if postgres and postgres.get("x_vs_dlt") is None:
        postgres = None  # no dlt in this run
    fhvhv = [r for r in rows if r.get("ok") and r["variant"] == "dagster-in-process" and r["service"] == "fhvhv"]
    backfills = [r for r in rows if r.get("ok") and r.get("dagster_overhead_share") is not None]
    backfill = next((r for r in backfills if r["variant"] == BAR_BACKFILL), backfills[0] if backfills else None)
    history = find(variant="projection", warehouse="duckdb")
    in_duckdb = ((history or {}).get("elsewhere") or {}).get("duckdb_warehouse_floor_hours")
    yellow_full = chain is not None and chain["rows"] >= BAR_YELLOW_ROWS
    yellow_months = ((history or {}).get("carried_from") or {}).get("yellow") or []
    large_full = len(yellow_months) == 1 or max(yellow_months, default=0) >= BAR_YELLOW_LARGE_ROWS
    fhvhv_full = {r["warehouse"] for r in fhvhv} == {"duckdb", "postgres"} and all(r["rows"] >= BAR_FHVHV_ROWS for r in fhvhv)
    return [
        verdict("embedded ingest chain >= 1M rows/s", chain,
                lambda: f"{chain['rows_per_s']:,.0f} rows/s ({chain['seconds']:.2f} s{_probe_before(chain)})",
                lambda: chain["rows_per_s"] >= BAR_ROWS_PER_S, yellow_full),
        verdict("embedded whole job within 1.5x the chain", chain and job,
                lambda: f"{job['seconds'] / chain['seconds']:.2f}x ({job['seconds']:.2f} s)",
                lambda: job["seconds"] / chain["seconds"] <= BAR_JOB_OVER_CHAIN, yellow_full),
        verdict("Postgres chain >= 1.5x the faster dlt", postgres,
                lambda: f"{postgres['x_vs_dlt']:.2f}x ({postgres['seconds']:.2f} s{_probe_before(postgres)})"
                + (f"; at most ~{postgres['x_vs_dlt_ceiling']:.2f}x here (the chain's ingest and table steps alone)"
                   if postgres.get("x_vs_dlt_ceiling") else ""),
                lambda: postgres["x_vs_dlt"] >= BAR_X_DLT, postgres is not None and postgres["rows"] >= BAR_YELLOW_ROWS),
        verdict("fhvhv month < 1 GB peak on both warehouses", fhvhv,
                lambda: ", ".join(f"{r['warehouse']} {r['peak_rss_mb']:.0f} MB" for r in fhvhv),
                lambda: all(r["peak_rss_mb"] < BAR_PEAK_MB for r in fhvhv), fhvhv_full,
                "below the bar's size, or one warehouse only"),
        verdict("daemon backfill, Dagster overhead < 10 % of wall", backfill,
                lambda: f"{backfill['dagster_overhead_share'] * 100:.0f} % ({backfill['variant']})",
                lambda: backfill["dagster_overhead_share"] < BAR_OVERHEAD,
                backfill is not None and backfill["variant"].startswith("backfill-daemon") and backfill["months"] >= BAR_BACKFILL_MONTHS),
        verdict("whole history <= 1 h of data work, embedded", history,
                lambda: _history_measured(history, in_duckdb),
                lambda: history["hours_data_work"] <= BAR_HISTORY_HOURS, yellow_full and fhvhv_full and large_full,
                "from months below the bar's sizes"),
    ]


def _probe_before(row: dict[str, Any]) -> str:
    """How long the host probe took just before the run the row reports (its median run)."""
    runs, probes = row.get("seconds_runs") or [], row.get("host_probe_s")
    if not isinstance(probes, list) or row["seconds"] not in runs or len(probes) != len(runs):
        return ""
    return f"; host probe {probes[runs.index(row['seconds'])]:.2f} s before it"


def _history_measured(history: dict[str, Any], in_duckdb: float | None) -> str:
    with_dagster = history.get("hours_with_dagster_overhead")
    return (f"{history['hours_data_work']:.2f} h projected from the jobs' steps"
            + (f" (the steps in DuckDB, each month's copy, the marts and their checks: {in_duckdb:.2f} h of it)"
               if in_duckdb is not None else "")
            + f"; {history['hours_at_run_wall']:.2f} h at the runs' wall, a run a month"
            + (f"; {with_dagster:.2f} h with the daemon backfill's overhead" if with_dagster is not None else ""))


def print_bar(rows: list[dict[str, Any]]) -> None:
    log("\nAgainst issue 13's bar (met / NOT met; '-' where this run did not measure it at the bar's size):")
    for goal, measured, met in bar_verdicts(rows):
        log(f"   {goal:49} {'met' if met else 'NOT met' if met is not None else '-':8} {measured}")
    if probes := next((r.get("host_probe_summary") for r in rows if r.get("host_probe_summary")), None):
        log(f"   (the host probe, the same fixed work before each of the {probes['n']} runs: {probes['min']:.3f}-{probes['max']:.3f} s, "
            f"median {probes['median']:.3f} s, first {probes['first']:.3f}, last {probes['last']:.3f}: benchmarks/host_probe.py)")


def _elsewhere_line(e: dict[str, Any]) -> str:
    """The model of `benchmarks.history.project_elsewhere`, in words and figures."""
    machines = "; ".join(
        f"{cores} cores: " + ", ".join(f"{w} {h:.1f} h" for w, h in figures.items()) for cores, figures in e["hours_on_cores"].items()
    )
    line = (f"carried to bigger machines (same speed per core, {e['cores_per_month']} cores a month, months side by side, "
            f"DuckDB's warehouse steps one at a time): {machines}")
    if "duckdb_warehouse_floor_hours" in e:
        line += (f" (DuckDB's warehouse steps alone: {e['duckdb_warehouse_floor_hours']:.1f} h at this machine's speed; "
                 "its insert uses every core it is given, so this floor is pessimistic)")
    if bq := e.get("bigquery"):
        machine = ", ".join(f"{cores} cores {h:.1f} h" for cores, h in bq["machine_hours_on_cores"].items())
        line += (f"\non BigQuery: this machine does the lake work and uploads {bq['upload_gb']:,.0f} GB "
                 f"({bq['upload_hours']:.1f} h at {bq['upload_gbit_per_s']:g} Gbit/s): {machine}; "
                 "plus BigQuery's own load and query jobs, which cannot be measured here")
    return line


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"
