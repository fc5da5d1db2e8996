"""How Postgres spells the few SQL expressions the marts need, so it computes DuckDB's figures."""

from __future__ import annotations

from taxi_assets.storage.warehouse.base import Dialect, round2_halves_away


def _float(expr: str) -> str:
    return f"CAST(({expr}) AS DOUBLE PRECISION)"


def _seconds_between(start: str, end: str) -> str:
    """DuckDB's date_diff('second', start, end): whole-second boundaries crossed (both truncated)."""
    # date_part returns a double; EXTRACT returns numeric since Postgres 14, which made the mart's
    # AVG about a quarter slower for the same figures.
    return _float(f"date_part('epoch', date_trunc('second', {end}) - date_trunc('second', {start}))")


DIALECT = Dialect(
    seconds_between=_seconds_between,
    to_date=lambda expr: f"CAST({expr} AS DATE)",
    round2=round2_halves_away,
    float_type="DOUBLE PRECISION",
    int_type="BIGINT",
)
