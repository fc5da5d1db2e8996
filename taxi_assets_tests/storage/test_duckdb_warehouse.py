"""The embedded warehouse: a month is replaced atomically and idempotently, a killed load changes
nothing, and names are validated before any SQL is built from them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from taxi_assets.storage.warehouse import DuckDBWarehouse, TableSource
from taxi_assets.storage.warehouse.base import WarehouseError

JAN, FEB = dt.date(2024, 1, 1), dt.date(2024, 2, 1)


def month_rows(month: dt.date, trips: list[int], pickup: dt.datetime | None = None) -> TableSource:
    n = len(trips)
    return TableSource.from_table(
        pa.table(
            {
                "trip": pa.array(trips, pa.int64()),
                "pickup_datetime": pa.array([pickup or dt.datetime.combine(month, dt.time(12))] * n, pa.timestamp("us")),
                "fare": pa.array([12.35] * n, pa.float64()),
                "source_month": pa.array([month] * n, pa.date32()),
            }
        )
    )


def trips(wh: DuckDBWarehouse, month: dt.date) -> list[int]:
    return sorted(wh.read_month("t", month).column("trip").to_pylist())


def test_month_a_then_b_then_a_again(tmp_path):
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    # a pickup at exactly midnight of Feb 1st that the January file carried stays a January row
    wh.replace_month("t", JAN, month_rows(JAN, [1, 2, 3], pickup=dt.datetime(2024, 2, 1)))
    wh.replace_month("t", FEB, month_rows(FEB, [10, 11]))
    wh.replace_month("t", JAN, month_rows(JAN, [4, 5]))
    assert trips(wh, JAN) == [4, 5]
    assert trips(wh, FEB) == [10, 11]
    wh.replace_month("t", JAN, month_rows(JAN, [4, 5]))
    assert wh.count("t") == 4


def test_rows_of_another_month_are_refused_and_old_rows_kept(tmp_path):
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    wh.replace_month("t", JAN, month_rows(JAN, [1, 2]))
    with pytest.raises(WarehouseError, match="2024-01"):
        wh.replace_month("t", JAN, month_rows(FEB, [7]))
    assert trips(wh, JAN) == [1, 2]
    assert trips(wh, FEB) == []


def test_new_column_is_added_not_lost(tmp_path):
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    wh.replace_month("t", JAN, month_rows(JAN, [1]))
    wider = month_rows(FEB, [2]).open().read_all()
    wider = wider.append_column("cbd_congestion_fee", pa.array([0.75]))
    wh.replace_month("t", FEB, TableSource.from_table(wider))
    rows = wh.query('SELECT trip, cbd_congestion_fee FROM "ny_taxi"."t" ORDER BY trip').to_pylist()
    assert rows == [{"trip": 1, "cbd_congestion_fee": None}, {"trip": 2, "cbd_congestion_fee": 0.75}]


SLOW_LOAD = textwrap.dedent(
    """
    import datetime as dt, sys, time
    import pyarrow as pa
    from taxi_assets.storage.warehouse import DuckDBWarehouse, TableSource
    month = dt.date(2024, 1, 1)
    schema = pa.schema([("trip", pa.int64()), ("pickup_datetime", pa.timestamp("us")), ("fare", pa.float64()), ("source_month", pa.date32())])
    def batches():
        for i in range(100):
            yield pa.record_batch([pa.array([1000 + i], pa.int64()), pa.array([dt.datetime(2024, 1, 2)], pa.timestamp("us")),
                                   pa.array([1.0]), pa.array([month], pa.date32())], schema=schema)
            if i == 2:
                print("loading", flush=True)
            time.sleep(0.1)
    DuckDBWarehouse(path=sys.argv[1]).replace_month("t", month, TableSource.from_batches(schema, batches))
    """
)


def test_killed_load_leaves_previous_month_and_rerun_completes(tmp_path):
    path = str(tmp_path / "w.duckdb")
    wh = DuckDBWarehouse(path=path)
    wh.replace_month("t", JAN, month_rows(JAN, [1, 2, 3]))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_LOAD, path], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "loading"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert trips(wh, JAN) == [1, 2, 3]
    wh.replace_month("t", JAN, month_rows(JAN, [9]))
    assert trips(wh, JAN) == [9]


@pytest.mark.parametrize("name", ['x;DROP TABLE t', 'a"b', "", "1abc", "x" * 64, "t t"])
def test_bad_identifiers_are_refused_before_any_sql(tmp_path, name):
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    with pytest.raises(ValueError, match="invalid table"):
        wh.replace_month(name, JAN, month_rows(JAN, [1]))
    with pytest.raises(ValueError, match="invalid schema"):
        DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), schema_name=name or "-").count("t")
    assert not (tmp_path / "w.duckdb").exists()  # nothing was even opened


def test_a_load_that_takes_other_than_the_lakes_rows_is_refused_before_commit(tmp_path):
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    wh.replace_month("t", JAN, month_rows(JAN, [1, 2, 3]))
    short = month_rows(JAN, [7, 8])
    short.expected_rows = 3  # the lake's month has 3 rows; the stream gave 2
    with pytest.raises(WarehouseError, match="2 rows loaded but the lake's month has 3"):
        wh.replace_month("t", JAN, short)
    assert trips(wh, JAN) == [1, 2, 3]


def test_a_first_load_larger_than_one_row_group_keeps_every_row(tmp_path):
    """DuckDB 1.5.5 drops the row groups a transaction inserts into a table it created with
    CREATE TABLE AS from an empty Arrow table: 122,880 rows is one row group."""
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    n = 200_000
    assert wh.replace_month("t", JAN, month_rows(JAN, list(range(n)))) == n
    assert wh.count("t", JAN) == n



def _memory_limit(con) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def _as_duckdb_shows(limit: str) -> str:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limit}'")
    return _memory_limit(con)


def test_a_load_larger_than_the_memory_limit_spills_and_keeps_every_row(tmp_path):
    """DuckDB's own limit is 80 % of the machine (a 20M-row insert reached 1.5 GB); ours is set on
    every connection, and a load bigger than it spills to disk instead of failing."""
    import pyarrow.parquet as pq

    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), memory_limit="64MB")
    n = 2_000_000  # about 64 MB as Arrow: with the table's own copy, more than the limit
    rows = month_rows(JAN, list(range(n))).open().read_all()
    # the month as the lake holds it: day files in `pickup_date=` folders, whose name is no column of the table
    days = [tmp_path / f"pickup_date=2024-01-0{d}" / "part-0.parquet" for d in (1, 2)]
    for day, part in zip(days, (rows.slice(0, n // 2), rows.slice(n // 2))):
        day.parent.mkdir()
        pq.write_table(part, day)
    source = TableSource(schema=rows.schema, open=lambda: pytest.fail("the files are read by DuckDB"), local_parquet=days)
    assert wh.replace_month("t", JAN, source) == n
    total = wh.query(f"SELECT COUNT(*) AS n, SUM(trip) AS s FROM {wh.table_ref('t')}").to_pylist()[0]
    assert total == {"n": n, "s": n * (n - 1) // 2}
    with wh.connect(read_only=True) as con:
        assert _memory_limit(con) == _as_duckdb_shows("64MB")


def test_the_embedded_defaults_memory_limit_reaches_its_connections(tmp_path):
    from taxi_assets.defs.resources import DuckDBWarehouseResource

    default = DuckDBWarehouseResource(path=str(tmp_path / "a.duckdb")).backend
    configured = DuckDBWarehouseResource(path=str(tmp_path / "b.duckdb"), memory_limit="1GB").backend
    for wh, expected in ((default, "256MB"), (configured, "1GB")):
        with wh.connect() as con:
            assert _memory_limit(con) == _as_duckdb_shows(expected)
        with wh.connect(read_only=True) as con:
            assert _memory_limit(con) == _as_duckdb_shows(expected)
