"""What the bench's parent and children share: paths, the result row, the Postgres server, logging."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taxi_assets.storage.arrow_memory import ARROW_POOL_ENV

PG_DATABASE = "ny_taxi"
#: The headline month: the zoomcamp's; the csv.gz mirror stops at 2021-07.
YELLOW_MONTH = "2021-01"
PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
# ============================================================================ results


@dataclass
class Result:
    variant: str
    service: str
    fmt: str
    rows: int
    seconds: float | None
    peak_rss_mb: float | None
    process_seconds: float | None = None
    cpu_seconds: float | None = None
    max_single_rss_mb: float | None = None
    peak_processes: int | None = None
    ok: bool = True
    #: Where the rows went: "duckdb" (the embedded default) or "postgres".
    warehouse: str | None = None
    #: Ours: "ingest" (the chain) or "job" (the whole monthly job); None for the peers.
    scope: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.seconds if self.seconds else None

    def as_json(self, baseline: Result | None) -> dict[str, Any]:
        ratio = None
        if baseline is not None and baseline is not self and self.rows_per_s and baseline.rows_per_s:
            ratio = round(self.rows_per_s / baseline.rows_per_s, 2)
        rnd = lambda v, n=3: None if v is None else round(v, n)  # noqa: E731
        return {
            "variant": self.variant,
            "service": self.service,
            "scope": self.scope,
            "warehouse": self.warehouse,
            "format": self.fmt,
            "rows": self.rows,
            "seconds": rnd(self.seconds),
            "rows_per_s": rnd(self.rows_per_s, 0),
            "peak_rss_mb": rnd(self.peak_rss_mb, 1),
            "ratio_vs_zoomcamp": ratio,
            "process_seconds": rnd(self.process_seconds),
            "cpu_seconds": rnd(self.cpu_seconds),
            "max_single_rss_mb": rnd(self.max_single_rss_mb, 1),
            "peak_processes": self.peak_processes,
            "ok": self.ok,
            **self.extra,
        }


# ============================================================================ helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def embedded_max_runs() -> int:
    """Runs at once on make's embedded instance (the Makefile's MAX_RUNS): half the cores, at least 2."""
    return max(2, (os.cpu_count() or 2) // 2)


def _arrow_pool() -> str | None:
    """The allocator the children get: make sets it for every process it starts; run directly without
    it, the code location switches only pyarrow's own calls (taxi_assets/storage/arrow_memory.py), and
    the figures differ, so each row says which."""
    return os.environ.get(ARROW_POOL_ENV) or None


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _month_list(first: str, count: int) -> list[str]:
    year, month = map(int, first.split("-"))
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def postgres(pg_url: str | None, fast: bool) -> Iterator[str]:
    """A libpq URL of the database `ny_taxi` on --pg-url's server or on a throwaway one."""
    import psycopg
    from psycopg import sql

    if pg_url:
        server_url, stop = pg_url, None
    else:
        from taxi_assets.storage.warehouse.postgres import SERVER_SETTINGS
        from taxi_assets_tests.postgres_server import FAST_SETTINGS, start_postgres

        # The settings compose runs the warehouse server with (durable: fsync stays on).
        server = start_postgres(settings={**SERVER_SETTINGS, **(FAST_SETTINGS if fast else {})})
        server_url, stop = server.url, server.stop
    try:
        with psycopg.connect(server_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PG_DATABASE)))
        yield _with_dbname(server_url, PG_DATABASE)
    finally:
        if stop is not None:
            stop()


def _with_dbname(url: str, dbname: str) -> str:
    """The same server's postgresql:// URL for another database (kept a URL: SQLAlchemy needs one)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"--pg-url must be a postgresql:// URL, not {url!r}")
    return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))


def pg_env(pg_url: str) -> dict[str, str]:
    """Environment that points the pipeline's Postgres warehouse (PostgresWarehouse.from_env) at `pg_url`."""
    return {"TAXI_WAREHOUSE": "postgres", "TAXI_POSTGRES_URL": pg_url}


def drop_schema(pg_url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))




def write_outcome(outcome: dict[str, Any], result: Path | None) -> None:
    """A child's outcome as JSON: to `result` (read by the parent), and on stdout (its log)."""
    text = json.dumps(outcome)
    if result:
        result.write_text(text)
    print(text)


def log(msg: str) -> None:
    print(msg, flush=True)


def _r(value: float | None, n: int = 3) -> float | None:
    return None if value is None else round(value, n)
