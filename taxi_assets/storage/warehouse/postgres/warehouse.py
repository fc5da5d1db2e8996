"""PostgresWarehouse: connections and the three writes (see the package's docstring for how a month is swapped)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from taxi_assets.storage.redaction import redact
from taxi_assets.storage.warehouse.base import Dialect, TableSource, TableSpec, Warehouse, WarehouseError, as_spec, validate_identifier
from taxi_assets.storage.warehouse.pg_copy import DEFAULT_CHUNK_ROWS, CopyEncodeError, copy_record_batches
from taxi_assets.storage.warehouse.postgres.catalog import derived_name
from taxi_assets.storage.warehouse.postgres.dialect import DIALECT
from taxi_assets.storage.warehouse.postgres.reads import Reads
from taxi_assets.storage.warehouse.postgres.swap import Swap

#: How we run the warehouse's own server (docker-compose.yml and `make bench` start it so): no WAL
#: for replicas, so a month's COPY into the table its transaction created writes its rows once
#: (the data files, flushed at commit) instead of twice (WAL, then data files): measured on a
#: 3M-row month, the COPY 5.2 -> 3.4 s, the commit 0.02 -> 1 s, the load about 15 % faster.
#: Crash-safe as ever; what it gives up is streaming replication and point-in-time recovery from
#: archived WAL (pg_dump backups still work). A server you point us at keeps its own settings:
#: everything works the same, a little slower.
SERVER_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0"}
logger = logging.getLogger("taxi_assets.storage.warehouse.postgres")


def _month_start(month: dt.date) -> dt.date:
    if isinstance(month, dt.datetime) or not isinstance(month, dt.date):
        raise TypeError(f"expected a date (the first day of a month), got {month!r}")
    if month.day != 1:
        raise ValueError(f"{month} is not the first day of a month")
    return month


@dataclass(kw_only=True)
class PostgresWarehouse(Reads, Swap, Warehouse):
    """Tables in a Postgres schema (default `ny_taxi`): months as partitions swapped atomically.

    Connection: `url` (a libpq URL or key=value string) and/or the pieces host, port, database,
    user, password; pieces given override the URL's. Values are plain strings here: the Dagster
    resource (taxi_assets.defs.resources) resolves them from `dg.EnvVar`s when a run starts.
    """

    url: str | None = field(default=None, repr=False)
    host: str | None = None
    port: str | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    schema_name: str = "ny_taxi"
    #: How long the swap waits for the table's lock before letting readers through and retrying.
    lock_timeout_seconds: float = 3.0
    #: How long the swap keeps retrying before the load is given up (the old month is kept).
    swap_deadline_seconds: float = 600.0
    copy_chunk_rows: int = DEFAULT_CHUNK_ROWS
    application_name: str = "taxi_assets"

    # -- connections -----------------------------------------------------------------------
    def _conninfo(self) -> str:
        pieces = {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "password": self.password,
        }
        base = self.url or ""
        return psycopg.conninfo.make_conninfo(str(base), **{k: v for k, v in pieces.items() if v not in (None, "")})

    def _secrets(self) -> list[str]:
        """What must never appear in a message: the URL as given, and the password."""
        return [str(v) for v in (self.url, self.password) if v]

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

    # -- writes ----------------------------------------------------------------------------
    def replace_month(self, table: str | TableSpec, month: dt.date, source: TableSource) -> int:
        spec = as_spec(table)
        table, month_column = spec.name, spec.month_column
        month = _month_start(month)
        wanted = self._validate(table, source.schema)
        if month_column not in wanted:
            raise ValueError(f"{table}: rows for a month need a {month_column!r} column")
        if wanted[month_column] != "date":
            raise ValueError(f"{table}.{month_column} must be a date, not {source.schema.field(month_column).type}")
        with self.connect() as conn, self._month_lock(conn, table, month):
            columns = self._ensure_month_table(conn, spec, wanted)
            names = list(source.schema.names)

            def batches() -> Iterator[pa.RecordBatch]:
                expected = pa.scalar(month, pa.date32())
                for batch in source.open():
                    months = batch.column(month_column)
                    if not months.type.equals(pa.date32()):
                        months = pc.cast(months, pa.date32())
                    matching = pc.sum(pc.equal(months, expected)).as_py() or 0
                    if matching != batch.num_rows:
                        raise WarehouseError(
                            f"{table} {month:%Y-%m}: {batch.num_rows - matching} rows carry a {month_column} other "
                            f"than {month:%Y-%m}; refusing the load, the month was left as it was"
                        )
                    yield batch

            def load(cur: psycopg.Cursor, stage: str) -> int:
                # The CHECK is there before the first row: the server tests each row as it arrives
                # (a comparison), instead of a second scan of the month to add it afterwards.
                cur.execute(
                    sql.SQL("CREATE TABLE {} ({}, {})").format(
                        self._ref(stage), self._column_definitions(columns, month_column), self._month_check(month, month_column)
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

            return self._load_and_swap(conn, spec, month, load)

    def replace_month_from_query(self, table: str | TableSpec, month: dt.date, select_sql: str) -> int:
        spec = as_spec(table)
        table, month_column = spec.name, spec.month_column
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
            columns = self._ensure_month_table(conn, spec, wanted)

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
                        self._ref(stage), sql.Identifier(month_column)
                    ),
                    [month],
                ).fetchone()[0]
                if other:
                    raise WarehouseError(
                        f"{table} {month:%Y-%m}: {other} of {loaded} rows carry a {month_column} other than "
                        f"{month:%Y-%m}; refusing the load, the month was left as it was"
                    )
                # Columns the parent has and the SELECT does not (an older mart's) are added empty;
                # NOT NULL + CHECK prove the partition bound, so ATTACH skips its own scan.
                missing = [sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns.items() if n not in wanted]
                cur.execute(
                    sql.SQL("ALTER TABLE {} {}").format(
                        self._ref(stage),
                        sql.SQL(", ").join(
                            [*missing, sql.SQL("ALTER COLUMN {} SET NOT NULL").format(sql.Identifier(month_column)),
                             sql.SQL("ADD ") + self._month_check(month, month_column)]
                        ),
                    )
                )
                return loaded

            return self._load_and_swap(conn, spec, month, load)

    def replace_table(self, table: str | TableSpec, source: TableSource) -> int:
        spec = as_spec(table)
        table = spec.name
        wanted = self._validate(table, source.schema)
        nullable = {f.name: f.nullable for f in source.schema}
        key_columns = [c for c in spec.key_columns if c in wanted]
        names = list(source.schema.names)
        with self.connect() as conn:
            key = f"taxi_assets:table:{self.schema_name}.{table}"
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])
            try:
                with self._ddl(conn):
                    pass
                stage = derived_name(table, "__stage_", reserve=8) + uuid.uuid4().hex[:8]
                old = derived_name(table, "__old_", reserve=8) + uuid.uuid4().hex[:8]
                indexes = self._indexes_for(spec, wanted, skip=tuple(key_columns))
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

    @property
    def dialect(self) -> Dialect:
        return DIALECT

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
