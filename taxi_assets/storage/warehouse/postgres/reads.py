"""Reads: small query results through psycopg, streamed results through ADBC's Arrow reader.

A month read back (an IO manager handing a user's asset a month of a table) goes through ADBC's
PostgreSQL driver: the server sends COPY BINARY and the driver decodes it straight into Arrow
record batches, with no Python object per row and through a supported API.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import pyarrow as pa
from psycopg import sql

from taxi_assets.storage.warehouse.base import TableSpec, WarehouseError, as_spec
from taxi_assets.storage.warehouse.postgres.catalog import Catalog, month_partition

_STREAM_BATCH_ROWS = 64 * 1024


class Reads(Catalog):
    """Queries; mixed into PostgresWarehouse (which gives `connect` and `_conninfo`)."""

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

    def count(self, table: str | TableSpec, month: dt.date | None = None) -> int:
        """Rows of a table, or of one month of it.

        A month of a monthly table is a partition that holds exactly that month's rows (its bound),
        so it is counted without the month filter, which the server would check row by row in the
        heap: a partition with a btree index is then counted from the index alone (an index-only
        scan; a 2.8M-row month in 0.07-0.08 s against 0.23-0.27 s filtered).
        """
        spec = as_spec(table)
        if month is not None and not isinstance(month, dt.datetime) and month.day == 1:
            partition = month_partition(spec.name, month)
            with self.connect() as conn, conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                if self._partition_of(conn, partition, spec.name):
                    return conn.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(self._ref(partition))).fetchone()[0]
        return super().count(spec, month)

    def stream(self, sql_text: str) -> pa.RecordBatchReader:
        """A query's rows as Arrow record batches, in a read-only transaction (memory: a batch)."""
        import adbc_driver_postgresql.dbapi as adbc

        try:
            conn = adbc.connect(self._conninfo())
        except adbc.Error as exc:
            raise WarehouseError(f"cannot connect to the Postgres warehouse ({self.describe()}): {type(exc).__name__}") from None
        stack = contextlib.ExitStack()
        stack.callback(conn.close)
        cur = stack.enter_context(conn.cursor())
        try:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(sql_text)
            reader = cur.fetch_record_batch()
        except adbc.Error as exc:
            stack.close()
            raise WarehouseError(f"query on {self.describe()} failed: {str(exc).splitlines()[0]}") from None
        except BaseException:
            stack.close()
            raise

        def batches() -> Iterator[pa.RecordBatch]:
            with stack:
                yield from reader

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def table_exists(self, table: str) -> bool:
        self._validate(table)
        with self.connect() as conn:
            return self._relkind(conn, table) in ("r", "p", "v", "m", "f")

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
