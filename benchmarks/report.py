"""The bench's table on the terminal."""

from __future__ import annotations

from typing import Any

from benchmarks.common import log


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'variant':29} {'service':7} {'format':7} {'rows':>11} {'seconds':>8} {'rows/s':>11} "
              f"{'peak RSS MB':>11} {'x zoomcamp':>10} {'process s':>9} {'cpu s':>7}")
    log(header)
    log("-" * len(header))
    for r in rows:
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        variant = r["variant"] + (f"/{r['scope']}" if r.get("scope") else "")
        log(f"{variant:29} {r['service']:7} {r['format']:7} {r['rows']:>11,} {fmt(r['seconds'], '>8.2f')} "
            f"{fmt(r['rows_per_s'], '>11,.0f')} {fmt(r['peak_rss_mb'], '>11.0f')} "
            f"{fmt(r['ratio_vs_zoomcamp'], '>10.1f')} {fmt(r['process_seconds'], '>9.1f')} "
            f"{fmt(r['cpu_seconds'], '>7.1f')}{'' if r['ok'] else '  FAILED'}")
    for r in rows:
        if r.get("months_per_minute") is not None:
            log(f"{r['variant']}: {r['months']} months, {r['months_per_minute']} months/min; step work "
                f"{r['step_seconds_total']} s of {r['run_seconds_total']} run-s "
                f"(Dagster overhead {_pct(r.get('overhead_share_of_run_time'))} of run time); "
                f"work {_pct(r.get('work_share_of_wall'))} of wall")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


# ============================================================================ main
