"""The bench's table on the terminal."""

from __future__ import annotations

from typing import Any

from benchmarks.common import log
from benchmarks.history import HISTORY


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
            f"step alone {floor['x_vs_dlt']:.2f}x (the issue's bar: 1.5x)")
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
        log(f"projected on this machine, {p['warehouse']}: {p['hours_data_work']:.1f} h of data work "
            f"({p['rows_per_s']:,} rows/s blended; per service {p['per_service_hours']})"
            + (f", {with_dagster:.1f} h with the daemon backfill's measured overhead of {p['overhead_seconds_per_month']} s "
               "a month (make backfill's, when it ran)"
               if with_dagster is not None else ""))
    elsewhere = projections[0].get("elsewhere")
    if elsewhere:
        log(_elsewhere_line(elsewhere))


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
