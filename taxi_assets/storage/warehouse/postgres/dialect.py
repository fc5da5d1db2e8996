"""How Postgres spells the few SQL expressions the marts need, so it computes DuckDB's figures."""

from __future__ import annotations

from taxi_assets.storage.warehouse.base import Dialect


def _float(expr: str) -> str:
    return f"CAST(({expr}) AS DOUBLE PRECISION)"


def _round2(expr: str) -> str:
    """ROUND(x, 2) exactly as DuckDB computes it for a double: round(x * 100) / 100, halves away from zero.

    Postgres's own round(numeric) would round the decimal value of the double (0.145 is stored as
    0.14499999999999999 and rounds to 0.14 in DuckDB but to 0.15 through numeric), and round(double)
    rounds halves to even; either would make the embedded default and Postgres disagree by a cent.
    """
    v = _float(expr)
    return (
        f"(SIGN({v}) * FLOOR(ABS({v}) * CAST(100 AS DOUBLE PRECISION) + CAST(0.5 AS DOUBLE PRECISION))"
        " / CAST(100 AS DOUBLE PRECISION))"
    )


def _seconds_between(start: str, end: str) -> str:
    """DuckDB's date_diff('second', start, end): whole-second boundaries crossed (both truncated)."""
    # date_part returns a double; EXTRACT returns numeric since Postgres 14, which made the mart's
    # AVG about a quarter slower for the same figures.
    return _float(f"date_part('epoch', date_trunc('second', {end}) - date_trunc('second', {start}))")


DIALECT = Dialect(
    seconds_between=_seconds_between,
    to_date=lambda expr: f"CAST({expr} AS DATE)",
    round2=_round2,
    float_type="DOUBLE PRECISION",
    int_type="BIGINT",
)
