"""What every warehouse does: replace a month of a table atomically, replace a small table, query.

Each backend (DuckDB, Postgres, BigQuery) implements these few operations the way its engine makes
them atomic; the IO managers and the mart assets only ever call these, so a backend plugs in
without touching the assets. What a table is keyed, ordered and indexed on arrives with each call
as a `TableSpec`: the backends know no column of any particular dataset.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

# \Z, not $: `$` also matches before a trailing newline, and "ny_taxi\n" would pass.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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


#: The column a monthly table is keyed on unless its spec names another: a DATE, the first day of
#: the month the row was published in. A column the platform owns, so a re-run of a month can
#: never leave one of its old rows behind, whatever the rows' own dates say.
DEFAULT_MONTH_COLUMN = "source_month"


@dataclass(frozen=True)
class TableSpec:
    """What a table is keyed, ordered and indexed on; given by the caller with every write."""

    name: str
    #: Monthly tables: the DATE column each month is replaced on.
    month_column: str = DEFAULT_MONTH_COLUMN
    #: The primary time column: rows arrive in its order (Postgres gives it a BRIN index).
    time_column: str | None = None
    #: Btree indexes, one per group of columns, built where the table has all of a group's columns.
    index_columns: tuple[tuple[str, ...], ...] = ()
    #: BigQuery clustering of a monthly table, where the table has these columns.
    cluster_columns: tuple[str, ...] = ()
    #: Unpartitioned tables: the primary key.
    key_columns: tuple[str, ...] = ()
    #: What the table holds and what its columns mean, kept as the engine's own comments (what
    #: `\d+` in psql, DuckDB's `duckdb_columns()` and BigQuery's schema show). Not in `to_dict`:
    #: in the UI the asset's description and column schema already carry them.
    description: str | None = None
    column_descriptions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # The table's name is checked by each backend, by its own rules; columns are plain identifiers everywhere.
        named = [self.month_column, *([self.time_column] if self.time_column else []), *self.cluster_columns, *self.key_columns]
        for column in named + [c for group in self.index_columns for c in group]:
            if not _COLUMN.match(column):
                raise ValueError(f"invalid column {column!r} in the spec of {self.name!r}: use letters, digits and underscores")

    def to_dict(self) -> dict[str, object]:
        """Plain JSON (asset metadata carries it, and the UI shows it)."""
        return {
            "name": self.name,
            "month_column": self.month_column,
            "time_column": self.time_column,
            "index_columns": [list(group) for group in self.index_columns],
            "cluster_columns": list(self.cluster_columns),
            "key_columns": list(self.key_columns),
        }

    @classmethod
    def from_dict(cls, data: dict) -> TableSpec:
        return cls(
            name=data["name"],
            month_column=data.get("month_column") or DEFAULT_MONTH_COLUMN,
            time_column=data.get("time_column"),
            index_columns=tuple(tuple(group) for group in data.get("index_columns") or ()),
            cluster_columns=tuple(data.get("cluster_columns") or ()),
            key_columns=tuple(data.get("key_columns") or ()),
        )


def as_spec(table: str | TableSpec) -> TableSpec:
    """A bare table name is a monthly table keyed on DEFAULT_MONTH_COLUMN, with no indexes."""
    return table if isinstance(table, TableSpec) else TableSpec(table)


@dataclass
class TableSource:
    """Rows to load, streamed in record batches, never a whole month in memory.

    `open` gives a fresh reader each call. Where the rows are already parquet files on this disk
    (`local_parquet`) or in a bucket (`uris`), an engine that can read them directly does so.
    """

    schema: pa.Schema
    open: Callable[[], pa.RecordBatchReader]
    local_parquet: list[Path] = field(default_factory=list)
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


def round2_halves_away(expr: str) -> str:
    """x rounded to two decimals as round(x * 100) / 100, halves away from zero, in plain double
    arithmetic that every engine computes alike.

    The engines' own ROUNDs disagree by a cent at halves: DuckDB 2.0 rounds the double's exact
    binary value (89.475 is stored as 89.47499... and gives 89.47), DuckDB 1.5 gave 89.48 as this
    does (identical on 3M values), Postgres's round(numeric) rounds a 15-digit decimal of the double
    and its round(double) halves to even. One formula keeps DuckDB's and Postgres's marts equal,
    and DuckDB's the same across its upgrade.
    """
    v = f"CAST(({expr}) AS DOUBLE PRECISION)"
    return (
        f"(SIGN({v}) * FLOOR(ABS({v}) * CAST(100 AS DOUBLE PRECISION) + CAST(0.5 AS DOUBLE PRECISION))"
        " / CAST(100 AS DOUBLE PRECISION))"
    )


@dataclass(frozen=True)
class Dialect:
    """The few SQL spellings the marts need that differ between engines."""

    seconds_between: Callable[[str, str], str]
    to_date: Callable[[str], str]
    round2: Callable[[str], str]
    float_type: str = "DOUBLE PRECISION"
    int_type: str = "BIGINT"


class Warehouse:
    """Base of the warehouse backends; `schema_name` is the SQL schema (BigQuery: the dataset)."""

    schema_name: str = "ny_taxi"

    # -- what every backend implements -----------------------------------------------------
    def replace_month(self, table: str | TableSpec, month: dt.date, source: TableSource) -> int:
        """Atomically make `table`'s rows for `month` exactly `source`'s rows; returns the row count.

        Readers see the old month or the new one, never an empty or partial month. Rows are keyed
        on the spec's month column, so no re-run can leave an old row behind.
        """
        raise NotImplementedError

    def replace_table(self, table: str | TableSpec, source: TableSource) -> int:
        """Atomically replace a whole (small, unpartitioned) table."""
        raise NotImplementedError

    def replace_month_from_query(self, table: str | TableSpec, month: dt.date, select_sql: str) -> int:
        """Atomically replace `table`'s month with the rows of a SELECT run inside the engine."""
        raise NotImplementedError

    def query(self, sql: str) -> pa.Table:
        """Run a read-only query and return its (small) result."""
        raise NotImplementedError

    def stream(self, sql: str) -> pa.RecordBatchReader:
        """Run a read-only query and stream its result in record batches (memory: a batch)."""
        raise NotImplementedError

    def table_exists(self, table: str) -> bool:
        raise NotImplementedError

    def comment(self, spec: TableSpec) -> None:
        """Write the spec's description and column descriptions as the table's comments, for the
        columns the table has; comments already right are left alone (no lock, no catalog write)."""
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

    def select_months(self, table: str | TableSpec, months: list[dt.date] | None = None, columns: str = "*") -> str:
        """SELECT of a table's rows, of the given months only (None: every month)."""
        spec = as_spec(table)
        text = f"SELECT {columns} FROM {self.table_ref(spec.name)}"
        if months:
            listed = ", ".join(sql_date_literal(m) for m in sorted(set(months)))
            text += f" WHERE {spec.month_column} IN ({listed})"
        return text

    def read_month(self, table: str | TableSpec, month: dt.date) -> pa.Table:
        return self.read_months(table, [month]).read_all()

    def read_months(self, table: str | TableSpec, months: list[dt.date]) -> pa.RecordBatchReader:
        """The rows of these months, streamed."""
        for month in months:
            if not isinstance(month, dt.date) or isinstance(month, dt.datetime) or month.day != 1:
                raise ValueError(f"{month!r} is not the first day of a month")
        return self.stream(self.select_months(table, months))

    def count(self, table: str | TableSpec, month: dt.date | None = None) -> int:
        return int(self.query(self.select_months(table, [month] if month else None, "COUNT(*) AS n")).column("n")[0].as_py())


def sql_date_literal(day: dt.date) -> str:
    """A DATE literal; built from a date object only, so there is nothing to inject."""
    if not isinstance(day, dt.date):
        raise TypeError(f"expected a date, got {day!r}")
    return f"DATE '{day.isoformat()}'"
