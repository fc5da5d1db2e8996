"""The embedded default warehouse: one DuckDB file, no server.

A month is replaced in one DuckDB transaction (delete the month, insert the new rows), so other
connections keep seeing the old month until the commit, and a process killed half-way leaves the
file as it was: DuckDB's write-ahead log discards an uncommitted transaction on the next open.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from taxi_assets.storage.warehouse.base import (
    Dialect,
    TableSource,
    TableSpec,
    Warehouse,
    WarehouseError,
    as_spec,
    round2_halves_away,
)

_DIALECT = Dialect(
    seconds_between=lambda start, end: f"date_diff('second', {start}, {end})",
    to_date=lambda expr: f"CAST({expr} AS DATE)",
    round2=round2_halves_away,
)


@dataclass(kw_only=True)
class DuckDBWarehouse(Warehouse):
    """Tables in a local DuckDB file (default `data/warehouse.duckdb`)."""

    path: str = "data/warehouse.duckdb"
    schema_name: str = "ny_taxi"
    #: DuckDB lets one process write a file at a time; steps of parallel runs wait their turn.
    lock_timeout_seconds: float = 300.0
    #: What DuckDB may hold in memory before it spills to `<file>.tmp/` (a setting of the open
    #: database, shared by its connections in this process). Its own default, 80 % of the machine,
    #: let a 20M-row fhvhv month's insert reach 1.5 GB on its own (31.9 s). At 256 MB the whole
    #: fhvhv job stayed under 0.8 GB and the insert ran no slower (27.4 s), nor a yellow month's
    #: (1.9-2.2 s against 2.1-2.4 s at 512 MB, alternated).
    memory_limit: str = "256MB"

    def _open(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_seconds
        while True:
            try:
                con = duckdb.connect(self.path, read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2 + random.random() * 0.5)
                continue
            # (a SET, not connect()'s config: another connection to the file in this process, a
            # user's DuckDBResource, may have opened it with other settings)
            con.execute(f"SET memory_limit = {_string_literal(self.memory_limit)}")
            return con

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._open(read_only)
        try:
            if not read_only:
                # This connection only (a reader's unordered SELECT keeps its order): a table's rows
                # have no order to keep, and without it DuckDB inserts in parallel without
                # buffering for order (a month's insert measured 10-25 % faster).
                con.execute("SET SESSION preserve_insertion_order = false")
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema_name}"')
            yield con
        finally:
            con.close()

    # -- writes ----------------------------------------------------------------------------
    def replace_month(self, table: str | TableSpec, month: dt.date, source: TableSource) -> int:
        spec = as_spec(table)
        table, column = spec.name, spec.month_column
        ref = self.table_ref(table)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                self._ensure_table(con, ref, source.schema)
                con.execute(f'DELETE FROM {ref} WHERE "{column}" = ?', [month])
                inserted = self._insert(con, ref, source)
                source.refuse_unexpected(f"{table} {month:%Y-%m}", inserted)
                loaded = con.execute(f'SELECT COUNT(*) FROM {ref} WHERE "{column}" = ?', [month]).fetchone()[0]
                if loaded != inserted:
                    raise WarehouseError(
                        f"{table} {month:%Y-%m}: {inserted} rows given but {loaded} carry {column} "
                        f"{month:%Y-%m}; refusing a load that would leave rows of other months behind"
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return loaded

    def replace_table(self, table: str | TableSpec, source: TableSource) -> int:
        spec = as_spec(table)
        ref = self.table_ref(spec.name)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DROP TABLE IF EXISTS {ref}")
                self._ensure_table(con, ref, source.schema)
                inserted = self._insert(con, ref, source)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return inserted

    def replace_month_from_query(self, table: str | TableSpec, month: dt.date, select_sql: str) -> int:
        spec = as_spec(table)
        ref, column = self.table_ref(spec.name), spec.month_column
        with self.connect() as con:
            # Created in its own committed statement: see _ensure_table on CREATE ... AS in a transaction.
            con.execute(f"CREATE TABLE IF NOT EXISTS {ref} AS SELECT * FROM ({select_sql}) AS q LIMIT 0")
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f'DELETE FROM {ref} WHERE "{column}" = ?', [month])
                con.execute(f"INSERT INTO {ref} BY NAME SELECT * FROM ({select_sql}) AS q")
                loaded = con.execute(f'SELECT COUNT(*) FROM {ref} WHERE "{column}" = ?', [month]).fetchone()[0]
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return loaded

    # -- reads -----------------------------------------------------------------------------
    def query(self, sql: str) -> pa.Table:
        with self.connect() as con:
            return con.sql(sql).to_arrow_table()

    def stream(self, sql: str) -> pa.RecordBatchReader:
        """The result in record batches; the connection stays open until the last one."""
        probe = self.query(f"SELECT * FROM ({sql}) AS q LIMIT 0")

        def batches() -> Iterator[pa.RecordBatch]:
            with self.connect() as con:
                yield from con.sql(sql).to_arrow_reader(64 * 1024)

        return pa.RecordBatchReader.from_batches(probe.schema, batches())

    def table_exists(self, table: str) -> bool:
        with self.connect() as con:
            found = con.execute(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [self.schema_name, table],
            ).fetchone()[0]
        return bool(found)

    def comment(self, spec: TableSpec) -> None:
        ref = self.table_ref(spec.name)
        with self.connect() as con:
            have = dict(
                con.execute(
                    "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
                    [self.schema_name, spec.name],
                ).fetchall()
            )
            if not have:
                return
            table_comment = con.execute(
                "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [self.schema_name, spec.name]
            ).fetchone()[0]
            if spec.description and table_comment != spec.description:
                con.execute(f"COMMENT ON TABLE {ref} IS {_string_literal(spec.description)}")
            for column, text in spec.column_descriptions:
                if column in have and have[column] != text:
                    con.execute(f'COMMENT ON COLUMN {ref}."{column}" IS {_string_literal(text)}')

    def relation(self, sql: str) -> duckdb.DuckDBPyRelation:
        """A lazy relation over a query: DuckDB runs what is built on it; its connection lives as long as it does."""
        return self._open().sql(sql)

    @property
    def dialect(self) -> Dialect:
        return _DIALECT

    def describe(self) -> str:
        return f"DuckDB {Path(self.path).resolve()} (schema {self.schema_name})"

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _ensure_table(con: duckdb.DuckDBPyConnection, ref: str, schema: pa.Schema) -> None:
        """Create the table from the Arrow schema with DDL; add columns a newer schema brought.

        Never `CREATE TABLE ... AS SELECT` from an empty Arrow table: DuckDB 1.5.5 then dropped
        every row group (>= 122,880 rows) that the same transaction inserted, so a real month's
        first load committed an empty table.
        """
        columns = ", ".join(f'"{f.name}" {_duck_type(con, f)}' for f in schema)
        con.execute(f"CREATE TABLE IF NOT EXISTS {ref} ({columns})")
        existing = {row[0] for row in con.execute(f"SELECT * FROM {ref} LIMIT 0").description}
        for f in schema:
            if f.name not in existing:
                con.execute(f'ALTER TABLE {ref} ADD COLUMN "{f.name}" ' + _duck_type(con, f))

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, ref: str, source: TableSource) -> int:
        if source.local_parquet:
            # Not from the folder names: a `pickup_date=` folder's column is no column of the table.
            result = con.execute(
                f"INSERT INTO {ref} BY NAME SELECT * FROM read_parquet(?, hive_partitioning = false)",
                [[str(path) for path in source.local_parquet]],
            )
        else:
            reader = source.open()  # noqa: F841 - scanned by DuckDB, batch by batch
            result = con.execute(f"INSERT INTO {ref} BY NAME SELECT * FROM reader")
        return int(result.fetchone()[0])


def _duck_type(con: duckdb.DuckDBPyConnection, field: pa.Field) -> str:
    probe = pa.table({"c": pa.array([], field.type)})  # noqa: F841 - read by DuckDB
    return str(con.execute("DESCRIBE SELECT c FROM probe").fetchone()[1])


def _string_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
