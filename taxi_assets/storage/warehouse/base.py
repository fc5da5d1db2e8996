"""What every warehouse does: replace a month of a table atomically, replace a small table, query.

Each backend (DuckDB, Postgres, BigQuery) implements these few operations the way its engine makes
them atomic; the IO manager and the mart assets only ever call these, so a backend plugs in
without touching the assets.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pyarrow as pa

from taxi_assets.tlc.services import SOURCE_MONTH

# \Z, not $: `$` also matches before a trailing newline, and "ny_taxi\n" would pass.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


class WarehouseError(RuntimeError):
    """A load the warehouse refused; nothing it held before was changed."""


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Refuse anything but a plain SQL identifier, before any statement is built from it."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits and underscores, starting with a letter "
            "or underscore, at most 63 characters"
        )
    return name


@dataclass
class TableSource:
    """Rows to load, streamed in record batches, never a whole month in memory.

    `open` gives a fresh reader each call. Where the rows are already one parquet file on this
    disk (`local_parquet`) or in a bucket (`uris`), an engine that can read it directly does so.
    """

    schema: pa.Schema
    open: Callable[[], pa.RecordBatchReader]
    local_parquet: Path | None = None
    uris: list[str] = field(default_factory=list)
    #: Rows the load must take (the lake's count of the month): a load that took other than this is
    #: refused before it is committed (the audit of write–audit–publish, in the warehouse).
    expected_rows: int | None = None

    def refuse_unexpected(self, what: str, loaded: int) -> None:
        """Raise before the commit when a load took another number of rows than the lake holds."""
        if self.expected_rows is not None and loaded != self.expected_rows:
            raise WarehouseError(
                f"{what}: {loaded:,} rows loaded but the lake's month has {self.expected_rows:,}; "
                "refusing the load, the month was left as it was"
            )

    @classmethod
    def from_table(cls, table: pa.Table) -> TableSource:
        return cls(schema=table.schema, open=lambda: pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))

    @classmethod
    def from_batches(cls, schema: pa.Schema, batches: Callable[[], Iterator[pa.RecordBatch]]) -> TableSource:
        return cls(schema=schema, open=lambda: pa.RecordBatchReader.from_batches(schema, batches()))


@dataclass(frozen=True)
class Dialect:
    """The few SQL spellings the marts need that differ between engines."""

    seconds_between: Callable[[str, str], str]
    to_date: Callable[[str], str]
    round2: Callable[[str], str]
    float_type: str = "DOUBLE PRECISION"
    int_type: str = "BIGINT"


class WarehouseResource(dg.ConfigurableResource):
    """Base of the warehouse backends; `schema_name` is the SQL schema (BigQuery: the dataset)."""

    schema_name: str = "ny_taxi"

    # -- what every backend implements -----------------------------------------------------
    def replace_month(self, table: str, month: dt.date, source: TableSource) -> int:
        """Atomically make `table`'s rows for `month` exactly `source`'s rows; returns the row count.

        Readers see the old month or the new one, never an empty or partial month. Rows are keyed
        on `source_month`, a column we own, so no re-run can leave an old row behind.
        """
        raise NotImplementedError

    def replace_table(self, table: str, source: TableSource) -> int:
        """Atomically replace a whole (small, unpartitioned) table."""
        raise NotImplementedError

    def replace_month_from_query(self, table: str, month: dt.date, select_sql: str) -> int:
        """Atomically replace `table`'s month with the rows of a SELECT run inside the engine."""
        raise NotImplementedError

    def query(self, sql: str) -> pa.Table:
        """Run a read-only query and return its (small) result."""
        raise NotImplementedError

    def read_month(self, table: str, month: dt.date) -> pa.Table:
        raise NotImplementedError

    def table_exists(self, table: str) -> bool:
        raise NotImplementedError

    @property
    def dialect(self) -> Dialect:
        raise NotImplementedError

    def describe(self) -> str:
        """Where the tables are, for people (never a secret)."""
        raise NotImplementedError

    # -- shared helpers --------------------------------------------------------------------
    def table_ref(self, table: str) -> str:
        """The quoted, schema-qualified name of a table, for SQL we build ourselves."""
        return f'"{validate_identifier(self.schema_name, "schema")}"."{validate_identifier(table, "table")}"'

    def table_metadata(self, table: str, month: dt.date | None = None) -> dict[str, object]:
        """Column schema and the first rows of a table (or of one month), for the UI."""
        from taxi_assets.defs.metadata import table_metadata

        where = f" WHERE {SOURCE_MONTH} = {sql_date_literal(month)}" if month is not None else ""
        preview = self.query(f"SELECT * FROM {self.table_ref(table)}{where} LIMIT 10")
        return table_metadata(preview.schema, preview)

    def count(self, table: str, month: dt.date | None = None) -> int:
        sql = f"SELECT COUNT(*) AS n FROM {self.table_ref(table)}"
        if month is not None:
            sql += f" WHERE {SOURCE_MONTH} = {sql_date_literal(month)}"
        return int(self.query(sql).column("n")[0].as_py())


def sql_date_literal(day: dt.date) -> str:
    """A DATE literal; built from a date object only, so there is nothing to inject."""
    if not isinstance(day, dt.date):
        raise TypeError(f"expected a date, got {day!r}")
    return f"DATE '{day.isoformat()}'"
