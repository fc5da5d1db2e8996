"""Months, the unit the TLC publishes in: parsing, labels and arithmetic, in one place."""

from __future__ import annotations

import datetime as dt
import re

#: How a month is written everywhere: TLC file names, partition keys, logs, lake paths.
MONTH_KEY_FORMAT = "%Y-%m"
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})\Z")


def parse_month(month: str) -> dt.date:
    """'2024-01' (or a `YYYY-MM-DD` monthly key, the default of a user's own partitions) -> date(2024, 1, 1)."""
    text = month[:7] if len(month) == 10 else month
    match = _MONTH_RE.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"not a month: {month!r} (expected YYYY-MM)")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: dt.date) -> dt.date:
    return dt.date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def month_label(month: dt.date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def months_back(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - n
    return dt.date(index // 12, index % 12 + 1, 1)


def month_range(spec: str) -> list[str]:
    """'2023-01..2023-03' or '2023-01,2023-05' -> ['2023-01', ...]."""
    months: list[str] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("..")
        m, end = parse_month(first), parse_month(last or first)
        while m <= end:
            months.append(month_label(m))
            m = next_month(m)
    return months


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[first instant of the month, first instant of the next)."""
    return dt.datetime.combine(month, dt.time()), dt.datetime.combine(next_month(month), dt.time())
