"""What the tables look like: reads of pg_catalog (they take no lock on the tables) and the DDL of
the live tables, serialised per schema."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping

import psycopg
import pyarrow as pa
from psycopg import sql

from taxi_assets.storage.warehouse.base import TableSpec, WarehouseError, validate_identifier
from taxi_assets.storage.warehouse.pg_copy import CopyEncodeError, pg_type_for

_MAX_NAME = 63


def month_partition(table: str, month: dt.date) -> str:
    """The name of a month's partition of a monthly table (`<table>_pYYYYMM`, shortened if need be)."""
    return derived_name(table, f"_p{month:%Y%m}")


def derived_name(base: str, suffix: str, reserve: int = 0) -> str:
    """`base + suffix`, shortened with a hash of `base` if it would pass Postgres's 63 characters."""
    if len(base) + len(suffix) + reserve <= _MAX_NAME:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    keep = _MAX_NAME - reserve - len(suffix) - len(digest) - 1
    return f"{base[:keep]}_{digest}{suffix}"


class Catalog:
    """Catalog reads and DDL; mixed into PostgresWarehouse (which gives `schema_name`)."""

    schema_name: str

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

    def comment(self, spec: TableSpec) -> None:
        """The table's and its columns' comments (on the parent of a monthly table: every month's
        partition is read through it, and `\\d+` shows it there). Read and written under the schema's
        DDL lock: months loading side by side all reach this, and Postgres updates pg_description
        without row locks, so two unserialised COMMENTs on one object can fail each other."""
        validate_identifier(spec.name, "table")
        with self.connect() as conn, self._ddl(conn):
            have = dict(
                conn.execute(
                    "SELECT a.attname, col_description(c.oid, a.attnum) FROM pg_attribute a "
                    "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
                    [self.schema_name, spec.name],
                ).fetchall()
            )
            if not have:
                return
            if spec.description:
                current = conn.execute(
                    "SELECT obj_description(to_regclass(%s), 'pg_class')", [f'"{self.schema_name}"."{spec.name}"']
                ).fetchone()[0]
                if current != spec.description:
                    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(self._ref(spec.name), sql.Literal(spec.description)))
            for column, text in spec.column_descriptions:
                if column in have and have[column] != text:
                    conn.execute(
                        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(self._ref(spec.name), sql.Identifier(column), sql.Literal(text))
                    )

    # -- DDL of the live tables, serialised per schema ----------------------------------------
    @contextlib.contextmanager
    def _ddl(self, conn: psycopg.Connection) -> Iterator[None]:
        """A short transaction holding the schema's DDL lock (first loads of two months race here)."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"taxi_assets:ddl:{self.schema_name}"])
            if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema_name]).fetchone():
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema_name)))
            yield

    def _ensure_month_table(self, conn: psycopg.Connection, spec: TableSpec, wanted: Mapping[str, str]) -> dict[str, str]:
        """Create the partitioned parent (and its indexes) or add the columns a newer schema brought."""
        table, month_column, time_column = spec.name, spec.month_column, spec.time_column
        if month_column not in wanted:
            raise ValueError(f"{table}: rows for a month need a {month_column!r} column")
        with self._ddl(conn):
            kind = self._relkind(conn, table)
            if kind is None:
                columns = sql.SQL(", ").join(
                    sql.SQL("{} {}{}").format(
                        sql.Identifier(name), sql.SQL(typ), sql.SQL(" NOT NULL" if name == month_column else "")
                    )
                    for name, typ in wanted.items()
                )
                conn.execute(
                    sql.SQL("CREATE TABLE {} ({}) PARTITION BY RANGE ({})").format(
                        self._ref(table), columns, sql.Identifier(month_column)
                    )
                )
                comment = f"One partition per month ({month_column}), each replaced atomically by taxi_assets."
                if time_column and time_column in wanted:
                    comment += f" Primary time column: {time_column}."
                    conn.execute(
                        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                            self._ref(table), sql.Identifier(time_column), sql.Literal("primary time column")
                        )
                    )
                conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(self._ref(table), sql.Literal(comment)))
            elif kind != "p":
                raise WarehouseError(
                    f"{self.schema_name}.{table} exists but is not partitioned by {month_column}; "
                    "drop or rename it to let taxi_assets manage it"
                )
            else:
                key = conn.execute(
                    "SELECT pg_get_partkeydef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s",
                    [self.schema_name, table],
                ).fetchone()[0]
                if key != f"RANGE ({month_column})":
                    raise WarehouseError(f"{self.schema_name}.{table} is partitioned by {key}, not RANGE ({month_column})")
                existing = self._columns(conn, table)
                for name, typ in wanted.items():
                    if name not in existing:
                        conn.execute(
                            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(self._ref(table), sql.Identifier(name), sql.SQL(typ))
                        )
            columns_now = self._columns(conn, table)
            if columns_now.get(month_column) != "date":
                raise WarehouseError(f"{self.schema_name}.{table}.{month_column} is {columns_now.get(month_column)}, not date")
            for name, columns in self._indexes_for(spec, columns_now):
                index = derived_name(table, f"_{name}_idx")
                if self._relkind(conn, index) is None:  # (CREATE INDEX would lock the table even to skip)
                    conn.execute(
                        sql.SQL("CREATE INDEX {} ON {} {}").format(sql.Identifier(index), self._ref(table), columns)
                    )
        return columns_now

    @staticmethod
    def _indexes_for(spec: TableSpec, present: Mapping[str, str], skip: tuple[str, ...] = ()) -> list[tuple[str, sql.Composed]]:
        """(name part, "USING method (columns)") of each of the spec's indexes whose columns the table has.

        The time column gets a BRIN index: rows arrive in its order, so a month's min/max per 128
        pages pins a time range to its few adjacent pages; it builds in a quarter of a btree's
        time and is a thousandth of its size.
        """
        wanted = [("brin", (spec.time_column,))] if spec.time_column else []
        wanted += [("btree", group) for group in spec.index_columns]
        return [
            (
                "_".join(columns),
                sql.SQL("USING {} ({})").format(sql.SQL(method), sql.SQL(", ").join(sql.Identifier(c) for c in columns)),
            )
            for method, columns in wanted
            if all(c in present for c in columns) and not set(columns) <= set(skip)
        ]

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
