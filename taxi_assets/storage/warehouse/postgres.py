"""The Postgres warehouse: one partition per month, replaced by an atomic swap, loaded by binary COPY.

Layout. A monthly table (trips of a service, its mart, its rejects summary) is a parent table
`PARTITION BY RANGE (source_month)` with one child per month, `{table}_pYYYYMM`. `source_month` is
a DATE column we own (the first day of the month of the file a row came from), never the pickup
time, so a row whose pickup falls in another month still belongs to exactly one month and
cannot survive a re-run. The parent has a BRIN index on pickup_datetime (rows arrive in pickup
order) and a btree on (pickup zone, dropoff zone) (where the table has them); each child
carries its own copy of them (INDEX_COLUMNS says why these). pickup_datetime is
the primary time column (said so in the table's comment). Small tables (the zones) are plain
tables with a primary key on location_id.

Replacing a month, all in one transaction:
 1. create a standalone table with the parent's columns (its definition is read from the
    catalog, so no lock on the live table is taken while loading) and a CHECK (source_month =
    <month>) constraint, which (with source_month NOT NULL) proves the partition bound, so ATTACH
    skips its own scan;
 2. binary COPY the month into it (FREEZE: it was created in this transaction), streamed from
    Arrow record batches (pg_copy.py), checking on the way that every row carries this month's
    source_month (and the server checks each row against the CHECK as it arrives). A mart month
    is a CREATE TABLE AS of its SELECT instead, which Postgres may run in parallel workers (an
    INSERT ... SELECT never is), and gets its NOT NULL and CHECK once its few rows are in;
 3. build the parent's indexes on it; ANALYZE;
 4. the swap: DETACH and DROP the month's old child, ATTACH the new table as the month's child,
    rename it. Only this step locks the parent (ACCESS EXCLUSIVE, for milliseconds); it runs
    under a short lock_timeout in a savepoint and is retried, so a long report query holding the
    table makes us wait, rather than making every other reader queue behind us.
 5. COMMIT.
Until the commit, readers see the old month (the live table is untouched); after it, the new one.
A reader arriving during step 4 waits for the commit and then sees the new month: READ COMMITTED
statements take their snapshot after their locks, so never an empty or a partial month. A load
that fails or is killed anywhere (the server rolls back the transaction when the client's
connection drops) leaves the old month exactly as it was and nothing behind. Two loads of the
same month are serialised by an advisory lock; different months load concurrently and only
their swaps take turns. (A REPEATABLE READ transaction that started before the swap and reads
the month afterwards sees the new child too: the COPY wrote its rows frozen, visible to every
snapshot. A mart month, written by CREATE TABLE AS, would look empty to such a transaction:
the caveat every DDL swap in Postgres has.)

Money columns are `double precision`, not numeric(12,2). The TLC publishes them as doubles and
our canonical schema keeps them float64, so double precision stores exactly the values the lake
holds (numeric(12,2) would round values with more than two decimals and overflow on the TLC's
occasional absurd amounts), reads back as the same float64, computes the marts with the same
arithmetic as the embedded DuckDB warehouse (same figures to the cent), and costs 8 fixed bytes
in the COPY stream instead of a variable-length numeric. Cents are exact where it matters: 12.35
goes in and comes out as the same double, and sums are rounded to cents in the marts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import logging
import os
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Optional

import dagster as dg
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql
from pydantic import Field

from taxi_assets.storage.redaction import redact
from taxi_assets.tlc.services import SOURCE_MONTH, next_month
from taxi_assets.storage.warehouse.base import Dialect, TableSource, WarehouseError, WarehouseResource, validate_identifier
from taxi_assets.storage.warehouse.pg_copy import (
    DEFAULT_CHUNK_ROWS,
    PG_TO_ARROW,
    CopyEncodeError,
    copy_out_blocks,
    copy_record_batches,
    pg_type_for,
)

#: Indexes worth having wherever a table has their columns: the primary time column, the zones,
#: the marts' day. "a,b" is one multicolumn btree; "brin:a" a BRIN index.
#: - pickup time: BRIN. The trips are loaded in pickup order (the lake's days in date order, each
#:   day sorted), so a month's min/max per 128 pages pins a time range to its few adjacent pages;
#:   it builds in a quarter of a btree's time and is a thousandth of its size. (A table loaded in
#:   any other order would want "pickup_datetime", a btree, instead.)
#: - zones: one btree on (pickup, dropoff). It answers "from zone A" and "from A to B" as two
#:   indexes would, and "to zone B" by a scan of that small index (PostgreSQL 18: a skip scan);
#:   a month builds one index fewer (each costs about a second of both cores on 3M rows).
TIME_COLUMN = "pickup_datetime"
INDEX_COLUMNS = (f"brin:{TIME_COLUMN}", "pickup_location_id,dropoff_location_id", "pickup_date")
#: How we run the warehouse's own server (docker-compose.yml and `make bench` start it so): no WAL
#: for replicas, so a month's COPY into the table its transaction created writes its rows once
#: (the data files, flushed at commit) instead of twice (WAL, then data files): measured on a
#: 3M-row month, the COPY 5.2 -> 3.4 s, the commit 0.02 -> 1 s, the load about 15 % faster.
#: Crash-safe as ever; what it gives up is streaming replication and point-in-time recovery from
#: archived WAL (pg_dump backups still work). A server you point us at keeps its own settings:
#: everything works the same, a little slower.
SERVER_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0"}
#: Key of the small unpartitioned tables (the zones).
KEY_COLUMNS = ("location_id",)

#: Environment variables `from_env` reads, field by field (zoomcamp names for the pieces).
URL_ENV = "TAXI_POSTGRES_URL"
PIECE_ENVS = {
    "host": "POSTGRES_HOST",
    "port": "POSTGRES_PORT",
    "database": "POSTGRES_DB",
    "user": "POSTGRES_USER",
    "password": "POSTGRES_PASSWORD",
}

_MAX_NAME = 63
logger = logging.getLogger(__name__)
_READ_BLOCK_BYTES = 16 * 1024 * 1024


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


_DIALECT = Dialect(
    seconds_between=_seconds_between,
    to_date=lambda expr: f"CAST({expr} AS DATE)",
    round2=_round2,
    float_type="DOUBLE PRECISION",
    int_type="BIGINT",
)


def _resolve(value: object) -> object:
    """A field's value: an `EnvVar` set outside a Dagster run is resolved only here, when connecting."""
    if isinstance(value, dg.EnvVar):
        return value.get_value()
    return value


def _month_start(month: dt.date) -> dt.date:
    if isinstance(month, dt.datetime) or not isinstance(month, dt.date):
        raise TypeError(f"expected a date (the first day of a month), got {month!r}")
    if month.day != 1:
        raise ValueError(f"{month} is not the first day of a month")
    return month


def derived_name(base: str, suffix: str, reserve: int = 0) -> str:
    """`base + suffix`, shortened with a hash of `base` if it would pass Postgres's 63 characters."""
    if len(base) + len(suffix) + reserve <= _MAX_NAME:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    keep = _MAX_NAME - reserve - len(suffix) - len(digest) - 1
    return f"{base[:keep]}_{digest}{suffix}"


class PostgresWarehouse(WarehouseResource):
    """Tables in a Postgres schema (default `ny_taxi`): months as partitions swapped atomically.

    Connection: `url` (a libpq URL or key=value string) and/or the pieces host, port, database,
    user, password; pieces given override the URL's. Build it with `from_env()` so that every
    one of them is a `dg.EnvVar`: the UI and run config then show variable names, never values.
    """

    url: Optional[str] = Field(default=None, description="libpq connection URL; give it as dg.EnvVar('TAXI_POSTGRES_URL')")
    host: Optional[str] = None
    port: Optional[str] = None
    database: Optional[str] = None
    user: Optional[str] = None
    password: Optional[str] = Field(default=None, description="give it as dg.EnvVar('POSTGRES_PASSWORD')")
    #: How long the swap waits for the table's lock before letting readers through and retrying.
    lock_timeout_seconds: float = 3.0
    #: How long the swap keeps retrying before the load is given up (the old month is kept).
    swap_deadline_seconds: float = 600.0
    copy_chunk_rows: int = DEFAULT_CHUNK_ROWS
    #: Indexes a new table gets where it has their columns (see INDEX_COLUMNS for the spelling).
    #: A month table's partitions always get whatever indexes its parent has.
    index_columns: list[str] = Field(default_factory=lambda: list(INDEX_COLUMNS))
    application_name: str = "taxi_assets"

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_env(cls, schema_name: str = "ny_taxi", env: Mapping[str, str] | None = None) -> PostgresWarehouse:
        """The warehouse configured from TAXI_POSTGRES_URL and/or POSTGRES_HOST/PORT/DB/USER/PASSWORD.

        Only the presence of each variable is looked at here; each one that is set becomes a
        `dg.EnvVar`, read when a connection is made.
        """
        env = os.environ if env is None else env
        kwargs: dict[str, object] = {}
        if env.get(URL_ENV):
            kwargs["url"] = dg.EnvVar(URL_ENV)
        for field_name, var in PIECE_ENVS.items():
            if env.get(var):
                kwargs[field_name] = dg.EnvVar(var)
        if not kwargs:
            raise ValueError(
                f"TAXI_WAREHOUSE=postgres needs {URL_ENV} (postgresql://user:password@host:port/db) or "
                f"{', '.join(PIECE_ENVS.values())} in the environment"
            )
        return cls(schema_name=validate_identifier(schema_name, "schema"), **kwargs)

    # -- connections -----------------------------------------------------------------------
    def _conninfo(self) -> str:
        pieces = {
            "host": _resolve(self.host),
            "port": _resolve(self.port),
            "dbname": _resolve(self.database),
            "user": _resolve(self.user),
            "password": _resolve(self.password),
        }
        base = _resolve(self.url) or ""
        return psycopg.conninfo.make_conninfo(str(base), **{k: v for k, v in pieces.items() if v not in (None, "")})

    def _secrets(self) -> list[str]:
        """What must never appear in a message: the URL as given, and the password."""
        return [str(v) for v in (_resolve(self.url), _resolve(self.password)) if v]

    @contextlib.contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """An autocommit connection with the session settings the reads and writes rely on.

        libpq's errors can quote the connection string (a malformed URL, password and all): they
        are re-raised with every secret masked and without the original chained.
        """
        try:
            conn = psycopg.connect(self._conninfo(), autocommit=True, application_name=self.application_name)
        except psycopg.Error as exc:
            reason = redact(str(exc), self._secrets())
            raise WarehouseError(f"cannot connect to the Postgres warehouse ({self.describe()}): {reason}") from None
        conn.add_notice_handler(_log_notice)
        try:
            # Shortest exact text for doubles, ISO dates, UTC: what the Arrow reader expects.
            conn.execute("SET extra_float_digits = 3")
            conn.execute("SET DateStyle = 'ISO, YMD'")
            conn.execute("SET TimeZone = 'UTC'")
            yield conn
        finally:
            conn.close()

    def _ref(self, table: str) -> sql.Composed:
        return sql.Identifier(self.schema_name, table)

    def _validate(self, table: str, schema: pa.Schema | None = None) -> dict[str, str]:
        """Every name and type checked before any statement: returns column -> Postgres type."""
        validate_identifier(self.schema_name, "schema")
        validate_identifier(table, "table")
        if schema is None:
            return {}
        types: dict[str, str] = {}
        for f in schema:
            validate_identifier(f.name, "column")
            if f.name in types:
                raise ValueError(f"column {f.name!r} appears twice")
            try:
                types[f.name] = pg_type_for(f.type)
            except CopyEncodeError as exc:
                raise ValueError(f"{table}.{f.name}: {exc}") from None
        return types

    # -- catalog (reads of pg_catalog take no lock on the tables) ---------------------------
    def _relkind(self, conn: psycopg.Connection, table: str) -> str | None:
        row = conn.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            [self.schema_name, table],
        ).fetchone()
        return row[0] if row else None

    def _columns(self, conn: psycopg.Connection, table: str) -> dict[str, str]:
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [self.schema_name, table],
        ).fetchall()
        return {name: typ for name, typ in rows}

    def _partition_of(self, conn: psycopg.Connection, child: str, parent: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_namespace pn ON pn.oid = p.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND pn.nspname = %s AND p.relname = %s",
            [self.schema_name, child, self.schema_name, parent],
        ).fetchone()
        return row is not None

    # -- DDL of the live tables, serialised per schema ----------------------------------------
    @contextlib.contextmanager
    def _ddl(self, conn: psycopg.Connection) -> Iterator[None]:
        """A short transaction holding the schema's DDL lock (first loads of two months race here)."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"taxi_assets:ddl:{self.schema_name}"])
            if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema_name]).fetchone():
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema_name)))
            yield

    def _ensure_month_table(self, conn: psycopg.Connection, table: str, wanted: Mapping[str, str]) -> dict[str, str]:
        """Create the partitioned parent (and its indexes) or add the columns a newer schema brought."""
        if SOURCE_MONTH not in wanted:
            raise ValueError(f"{table}: rows for a month need a {SOURCE_MONTH!r} column")
        with self._ddl(conn):
            kind = self._relkind(conn, table)
            if kind is None:
                columns = sql.SQL(", ").join(
                    sql.SQL("{} {}{}").format(
                        sql.Identifier(name), sql.SQL(typ), sql.SQL(" NOT NULL" if name == SOURCE_MONTH else "")
                    )
                    for name, typ in wanted.items()
                )
                conn.execute(
                    sql.SQL("CREATE TABLE {} ({}) PARTITION BY RANGE ({})").format(
                        self._ref(table), columns, sql.Identifier(SOURCE_MONTH)
                    )
                )
                comment = f"One partition per source month ({SOURCE_MONTH}), each replaced atomically by taxi_assets."
                if TIME_COLUMN in wanted:
                    comment += f" Primary time column: {TIME_COLUMN}."
                    conn.execute(
                        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                            self._ref(table), sql.Identifier(TIME_COLUMN), sql.Literal("primary time column")
                        )
                    )
                conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(self._ref(table), sql.Literal(comment)))
            elif kind != "p":
                raise WarehouseError(
                    f"{self.schema_name}.{table} exists but is not partitioned by {SOURCE_MONTH}; "
                    "drop or rename it to let taxi_assets manage it"
                )
            else:
                key = conn.execute(
                    "SELECT pg_get_partkeydef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s",
                    [self.schema_name, table],
                ).fetchone()[0]
                if key != f"RANGE ({SOURCE_MONTH})":
                    raise WarehouseError(f"{self.schema_name}.{table} is partitioned by {key}, not RANGE ({SOURCE_MONTH})")
                existing = self._columns(conn, table)
                for name, typ in wanted.items():
                    if name not in existing:
                        conn.execute(
                            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(self._ref(table), sql.Identifier(name), sql.SQL(typ))
                        )
            columns_now = self._columns(conn, table)
            if columns_now.get(SOURCE_MONTH) != "date":
                raise WarehouseError(f"{self.schema_name}.{table}.{SOURCE_MONTH} is {columns_now.get(SOURCE_MONTH)}, not date")
            for name, columns in self._indexes_for(columns_now):
                index = derived_name(table, f"_{name}_idx")
                if self._relkind(conn, index) is None:  # (CREATE INDEX would lock the table even to skip)
                    conn.execute(
                        sql.SQL("CREATE INDEX {} ON {} {}").format(sql.Identifier(index), self._ref(table), columns)
                    )
        return columns_now

    def _indexes_for(self, present: Mapping[str, str], skip: tuple[str, ...] = ()) -> list[tuple[str, sql.Composed]]:
        """(name part, "USING method (columns)") of each configured index whose columns the table has."""
        out = []
        for entry in self.index_columns:
            method, _, listed = entry.rpartition(":")
            if method not in ("", "btree", "brin"):
                raise ValueError(f"index {entry!r}: only btree and brin indexes are configurable")
            columns = [validate_identifier(c.strip(), "index column") for c in listed.split(",")]
            if all(c in present for c in columns) and not set(columns) <= set(skip):
                out.append((
                    "_".join(columns),
                    sql.SQL("USING {} ({})").format(sql.SQL(method or "btree"), sql.SQL(", ").join(sql.Identifier(c) for c in columns)),
                ))
        return out

    def _parent_indexes(self, conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
        """The parent's indexes as (name, definition after USING): each child gets the same ones.

        Built on the new month before the swap, so that ATTACH finds them and attaches them
        instead of building them inside the lock.
        """
        rows = conn.execute(
            "SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisunique FROM pg_index i "
            "JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s ORDER BY 1",
            [self.schema_name, table],
        ).fetchall()
        return [(name, ("UNIQUE " if unique else "") + definition.split(" USING ", 1)[1]) for name, definition, unique in rows]

    # -- writes ----------------------------------------------------------------------------
    def replace_month(self, table: str, month: dt.date, source: TableSource) -> int:
        month = _month_start(month)
        wanted = self._validate(table, source.schema)
        if SOURCE_MONTH not in wanted:
            raise ValueError(f"{table}: rows for a month need a {SOURCE_MONTH!r} column")
        if wanted[SOURCE_MONTH] != "date":
            raise ValueError(f"{table}.{SOURCE_MONTH} must be a date, not {source.schema.field(SOURCE_MONTH).type}")
        with self.connect() as conn, self._month_lock(conn, table, month):
            columns = self._ensure_month_table(conn, table, wanted)
            names = list(source.schema.names)

            def batches() -> Iterator[pa.RecordBatch]:
                expected = pa.scalar(month, pa.date32())
                for batch in source.open():
                    months = batch.column(SOURCE_MONTH)
                    if not months.type.equals(pa.date32()):
                        months = pc.cast(months, pa.date32())
                    matching = pc.sum(pc.equal(months, expected)).as_py() or 0
                    if matching != batch.num_rows:
                        raise WarehouseError(
                            f"{table} {month:%Y-%m}: {batch.num_rows - matching} rows carry a {SOURCE_MONTH} other "
                            f"than {month:%Y-%m}; refusing the load, the month was left as it was"
                        )
                    yield batch

            def load(cur: psycopg.Cursor, stage: str) -> int:
                # The CHECK is there before the first row: the server tests each row as it arrives
                # (a comparison), instead of a second scan of the month to add it afterwards.
                cur.execute(
                    sql.SQL("CREATE TABLE {} ({}, {})").format(
                        self._ref(stage), self._column_definitions(columns), self._month_check(month)
                    )
                )
                try:
                    sent = copy_record_batches(
                        cur, self._ref(stage), names, [columns[n] for n in names], batches(),
                        chunk_rows=self.copy_chunk_rows, freeze=True,
                    )
                except CopyEncodeError as exc:
                    raise WarehouseError(f"{table} {month:%Y-%m}: {exc}; the month was left as it was") from exc
                if cur.rowcount not in (-1, sent):
                    raise WarehouseError(f"{table} {month:%Y-%m}: sent {sent} rows but Postgres took {cur.rowcount}")
                source.refuse_unexpected(f"{table} {month:%Y-%m}", sent)
                return sent

            return self._load_and_swap(conn, table, month, columns, load)

    def replace_month_from_query(self, table: str, month: dt.date, select_sql: str) -> int:
        month = _month_start(month)
        self._validate(table)
        with self.connect() as conn, self._month_lock(conn, table, month):
            # The SELECT's column names and types, from its description: no rows are computed.
            cur = conn.execute(f"SELECT * FROM ({select_sql}) AS q LIMIT 0")
            result = cur.pgresult
            wanted: dict[str, str] = {}
            for i, column in enumerate(cur.description):
                validate_identifier(column.name, "column")
                wanted[column.name] = conn.execute(
                    "SELECT format_type(%s, %s)", [result.ftype(i), result.fmod(i)]
                ).fetchone()[0]
            columns = self._ensure_month_table(conn, table, wanted)

            def load(cur: psycopg.Cursor, stage: str) -> int:
                # CREATE TABLE AS, not INSERT ... SELECT: Postgres runs the SELECT of a CREATE TABLE AS
                # with parallel workers (the mart's aggregate in half the time) and never an INSERT's.
                cur.execute(
                    sql.SQL("CREATE TABLE {} AS SELECT {} FROM ({}) AS q").format(
                        self._ref(stage),
                        sql.SQL(", ").join(
                            sql.SQL("CAST({} AS {}) AS {}").format(sql.Identifier("q", name), sql.SQL(typ), sql.Identifier(name))
                            for name, typ in columns.items()
                            if name in wanted
                        ),
                        sql.SQL(select_sql),
                    )
                )
                loaded = cur.rowcount
                other = cur.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {} IS DISTINCT FROM %s").format(
                        self._ref(stage), sql.Identifier(SOURCE_MONTH)
                    ),
                    [month],
                ).fetchone()[0]
                if other:
                    raise WarehouseError(
                        f"{table} {month:%Y-%m}: {other} of {loaded} rows carry a {SOURCE_MONTH} other than "
                        f"{month:%Y-%m}; refusing the load, the month was left as it was"
                    )
                # Columns the parent has and the SELECT does not (an older mart's) are added empty;
                # NOT NULL + CHECK prove the partition bound, so ATTACH skips its own scan.
                missing = [sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns.items() if n not in wanted]
                cur.execute(
                    sql.SQL("ALTER TABLE {} {}").format(
                        self._ref(stage),
                        sql.SQL(", ").join(
                            [*missing, sql.SQL("ALTER COLUMN {} SET NOT NULL").format(sql.Identifier(SOURCE_MONTH)),
                             sql.SQL("ADD ") + self._month_check(month)]
                        ),
                    )
                )
                return loaded

            return self._load_and_swap(conn, table, month, columns, load)

    @contextlib.contextmanager
    def _month_lock(self, conn: psycopg.Connection, table: str, month: dt.date) -> Iterator[None]:
        """Two loads of the same month take turns (a session lock: a dead client releases it)."""
        key = f"taxi_assets:month:{self.schema_name}.{table}:{month.isoformat()}"
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])

    def _column_definitions(self, columns: Mapping[str, str]) -> sql.Composed:
        return sql.SQL(", ").join(
            sql.SQL("{} {}{}").format(sql.Identifier(n), sql.SQL(t), sql.SQL(" NOT NULL" if n == SOURCE_MONTH else ""))
            for n, t in columns.items()
        )

    @staticmethod
    def _month_check(month: dt.date) -> sql.Composed:
        """CHECK (source_month = <month>): with source_month NOT NULL it proves a child's partition bound."""
        return sql.SQL("CONSTRAINT {} CHECK ({} = {})").format(
            sql.Identifier(f"{SOURCE_MONTH}_is_{month:%Y%m}"), sql.Identifier(SOURCE_MONTH), sql.Literal(month)
        )

    def _load_and_swap(self, conn: psycopg.Connection, table: str, month: dt.date, columns: Mapping[str, str], load) -> int:
        """Steps 1-5 of the module's docstring, in one transaction."""
        label = f"{month:%Y%m}"
        child = derived_name(table, f"_p{label}")
        stage = derived_name(table, f"__stage_{label}_", reserve=8) + uuid.uuid4().hex[:8]
        # (stage index, its name once attached, what it indexes)
        indexes = [
            (
                derived_name(stage, f"_i{k}"),
                derived_name(child, name[len(table):] if name.startswith(f"{table}_") else f"_{name}"),
                definition,
            )
            for k, (name, definition) in enumerate(self._parent_indexes(conn, table))
        ]
        try:
            with conn.transaction(), conn.cursor() as cur:
                loaded = load(cur, stage)
                for stage_index, _, definition in indexes:
                    cur.execute(
                        sql.SQL("CREATE {}INDEX {} ON {} USING {}").format(
                            sql.SQL("UNIQUE " if definition.startswith("UNIQUE ") else ""),
                            sql.Identifier(stage_index),
                            self._ref(stage),
                            sql.SQL(definition.removeprefix("UNIQUE ")),  # from pg_get_indexdef
                        )
                    )
                cur.execute(sql.SQL("ANALYZE {}").format(self._ref(stage)))
                self._swap(
                    conn,
                    lambda: self._swap_month_statements(cur, table, child, stage, month, indexes),
                    f"{table} {month:%Y-%m}",
                )
        except psycopg.errors.CheckViolation as exc:
            raise WarehouseError(
                f"{table} {month:%Y-%m}: rows carry a {SOURCE_MONTH} other than {month:%Y-%m}; "
                f"refusing the load, the month was left as it was ({exc})"
            ) from exc
        except psycopg.Error as exc:
            raise WarehouseError(f"{table} {month:%Y-%m}: load failed, the month was left as it was: {exc}") from exc
        return loaded

    def _swap_month_statements(
        self, cur: psycopg.Cursor, table: str, child: str, stage: str, month: dt.date, indexes: list[tuple[str, str, str]]
    ) -> None:
        conn = cur.connection
        if self._relkind(conn, child) is not None:
            if self._partition_of(conn, child, table):
                cur.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(self._ref(table), self._ref(child)))
            cur.execute(sql.SQL("DROP TABLE {}").format(self._ref(child)))
        cur.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                self._ref(table), self._ref(stage), sql.Literal(month), sql.Literal(next_month(month))
            )
        )
        cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(self._ref(stage), sql.Identifier(child)))
        for stage_index, final_name, _ in indexes:
            cur.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(self.schema_name, stage_index), sql.Identifier(final_name)
                )
            )

    def _swap(self, conn: psycopg.Connection, statements, what: str) -> None:
        """Run the swap in a savepoint under a short lock_timeout, retrying until the deadline.

        Waiting on a lock puts every later reader of the table in the queue behind us; a short
        timeout bounds that stall, and the retry lets a long-running reader finish first.
        """
        deadline = time.monotonic() + self.swap_deadline_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                with conn.transaction():
                    conn.execute(
                        "SELECT set_config('lock_timeout', %s, true)", [f"{int(self.lock_timeout_seconds * 1000)}ms"]
                    )
                    statements()
                    conn.execute("SELECT set_config('lock_timeout', '0', true)")
                return
            except psycopg.errors.LockNotAvailable as exc:
                if time.monotonic() > deadline:
                    raise WarehouseError(
                        f"{what}: the table stayed locked by other sessions for {self.swap_deadline_seconds:.0f} s "
                        f"({attempt} attempts); nothing was changed"
                    ) from exc
                time.sleep(min(5.0, 0.05 * 2 ** min(attempt, 6)) * (0.5 + random.random()))

    def replace_table(self, table: str, source: TableSource) -> int:
        wanted = self._validate(table, source.schema)
        nullable = {f.name: f.nullable for f in source.schema}
        key_columns = [c for c in KEY_COLUMNS if c in wanted]
        names = list(source.schema.names)
        with self.connect() as conn:
            key = f"taxi_assets:table:{self.schema_name}.{table}"
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])
            try:
                with self._ddl(conn):
                    pass
                stage = derived_name(table, "__stage_", reserve=8) + uuid.uuid4().hex[:8]
                old = derived_name(table, "__old_", reserve=8) + uuid.uuid4().hex[:8]
                indexes = self._indexes_for(wanted, skip=tuple(key_columns))
                try:
                    with conn.transaction(), conn.cursor() as cur:
                        if self._relkind(conn, table) == "p":
                            raise WarehouseError(
                                f"{self.schema_name}.{table} is partitioned by month; replace it month by month"
                            )
                        definition = sql.SQL(", ").join(
                            sql.SQL("{} {}{}").format(
                                sql.Identifier(n), sql.SQL(t), sql.SQL("" if nullable[n] else " NOT NULL")
                            )
                            for n, t in wanted.items()
                        )
                        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(self._ref(stage), definition))
                        try:
                            loaded = copy_record_batches(
                                cur, self._ref(stage), names, [wanted[n] for n in names], source.open(),
                                chunk_rows=self.copy_chunk_rows, freeze=True,
                            )
                        except CopyEncodeError as exc:
                            raise WarehouseError(f"{table}: {exc}; the table was left as it was") from exc
                        if key_columns:
                            cur.execute(
                                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                                    self._ref(stage),
                                    sql.Identifier(derived_name(stage, "_pkey")),
                                    sql.SQL(", ").join(sql.Identifier(c) for c in key_columns),
                                )
                            )
                        for name, columns in indexes:
                            cur.execute(
                                sql.SQL("CREATE INDEX {} ON {} {}").format(
                                    sql.Identifier(derived_name(stage, f"_{name}")), self._ref(stage), columns
                                )
                            )
                        cur.execute(sql.SQL("ANALYZE {}").format(self._ref(stage)))

                        def swap() -> None:
                            if self._relkind(conn, table) is not None:
                                cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(self._ref(table), sql.Identifier(old)))
                                cur.execute(sql.SQL("DROP TABLE {}").format(self._ref(old)))
                            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(self._ref(stage), sql.Identifier(table)))
                            if key_columns:
                                cur.execute(
                                    sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                                        self._ref(table),
                                        sql.Identifier(derived_name(stage, "_pkey")),
                                        sql.Identifier(derived_name(table, "_pkey")),
                                    )
                                )
                            for name, _ in indexes:
                                cur.execute(
                                    sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                                        sql.Identifier(self.schema_name, derived_name(stage, f"_{name}")),
                                        sql.Identifier(derived_name(table, f"_{name}_idx")),
                                    )
                                )

                        self._swap(conn, swap, table)
                except psycopg.errors.UniqueViolation as exc:
                    raise WarehouseError(f"{table}: repeated {', '.join(key_columns)}; the table was left as it was ({exc})") from exc
                except psycopg.Error as exc:
                    raise WarehouseError(f"{table}: load failed, the table was left as it was: {exc}") from exc
                return loaded
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])

    # -- reads -----------------------------------------------------------------------------
    def query(self, sql_text: str) -> pa.Table:
        """Run a query in a read-only transaction and return its (small) result as Arrow."""
        with self.connect() as conn, conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            cur = conn.execute(sql_text)
            if cur.description is None:
                return pa.table({})
            rows = cur.fetchall()
            arrays = {}
            for i, column in enumerate(cur.description):
                values = [r[i] for r in rows]
                arrays[column.name] = _arrow_array(values, column.type_code)
            return pa.table(arrays)

    def read_month(self, table: str, month: dt.date) -> pa.Table:
        return self.read_months(table, month, month).read_all()

    def read_months(self, table: str, first: dt.date, last: dt.date) -> pa.RecordBatchReader:
        """The rows of months `first`..`last` (inclusive), streamed as Arrow record batches.

        The rows come through a server-side COPY in CSV (one pass, no per-row Python objects)
        and are parsed by Arrow's CSV reader into the table's column types, block by block.
        """
        first, last = _month_start(first), _month_start(last)
        self._validate(table)
        with self.connect() as conn:
            columns = self._columns(conn, table)
        if not columns:
            raise WarehouseError(f"{self.schema_name}.{table} does not exist")
        schema = pa.schema([pa.field(n, PG_TO_ARROW.get(t, pa.string())) for n, t in columns.items()])
        selected = sql.SQL(", ").join(
            sql.SQL("({} AT TIME ZONE 'UTC') AS {}").format(sql.Identifier(n), sql.Identifier(n))
            if t == "timestamp with time zone"
            else sql.Identifier(n)
            for n, t in columns.items()
        )
        statement = sql.SQL("COPY (SELECT {} FROM {} WHERE {} BETWEEN {} AND {}) TO STDOUT (FORMAT csv)").format(
            selected, self._ref(table), sql.Identifier(SOURCE_MONTH), sql.Literal(first), sql.Literal(last)
        )
        parse_types = {
            f.name: (pa.timestamp("us") if pa.types.is_timestamp(f.type) else f.type) for f in schema
        }

        def parse(block: bytes) -> Iterator[pa.RecordBatch]:
            parsed = pacsv.read_csv(
                io.BytesIO(block),
                read_options=pacsv.ReadOptions(column_names=schema.names, block_size=4 * 1024 * 1024),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=parse_types,
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    true_values=["t"],
                    false_values=["f"],
                ),
            )
            yield from parsed.cast(schema).to_batches()

        def batches() -> Iterator[pa.RecordBatch]:
            with self.connect() as conn, conn.cursor() as cur:
                for block in copy_out_blocks(cur, statement, block_bytes=_READ_BLOCK_BYTES):
                    yield from parse(block)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def table_exists(self, table: str) -> bool:
        self._validate(table)
        with self.connect() as conn:
            return self._relkind(conn, table) in ("r", "p", "v", "m", "f")

    @property
    def dialect(self) -> Dialect:
        return _DIALECT

    def describe(self) -> str:
        """Where the tables are: host, port, database, user and schema, never the password."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self._conninfo())
        except psycopg.ProgrammingError:
            return f"PostgreSQL (unparseable connection settings; schema {self.schema_name})"
        host = info.get("host") or "localhost"
        port = info.get("port") or "5432"
        who = f"{info['user']}@" if info.get("user") else ""
        return f"PostgreSQL {who}{host}:{port}/{info.get('dbname') or info.get('user') or ''} (schema {self.schema_name})"


def _log_notice(diag: psycopg.errors.Diagnostic) -> None:
    """Server notices (and debug messages, if PGOPTIONS asks for them) go to this module's logger."""
    level = logging.WARNING if diag.severity_nonlocalized == "WARNING" else logging.DEBUG
    logger.log(level, "postgres %s: %s", diag.severity_nonlocalized, diag.message_primary)


_OID_TYPES = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    25: pa.string(),
    700: pa.float32(),
    701: pa.float64(),
    1042: pa.string(),
    1043: pa.string(),
    19: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    17: pa.binary(),
}


def _arrow_array(values: list, type_oid: int) -> pa.Array:
    arrow_type = _OID_TYPES.get(type_oid)
    if arrow_type is not None:
        return pa.array(values, arrow_type)
    try:
        return pa.array(values)  # numeric -> decimal128, interval -> duration, ...
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
