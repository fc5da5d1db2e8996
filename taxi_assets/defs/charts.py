"""Pictures for the UI: a month's trips per day and its busiest zones, as a PNG inside the metadata.

Rendered with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state),
so steps running side by side in one process cannot draw on each other's figures.
"""

from __future__ import annotations

import base64
import datetime as dt
import io

WEEKDAY, WEEKEND = "#4C72B0", "#DD8452"


def month_chart_png(title: str, days: list[tuple[dt.date, int]], zones: list[tuple[str, int]]) -> bytes:
    """Trips per pickup day (weekends in their own colour, so the weekly rhythm shows) beside the
    busiest pickup zones."""
    # Imported here: matplotlib is ~0.3-0.6 s of every process start, and only a mart step draws.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 3.6), dpi=90, layout="constrained")
    by_day, by_zone = figure.subplots(1, 2, width_ratios=[3, 2])
    by_day.bar(
        [d for d, _ in days], [n for _, n in days], width=0.8,
        color=[WEEKEND if d.weekday() >= 5 else WEEKDAY for d, _ in days],
    )
    by_day.set_title(f"{title}: trips per pickup day (orange: weekend)", fontsize=10)
    by_day.tick_params(axis="x", labelrotation=45, labelsize=8)
    by_day.tick_params(axis="y", labelsize=8)
    by_day.yaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    top = list(reversed(zones))
    by_zone.barh([label for label, _ in top], [n for _, n in top], color=WEEKDAY)
    by_zone.set_title("busiest pickup zones", fontsize=10)
    by_zone.tick_params(labelsize=8)
    by_zone.xaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    """Markdown the UI renders as the image itself (a data URI: nothing to host or fetch)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
