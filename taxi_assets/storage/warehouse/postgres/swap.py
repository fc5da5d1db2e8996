"""Replacing a month: load a standalone table, index it, then swap it in as the month's partition.

Steps 1-5 of the package's docstring; the swap is the only moment the live table is locked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import time
import uuid
from collections.abc import Iterator, Mapping

import psycopg
from psycopg import sql

from taxi_assets.storage.warehouse.base import TableSpec, WarehouseError
from taxi_assets.storage.warehouse.postgres.catalog import Catalog, derived_name, month_partition


def _next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


class Swap(Catalog):
    """The atomic month swap; mixed into PostgresWarehouse."""

    lock_timeout_seconds: float
    swap_deadline_seconds: float

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

    @staticmethod
    def _column_definitions(columns: Mapping[str, str], month_column: str) -> sql.Composed:
        return sql.SQL(", ").join(
            sql.SQL("{} {}{}").format(sql.Identifier(n), sql.SQL(t), sql.SQL(" NOT NULL" if n == month_column else ""))
            for n, t in columns.items()
        )

    @staticmethod
    def _month_check(month: dt.date, month_column: str) -> sql.Composed:
        """CHECK (<month column> = <month>): with the column NOT NULL it proves a child's partition bound."""
        return sql.SQL("CONSTRAINT {} CHECK ({} = {})").format(
            sql.Identifier(f"{month_column}_is_{month:%Y%m}"), sql.Identifier(month_column), sql.Literal(month)
        )

    def _load_and_swap(self, conn: psycopg.Connection, spec: TableSpec, month: dt.date, load) -> int:
        """Steps 1-5 of the package's docstring, in one transaction."""
        table = spec.name
        label = f"{month:%Y%m}"
        child = month_partition(table, month)
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
                f"{table} {month:%Y-%m}: rows carry a {spec.month_column} other than {month:%Y-%m}; "
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
                self._ref(table), self._ref(stage), sql.Literal(month), sql.Literal(_next_month(month))
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
