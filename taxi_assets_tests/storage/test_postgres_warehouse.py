"""The Postgres warehouse against a real server: months replaced atomically and idempotently,
concurrent and killed loads, readers during a rewrite, types, names, reads, and the marts giving
the same figures as the embedded DuckDB warehouse."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal

import dagster as dg
import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from taxi_assets.defs.io_managers import WarehouseIOManager

from taxi_assets.storage.handles import WarehouseTable
from taxi_assets.tlc.marts import ZONES_TABLE, daily_zone_mart_sql, mart_table, trips_table
from taxi_assets.tlc.services import FHV, FHVHV, GREEN, SERVICES, SOURCE_MONTH, TS, YELLOW, Service
from taxi_assets.tlc.months import next_month
from taxi_assets.storage.warehouse import DuckDBWarehouse, TableSource
from taxi_assets.storage.warehouse.base import TableSpec, Warehouse, WarehouseError
from taxi_assets.defs.resources import PostgresWarehouseResource, postgres_resource
from taxi_assets.settings import Settings
from taxi_assets.storage.warehouse.postgres import PostgresWarehouse
from taxi_assets.tlc.zones import ZONES_SCHEMA

JAN, FEB, MAR = dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)
#: A month table with a time index (the BRIN a trips table gets), and the trips table's spec.
T = TableSpec("t", time_column="pickup_datetime")
ZONES = TableSpec(ZONES_TABLE, key_columns=("location_id",))
TRIPS = TableSpec("trips", time_column="pickup_datetime", index_columns=(("pickup_location_id", "dropoff_location_id"),))
SCHEMA = pa.schema([("trip", pa.int64()), ("pickup_datetime", TS), ("fare", pa.float64()), (SOURCE_MONTH, pa.date32())])


def month_rows(month: dt.date, trips: list[int], pickup: dt.datetime | None = None) -> TableSource:
    n = len(trips)
    return TableSource.from_table(
        pa.table(
            {
                "trip": pa.array(trips, pa.int64()),
                "pickup_datetime": pa.array([pickup or dt.datetime.combine(month, dt.time(12))] * n, TS),
                "fare": pa.array([12.35] * n, pa.float64()),
                SOURCE_MONTH: pa.array([month] * n, pa.date32()),
            },
            schema=SCHEMA,
        )
    )


def numbered(month: dt.date, start: int, n: int, batch_rows: int = 10_000, sleep: float = 0.0) -> TableSource:
    """n rows (trip = start..start+n-1) streamed in batches, optionally slowly."""

    def batches():
        for lo in range(start, start + n, batch_rows):
            hi = min(lo + batch_rows, start + n)
            k = hi - lo
            yield pa.record_batch(
                [
                    pa.array(np.arange(lo, hi, dtype=np.int64)),
                    pa.array(np.full(k, np.datetime64(month, "us") + np.timedelta64(3600 * 10**6, "us"))),
                    pa.array(np.full(k, 1.25)),
                    pa.array([month] * k, pa.date32()),
                ],
                schema=SCHEMA,
            )
            if sleep:
                time.sleep(sleep)

    return TableSource.from_batches(SCHEMA, batches)


@pytest.fixture
def wh(postgres_url: str, pg_schema: str) -> PostgresWarehouse:
    return PostgresWarehouse(url=postgres_url, schema_name=pg_schema)


def trips(wh: PostgresWarehouse, month: dt.date, table: str = "t") -> list[int]:
    return sorted(wh.read_month(table, month).column("trip").to_pylist())


def relations(url: str, schema: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s ORDER BY 1",
            [schema],
        ).fetchall()


# -- replacing months -------------------------------------------------------------------------
def test_month_a_then_b_then_a_again(wh, postgres_url, pg_schema):
    # Midnight of the 1st: a January-file row picked up at Feb 1st 00:00:00 stays a January row,
    # and the February file's own row at that instant is February's.
    midnight = dt.datetime(2024, 2, 1)
    assert wh.replace_month(T, JAN, month_rows(JAN, [1, 2, 3], pickup=midnight)) == 3
    assert wh.replace_month(T, FEB, month_rows(FEB, [10, 11], pickup=midnight)) == 2
    assert trips(wh, JAN) == [1, 2, 3]
    assert wh.replace_month(T, JAN, month_rows(JAN, [4, 5], pickup=midnight)) == 2
    assert trips(wh, JAN) == [4, 5]
    assert trips(wh, FEB) == [10, 11]
    wh.replace_month(T, JAN, month_rows(JAN, [4, 5], pickup=midnight))  # idempotent
    assert wh.count("t") == 4
    at_midnight = wh.query(
        f"SELECT {SOURCE_MONTH}, count(*) AS n FROM {wh.table_ref('t')} "
        f"WHERE pickup_datetime = TIMESTAMP '2024-02-01 00:00:00' GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    assert at_midnight == [{SOURCE_MONTH: JAN, "n": 2}, {SOURCE_MONTH: FEB, "n": 2}]
    # one partition per month, each with its indexes; no staging table left behind
    rels = dict(relations(postgres_url, pg_schema))
    assert rels["t"] == "p" and rels["t_p202401"] == "r" and rels["t_p202402"] == "r"
    assert rels["t_pickup_datetime_idx"] == "I" and rels["t_p202401_pickup_datetime_idx"] == "i"
    assert not [name for name in rels if "stage" in name]


def test_the_swap_attaches_without_scanning_the_new_month(wh, monkeypatch, caplog, postgres_url, pg_schema):
    """The month's CHECK (there before the COPY) and NOT NULL prove the partition bound: ATTACH, inside
    the lock, reads no rows, and nothing else scans the month to add the CHECK;
    and the new month comes with every index of the parent, even one a user added."""
    monkeypatch.setenv("PGOPTIONS", "-c client_min_messages=debug1")
    wh.replace_month(T, JAN, month_rows(JAN, [1]))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE INDEX t_fare_trip_idx ON {} (fare, trip DESC)").format(sql.Identifier(pg_schema, "t")))
    with caplog.at_level(logging.DEBUG, logger="taxi_assets.storage.warehouse.postgres"):
        wh.replace_month(T, JAN, month_rows(JAN, [2, 3]))
    messages = [r.getMessage() for r in caplog.records]
    assert any("is implied by existing constraints" in m for m in messages), messages
    # no scan at all: the CHECK is part of the staging table before the rows arrive, none by the ATTACH
    assert not any("verifying table" in m for m in messages), messages
    assert trips(wh, JAN) == [2, 3]
    with psycopg.connect(postgres_url) as conn:
        attached = conn.execute(
            "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 't_fare_trip_idx' AND p.relnamespace = %s::regnamespace",
            [pg_schema],
        ).fetchall()
    assert attached == [("t_p202401_fare_trip_idx", f"CREATE INDEX t_p202401_fare_trip_idx ON {pg_schema}.t_p202401 USING btree (fare, trip DESC)")]


def test_trips_get_a_time_index_and_one_zone_index_that_serves_either_zone(wh, postgres_url, pg_schema):
    """Indexes a user wants on trips: pickup time, and (pickup zone, dropoff zone) -- which a
    query on the dropoff zone alone can use too, so no second zone index is built per month.
    A misspelt index method is refused."""
    n = 20_000
    zones = np.arange(n) % 250 + 1
    rows = pa.table(
        {
            "pickup_datetime": pa.array((np.datetime64("2024-01-01T00:00") + np.arange(n).astype("timedelta64[m]")).astype("datetime64[us]"), TS),
            "pickup_location_id": pa.array(zones, pa.int32()),
            "dropoff_location_id": pa.array(zones[::-1].copy(), pa.int32()),
            SOURCE_MONTH: pa.array([JAN] * n, pa.date32()),
        }
    )
    wh.replace_month(TRIPS, JAN, TableSource.from_table(rows))
    rels = dict(relations(postgres_url, pg_schema))
    assert rels["trips_pickup_datetime_idx"] == "I" and rels["trips_p202401_pickup_datetime_idx"] == "i"  # (a BRIN)
    zone_index = "trips_pickup_location_id_dropoff_location_id_idx"
    assert rels[zone_index] == "I" and rels["trips_p202401_pickup_location_id_dropoff_location_id_idx"] == "i"
    assert {name for name in rels if "location" in name} == {zone_index, "trips_p202401_pickup_location_id_dropoff_location_id_idx"}
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET enable_seqscan = off")  # (20k rows: the planner would rather scan them all)
        for column in ("pickup_location_id", "dropoff_location_id"):
            plan = "\n".join(r[0] for r in conn.execute(
                sql.SQL("EXPLAIN SELECT count(*) FROM {} WHERE {} = 7").format(sql.Identifier(pg_schema, "trips"), sql.Identifier(column))
            ).fetchall())
            assert "trips_p202401_pickup_location_id_dropoff_location_id_idx" in plan, plan
    assert wh.query(f"SELECT count(*) AS n FROM {wh.table_ref('trips')} WHERE dropoff_location_id = 7").column("n")[0].as_py() == 80
    with pytest.raises(ValueError, match="invalid column"):
        TableSpec("trips", index_columns=(("pickup location",),))


def test_rows_of_another_month_are_refused_and_old_rows_kept(wh):
    wh.replace_month(T, JAN, month_rows(JAN, [1, 2]))
    with pytest.raises(WarehouseError, match="2024-01"):
        wh.replace_month(T, JAN, month_rows(FEB, [7]))
    assert trips(wh, JAN) == [1, 2]
    assert trips(wh, FEB) == []
    # the same check made by the server, for rows computed in the database
    with pytest.raises(WarehouseError, match="other than 2024-01"):
        wh.replace_month_from_query("t", JAN, f"SELECT trip, pickup_datetime, fare, DATE '2024-02-01' AS {SOURCE_MONTH} FROM {wh.table_ref('t')}")
    assert trips(wh, JAN) == [1, 2]


def test_a_new_column_is_added_not_lost(wh):
    wh.replace_month(T, JAN, month_rows(JAN, [1]))
    wider = month_rows(FEB, [2]).open().read_all().append_column("cbd_congestion_fee", pa.array([0.75]))
    wh.replace_month(T, FEB, TableSource.from_table(wider))
    rows = wh.query(f"SELECT trip, cbd_congestion_fee FROM {wh.table_ref('t')} ORDER BY trip").to_pylist()
    assert rows == [{"trip": 1, "cbd_congestion_fee": None}, {"trip": 2, "cbd_congestion_fee": 0.75}]
    assert wh.read_month("t", JAN).column("cbd_congestion_fee").to_pylist() == [None]


def test_two_months_load_concurrently_into_a_new_table(wh):
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def load(month: dt.date, start: int) -> None:
        try:
            barrier.wait()
            wh.replace_month(T, month, numbered(month, start, 60_000))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(JAN, 0)), threading.Thread(target=load, args=(FEB, 1_000_000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert wh.count("t", JAN) == 60_000 and wh.count("t", FEB) == 60_000
    got = wh.query(f"SELECT {SOURCE_MONTH}, min(trip) AS lo, max(trip) AS hi FROM {wh.table_ref('t')} GROUP BY 1 ORDER BY 1").to_pylist()
    assert got == [{SOURCE_MONTH: JAN, "lo": 0, "hi": 59_999}, {SOURCE_MONTH: FEB, "lo": 1_000_000, "hi": 1_059_999}]


def test_two_loads_of_one_month_take_turns_and_one_wins_whole(wh):
    wh.replace_month(T, JAN, month_rows(JAN, [1]))
    errors: list[BaseException] = []

    def load(start: int, n: int) -> None:
        try:
            wh.replace_month(T, JAN, numbered(JAN, start, n, batch_rows=5_000, sleep=0.01))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(0, 30_000)), threading.Thread(target=load, args=(100_000, 20_000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    got = trips(wh, JAN)
    assert got in (list(range(0, 30_000)), list(range(100_000, 120_000)))


KILLED_LOAD = textwrap.dedent(
    """
    import datetime as dt, sys, time
    import numpy as np, pyarrow as pa
    from taxi_assets.storage.warehouse.base import TableSource
    from taxi_assets.storage.warehouse.postgres import PostgresWarehouse
    month = dt.date(2024, 1, 1)
    schema = pa.schema([("trip", pa.int64()), ("pickup_datetime", pa.timestamp("us")), ("fare", pa.float64()), ("source_month", pa.date32())])
    def batches():
        for i in range(10_000):  # far more than the test waits for: it is killed half-way
            k = 2_000
            yield pa.record_batch([pa.array(np.arange(1_000_000 + i * k, 1_000_000 + (i + 1) * k)),
                                   pa.array(np.full(k, np.datetime64("2024-01-02", "us"))), pa.array(np.full(k, 1.0)),
                                   pa.array([month] * k, pa.date32())], schema=schema)
            time.sleep(0.05)
    wh = PostgresWarehouse(url=sys.argv[1], schema_name=sys.argv[2], application_name=sys.argv[3], copy_chunk_rows=1_000)
    wh.replace_month("t", month, TableSource.from_batches(schema, batches))
    """
)


def test_a_load_killed_mid_copy_leaves_the_previous_month_and_a_rerun_completes(wh, postgres_url, pg_schema):
    wh.replace_month(T, JAN, month_rows(JAN, [1, 2, 3]))
    wh.replace_month(T, FEB, month_rows(FEB, [20]))
    app = f"taxi_kill_{pg_schema}"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_LOAD, postgres_url, pg_schema, app])
    try:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            copied = 0
            while copied < 20_000:  # the COPY is under way: the server has taken rows of it
                assert proc.poll() is None, "the load ended before it could be killed"
                assert time.monotonic() < deadline, "the load never got going"
                row = conn.execute(
                    "SELECT p.tuples_processed FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid) "
                    "WHERE a.application_name = %s",
                    [app],
                ).fetchone()
                copied = row[0] if row else 0
                time.sleep(0.02)
            # meanwhile readers still see the old month, whole
            assert trips(wh, JAN) == [1, 2, 3]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            # the server notices the dropped connection and rolls the load back
            while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app]).fetchone()[0]:
                assert time.monotonic() < deadline + 30
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert trips(wh, JAN) == [1, 2, 3]
    assert trips(wh, FEB) == [20]
    assert not [name for name, _ in relations(postgres_url, pg_schema) if "stage" in name]
    wh.replace_month(T, JAN, numbered(JAN, 500, 5_000))  # the month's lock was released with the connection
    assert trips(wh, JAN) == list(range(500, 5_500))
    assert trips(wh, FEB) == [20]


def test_a_reader_polling_during_rewrites_never_sees_an_empty_or_partial_month(wh, postgres_url, pg_schema):
    old_n, new_n = 40_000, 55_000
    wh.replace_month(T, JAN, numbered(JAN, 0, old_n))
    wh.replace_month(T, FEB, numbered(FEB, 0, 7))
    stop = threading.Event()
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                q = sql.SQL("SELECT count(*), coalesce(sum(trip), 0) FROM {} WHERE source_month = %s").format(sql.Identifier(pg_schema, "t"))
                while not stop.is_set():
                    seen.append(tuple(conn.execute(q, [JAN]).fetchone()))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        time.sleep(0.2)
        for _ in range(2):
            wh.replace_month(T, JAN, numbered(JAN, 0, new_n, batch_rows=5_000, sleep=0.02))
            wh.replace_month(T, JAN, numbered(JAN, 0, old_n, batch_rows=5_000, sleep=0.02))
        time.sleep(0.2)
    finally:
        stop.set()
        reader.join(30)
    assert not errors, errors
    whole = {(old_n, old_n * (old_n - 1) // 2), (new_n, new_n * (new_n - 1) // 2)}
    assert len(seen) > 50
    assert set(seen) == whole, f"unexpected states: {set(seen) - whole}"
    assert wh.count("t", FEB) == 7


# -- types ------------------------------------------------------------------------------------
def test_types_round_trip_with_nulls_timestamps_money_and_odd_strings(wh, postgres_url, pg_schema):
    strings = ['say "hi"', "tab\there", "new\nline", "cr\r\nlf", "back\\slash", "comma,semi;", "", "ünïcødé ✓ 出租车", "'; DROP TABLE t; --", None]
    n = len(strings)
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int32()),
            "vendor_id": pa.array([-(2**31), 2**31 - 1, 0, 1, 2, 6, 7, None, 3, 4], pa.int32()),
            "trip_time": pa.array([2**62, -(2**62), 0, 1, 2**40, None, 3, 4, 5, 6], pa.int64()),
            "code": pa.array([-(2**15), 2**15 - 1, None, 0, 1, 2, 3, 4, 5, 6], pa.int16()),
            "fare_amount": pa.array([12.35, -7.5, 0.01, -0.01, 99_999_999.99, 0.1 + 0.2, None, 2.5, 1e-7, 3.0]),
            "trip_distance": pa.array([float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.5, None, 2.0, 3.0, 4.0]),
            "pickup_datetime": pa.array(
                [
                    dt.datetime(2024, 1, 31, 23, 59, 59, 999_999),
                    dt.datetime(2024, 2, 1),
                    dt.datetime(1969, 12, 31, 23, 59, 59, 1),
                    dt.datetime(1999, 12, 31, 23, 59, 59, 999_999),
                    dt.datetime(2088, 7, 4, 1, 2, 3, 456_789),
                    dt.datetime(2009, 1, 1),
                    None,
                    dt.datetime(2024, 1, 1, 0, 0, 0, 1),
                    dt.datetime(2000, 1, 1),
                    dt.datetime(2024, 1, 15, 12, 30),
                ],
                TS,
            ),
            "request_datetime": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)] * (n - 1) + [None], pa.timestamp("us", tz="UTC")),
            "shared_flag": pa.array([True, False, None] + [True] * (n - 3)),
            "store_and_fwd_flag": pa.array(strings, pa.string()),
            "airport_fee": pa.nulls(n, pa.float64()),
            SOURCE_MONTH: pa.array([JAN] * n, pa.date32()),
        }
    )
    wh.replace_month("types", JAN, TableSource.from_table(table))
    back = wh.read_month("types", JAN).sort_by("id")
    assert back.schema.equals(table.schema), back.schema
    for name in table.column_names:
        want, got = table.column(name).to_pylist(), back.column(name).to_pylist()
        if name == "trip_distance":
            assert math.isnan(got[0]) and got[1:6] == want[1:6] and math.copysign(1, got[4]) == -1.0 and got[6:] == want[6:]
        else:
            assert got == want, name
    # money is double precision: cents compare and add up exactly as written
    assert wh.query(f"SELECT id FROM {wh.table_ref('types')} WHERE fare_amount = 12.35").to_pylist() == [{"id": 0}]
    total = wh.query(f"SELECT round(sum(fare_amount) FILTER (WHERE id IN (0, 1, 2, 3))::numeric, 2) AS s FROM {wh.table_ref('types')}")
    assert total.column("s")[0].as_py() == Decimal("4.85")
    with psycopg.connect(postgres_url) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = 'types'",
                [pg_schema],
            ).fetchall()
        )
    assert types == {
        "id": "integer",
        "vendor_id": "integer",
        "trip_time": "bigint",
        "code": "smallint",
        "fare_amount": "double precision",
        "trip_distance": "double precision",
        "pickup_datetime": "timestamp without time zone",
        "request_datetime": "timestamp with time zone",
        "shared_flag": "boolean",
        "store_and_fwd_flag": "text",
        "airport_fee": "double precision",
        SOURCE_MONTH: "date",
    }


def test_canonical_trip_tables_keep_their_schema(wh):
    for service in SERVICES.values():
        table = synthetic_month(service, JAN, 300, seed=5)
        wh.replace_month(trips_table(service), JAN, TableSource.from_table(table))
        back = wh.read_month(trips_table(service), JAN)
        assert back.schema.equals(service.schema), service.name
        key = [(c, "ascending") for c in service.schema.names]
        assert back.sort_by(key).equals(table.sort_by(key)), service.name


# -- names --------------------------------------------------------------------------------------
BAD_NAMES = ["x;DROP TABLE t", 'a"b', "", "1abc", "x" * 64, "t t", "ü"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_identifiers_are_refused_before_any_statement(name, postgres_url, pg_schema):
    # A warehouse that cannot even connect: any statement attempted would fail with a connection
    # error instead of the ValueError expected.
    nowhere = PostgresWarehouse(url="postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", schema_name=pg_schema)
    with pytest.raises(ValueError, match="invalid table"):
        nowhere.replace_month(name, JAN, month_rows(JAN, [1]))
    with pytest.raises(ValueError, match="invalid table"):
        nowhere.replace_table(name, month_rows(JAN, [1]))
    with pytest.raises(ValueError, match="invalid table"):
        nowhere.replace_month_from_query(name, JAN, "SELECT 1")
    with pytest.raises(ValueError, match="invalid table"):
        nowhere.read_month(name, JAN)
    with pytest.raises(ValueError, match="invalid table"):
        nowhere.table_exists(name)
    with pytest.raises(ValueError, match="invalid schema"):
        PostgresWarehouse(url=postgres_url, schema_name=name).replace_month("t", JAN, month_rows(JAN, [1]))
    bad_column = pa.table({name or "-": [1], SOURCE_MONTH: pa.array([JAN], pa.date32())})
    with pytest.raises(ValueError, match="invalid column"):
        PostgresWarehouse(url=postgres_url, schema_name=pg_schema).replace_month("t", JAN, TableSource.from_table(bad_column))
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [pg_schema]).fetchone()[0] == 0


def test_long_table_names_get_partitions_within_postgres_limit(wh, postgres_url, pg_schema):
    name = "a" * 63
    wh.replace_month(name, JAN, month_rows(JAN, [1]))
    wh.replace_month(name, JAN, month_rows(JAN, [2]))
    assert trips(wh, JAN, name) == [2]
    assert all(len(rel) <= 63 for rel, _ in relations(postgres_url, pg_schema))


# -- reads and small tables ------------------------------------------------------------------------
def test_read_month_and_read_months(wh):
    for i, month in enumerate((JAN, FEB, MAR)):
        wh.replace_month(T, month, numbered(month, i * 100_000, 1_000 * (i + 1)))
    assert trips(wh, FEB) == list(range(100_000, 102_000))
    reader = wh.read_months("t", [JAN, FEB])
    assert isinstance(reader, pa.RecordBatchReader)
    both = reader.read_all()
    assert both.num_rows == 3_000
    assert sorted(set(both.column(SOURCE_MONTH).to_pylist())) == [JAN, FEB]
    assert wh.read_months("t", [MAR]).read_all().num_rows == 3_000
    assert wh.read_month("t", dt.date(2023, 12, 1)).num_rows == 0
    with pytest.raises(WarehouseError, match="does not exist"):
        wh.read_month("missing", JAN)
    with pytest.raises(ValueError, match="first day"):
        wh.read_month("t", dt.date(2024, 1, 2))


def test_a_month_is_counted_from_its_own_partition(wh, monkeypatch):
    long_name = "b" * 63
    for i, month in enumerate((JAN, FEB)):
        wh.replace_month(T, month, numbered(month, i * 100_000, 1_000 * (i + 1)))
    wh.replace_month(long_name, JAN, month_rows(JAN, [1, 2]))
    wh.replace_table("plain", month_rows(JAN, [1, 2, 3]))
    # A month of a monthly table: its partition counted whole, never the table scanned for the month.
    monkeypatch.setattr(Warehouse, "count", lambda *args: pytest.fail(f"counted through the month filter: {args[1:]}"))
    assert wh.count("t", JAN) == 1_000 and wh.count(T, FEB) == 2_000 and wh.count(long_name, JAN) == 2
    assert WarehouseTable(wh, T, (FEB,)).count() == 2_000  # what the matches_lake check asks
    wh.replace_month(T, JAN, month_rows(JAN, [7]))
    assert wh.count("t", JAN) == 1  # the re-published month's partition
    monkeypatch.undo()
    # A month with no partition, a table without months, several months: the filtered count.
    assert wh.count("t", MAR) == 0
    assert wh.count("plain", JAN) == 3 and wh.count("plain", FEB) == 0
    assert wh.count("t") == 2_001 and WarehouseTable(wh, T, (JAN, FEB)).count() == 2_001
    with pytest.raises(psycopg.errors.UndefinedTable, match="does not exist"):
        wh.count("missing", JAN)


def test_a_downstream_reader_streams_a_large_month_in_batches(wh):
    wh.replace_month(T, JAN, numbered(JAN, 0, 400_000, batch_rows=50_000))
    batches = list(wh.read_months("t", [JAN]))
    assert len(batches) > 1
    assert sum(b.num_rows for b in batches) == 400_000


def zones(rows: list[tuple[int, str, str, str]]) -> TableSource:
    return TableSource.from_table(pa.table(list(zip(*rows)), schema=ZONES_SCHEMA))


def test_zones_are_replaced_whole_with_a_primary_key(wh, postgres_url, pg_schema):
    assert wh.replace_table(ZONES, zones([(1, "EWR", "Newark Airport", "EWR"), (2, "Queens", "Jamaica Bay", "Boro Zone")])) == 2
    assert wh.replace_table(ZONES, zones([(1, "EWR", "Newark Airport", "EWR"), (265, "N/A", "NA", "N/A")])) == 2
    rows = wh.query(f"SELECT * FROM {wh.table_ref(ZONES_TABLE)} ORDER BY location_id").to_pylist()
    assert rows == [
        {"location_id": 1, "borough": "EWR", "zone": "Newark Airport", "service_zone": "EWR"},
        {"location_id": 265, "borough": "N/A", "zone": "NA", "service_zone": "N/A"},
    ]
    with pytest.raises(WarehouseError, match="repeated location_id"):
        wh.replace_table(ZONES, zones([(3, "a", "b", "c"), (3, "d", "e", "f")]))
    assert wh.count(ZONES_TABLE) == 2
    rels = dict(relations(postgres_url, pg_schema))
    assert rels == {ZONES_TABLE: "r", f"{ZONES_TABLE}_pkey": "i"}
    assert wh.table_exists(ZONES_TABLE) and not wh.table_exists("nothing_here")


def test_a_month_table_and_a_whole_table_are_not_confused(wh):
    wh.replace_month(T, JAN, month_rows(JAN, [1]))
    with pytest.raises(WarehouseError, match="partitioned by month"):
        wh.replace_table("t", month_rows(JAN, [2]))
    wh.replace_table("plain", month_rows(JAN, [1]))
    with pytest.raises(WarehouseError, match="not partitioned"):
        wh.replace_month("plain", JAN, month_rows(JAN, [2]))
    assert trips(wh, JAN) == [1]


# -- connection settings and secrets --------------------------------------------------------------
def test_settings_read_the_connection_through_env_vars_and_describe_hides_the_password(monkeypatch, postgres_url, pg_schema):
    info = psycopg.conninfo.conninfo_to_dict(postgres_url)
    for var in ("TAXI_POSTGRES_URL", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="TAXI_POSTGRES_URL"):
        Settings.from_env({"TAXI_WAREHOUSE": "postgres"})
    secret = "s3cret-Pw-never-shown"
    monkeypatch.setenv("POSTGRES_HOST", info.get("host", "127.0.0.1"))
    monkeypatch.setenv("POSTGRES_PORT", info.get("port", "5432"))
    monkeypatch.setenv("POSTGRES_DB", info.get("dbname", "postgres"))
    monkeypatch.setenv("POSTGRES_USER", info.get("user", "postgres"))
    monkeypatch.setenv("POSTGRES_PASSWORD", info.get("password") or secret)
    postgres = postgres_resource(Settings.from_env({**os.environ, "TAXI_WAREHOUSE": "postgres"}))
    assert isinstance(postgres.password, dg.EnvVar) and postgres.password.env_var_name == "POSTGRES_PASSWORD"
    assert isinstance(postgres.host, dg.EnvVar) and postgres.url is None
    wh = PostgresWarehouseResource(postgres=postgres, schema_name=pg_schema).backend
    wh.replace_month(T, JAN, month_rows(JAN, [1, 2]))
    assert trips(wh, JAN) == [1, 2]
    shown = wh.describe()
    assert info.get("port", "5432") in shown and pg_schema in shown
    password = os.environ["POSTGRES_PASSWORD"]
    assert password not in shown and password not in repr(wh) and password not in repr(postgres)
    url_wh = PostgresWarehouse(url=f"postgresql://someone:{secret}@db.example:6543/ny_taxi")
    assert secret not in url_wh.describe() and "db.example:6543/ny_taxi" in url_wh.describe() and secret not in repr(url_wh)
    monkeypatch.setenv("TAXI_POSTGRES_URL", f"postgresql://someone:{secret}@db.example:6543/ny_taxi")
    assert isinstance(postgres_resource(Settings.from_env({**os.environ, "TAXI_WAREHOUSE": "postgres"})).url, dg.EnvVar)


def test_dagster_assets_write_and_read_through_the_io_manager_without_showing_secrets(monkeypatch, postgres_url, pg_schema):
    """A partitioned asset lands in Postgres, a downstream asset reads its month back; the password
    (sent by the client, ignored by the trust-auth test server) shows up in no event or config."""
    secret = "s3cret-Pw-in-env-only"
    info = psycopg.conninfo.conninfo_to_dict(postgres_url)
    monkeypatch.setenv("TAXI_POSTGRES_URL", psycopg.conninfo.make_conninfo(postgres_url, password=info.get("password") or secret))
    for var in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    postgres = postgres_resource(Settings.from_env({**os.environ, "TAXI_WAREHOUSE": "postgres"}))
    warehouse = PostgresWarehouseResource(postgres=postgres, schema_name=pg_schema)
    months = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", end_offset=0)

    @dg.asset(partitions_def=months, io_manager_key="warehouse_io_manager", metadata={"table": "trips"})
    def trips_asset(context) -> pa.Table:
        month = dt.date.fromisoformat(context.partition_key)
        return month_rows(month, [1, 2, 3] if month == JAN else [4]).open().read_all()

    @dg.asset(partitions_def=months, io_manager_key="warehouse_io_manager", metadata={"table": "trip_counts"})
    def counts(trips_asset: WarehouseTable) -> pa.Table:
        rows = trips_asset.read()
        (month,) = trips_asset.months
        return pa.table({"trips": pa.array([rows.num_rows], pa.int64()), SOURCE_MONTH: pa.array([month], pa.date32())})

    resources = {"warehouse_io_manager": WarehouseIOManager(warehouse=warehouse)}
    with dg.instance_for_test() as instance:
        result = dg.materialize([trips_asset, counts], partition_key="2024-02-01", resources=resources, instance=instance)
        assert result.success
        everything = []
        for run in instance.get_runs():
            everything.append(str(run.run_config))
            everything += [str(entry) for entry in instance.all_logs(run.run_id)]
    backend = warehouse.backend
    assert trips(backend, FEB, "trips") == [4]
    assert backend.query(f"SELECT {SOURCE_MONTH}, trips FROM {backend.table_ref('trip_counts')}").to_pylist() == [
        {SOURCE_MONTH: FEB, "trips": 1},
    ]
    assert any(f"schema {pg_schema}" in e for e in everything)  # the 'warehouse' metadata is there
    password = psycopg.conninfo.conninfo_to_dict(os.environ["TAXI_POSTGRES_URL"])["password"]
    assert not any(password in e for e in everything)


# -- the marts: the same figures as the embedded warehouse ------------------------------------------
def synthetic_month(service: Service, month: dt.date, rows: int, seed: int = 0) -> pa.Table:
    """Rows in a service's canonical schema: zones 1-14 plus unknown ones, microsecond timestamps,
    cent amounts, NULLs in every nullable column, and pickups exactly at midnight of the 1st."""
    rng = np.random.default_rng(seed)
    start = np.datetime64(month, "us").astype(np.int64)
    end = np.datetime64(next_month(month), "us").astype(np.int64)
    pickup = rng.integers(start, end, rows)
    pickup[: rows // 50] = start  # midnight of the 1st
    pickup[rows // 50 : rows // 25] = end  # midnight of the next 1st, still this file's month
    duration = rng.integers(0, 7200 * 10**6, rows)
    duration[:10] = [0, 1, 999_999, 10**6, 10**6 + 1, 60 * 10**6 - 1, 90 * 10**6, 7, 5 * 10**5, 3 * 10**5]
    columns = {}
    for f in service.schema:
        nulls = rng.random(rows) < 0.05
        if f.name == SOURCE_MONTH:
            columns[f.name] = pa.array([month] * rows, pa.date32())
        elif f.name == "pickup_datetime":
            columns[f.name] = pa.array(pickup, TS)
        elif f.name == "dropoff_datetime":
            columns[f.name] = pa.array(pickup + duration, TS, mask=nulls if service.dropoff_nullable else None)
        elif f.name.endswith("location_id"):
            ids = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 264, 265, 999], rows)
            columns[f.name] = pa.array(ids.astype(np.int32), mask=nulls if service.locations_nullable else None)
        elif pa.types.is_timestamp(f.type):
            columns[f.name] = pa.array(pickup - rng.integers(0, 600 * 10**6, rows), TS, mask=nulls)
        elif pa.types.is_float64(f.type):
            cents = rng.integers(-500, 20_000, rows)
            columns[f.name] = pa.array(cents / 100.0, mask=nulls)
        elif pa.types.is_int64(f.type):
            columns[f.name] = pa.array(rng.integers(0, 10_000, rows), mask=nulls)
        elif pa.types.is_int32(f.type):
            columns[f.name] = pa.array(rng.integers(0, 7, rows).astype(np.int32), mask=nulls)
        else:
            columns[f.name] = pa.array(rng.choice(["N", "Y", "B02510", "HV0003", ""], rows), mask=nulls)
    return pa.table(columns, schema=service.schema)


ZONE_ROWS = [
    (i, ["Manhattan", "Queens", "Brooklyn", "Bronx", "EWR"][i % 5], f"Zone {i} \"quoted\", ünïcode", "Yellow Zone") for i in range(1, 15)
] + [(264, "Unknown", "N/A", "N/A"), (265, "N/A", "NA", "N/A")]


def normalised(table: pa.Table) -> list[dict]:
    out = []
    for row in table.to_pylist():
        clean = {}
        for k, v in row.items():
            if isinstance(v, Decimal):
                v = int(v) if v == v.to_integral_value() else float(v)
            clean[k] = v
        out.append(clean)
    return sorted(out, key=lambda r: (r["pickup_date"], r["pickup_location_id"] is None, r["pickup_location_id"] or 0))


def test_cents_round_alike_in_duckdb_and_postgres(wh, tmp_path):
    # Halves whose double lies just below them (89.475 is 89.47499...), an exact binary half
    # (0.125), negatives, and values far from a half: each engine's own ROUND disagrees on some.
    values = [89.475, 2.675, 1.005, 0.145, 0.125, -0.145, -2.675, 0.0, 12.344999, 5368.5 / 60.0, 1e9 + 0.005]
    expected = [math.copysign(math.floor(abs(v) * 100 + 0.5) / 100, v) for v in values]
    literal = ", ".join(f"({i}, CAST({v!r} AS DOUBLE PRECISION))" for i, v in enumerate(values))
    duck = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    for warehouse in (duck, wh):
        query = f"SELECT i, {warehouse.dialect.round2('x')} AS r FROM (VALUES {literal}) AS v(i, x) ORDER BY i"
        assert warehouse.query(query).column("r").to_pylist() == expected, warehouse.describe()
    assert expected[:3] == [89.48, 2.68, 1.0]


@pytest.mark.parametrize("service", [YELLOW, GREEN, FHV, FHVHV], ids=lambda s: s.name)
def test_marts_give_the_same_figures_as_duckdb(service, wh, tmp_path):
    duck = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), schema_name=wh.schema_name)
    for month in (JAN, FEB):
        rows = synthetic_month(service, month, 3_000, seed=month.month)
        for warehouse in (duck, wh):
            warehouse.replace_month(trips_table(service), month, TableSource.from_table(rows))
    for warehouse in (duck, wh):
        warehouse.replace_table(ZONES_TABLE, zones(ZONE_ROWS))
        for month in (JAN, FEB, JAN):
            warehouse.replace_month_from_query(mart_table(service), month, daily_zone_mart_sql(service, warehouse, month))
    for month in (JAN, FEB):
        assert duck.count(trips_table(service), month) == wh.count(trips_table(service), month) == 3_000
        ours, theirs = normalised(wh.read_month(mart_table(service), month)), normalised(duck.read_month(mart_table(service), month))
        assert len(ours) == len(theirs) > 100
        assert sum(r["trips"] for r in ours) == 3_000
        for table in (wh.read_month(mart_table(service), month), duck.read_month(mart_table(service), month)):
            assert table.schema.field("trips").type == table.schema.field("passengers").type == pa.int64()
        for a, b in zip(ours, theirs):
            assert a == b
    # the mart table is partitioned like the trips (and replaced the same way)
    assert wh.count(mart_table(service)) == duck.count(mart_table(service))


# -- the bar: the whole pipeline on Postgres gives what it gives on the embedded default -----------
def test_the_pipeline_on_postgres_matches_the_embedded_default(tmp_path, mirror, monkeypatch, postgres_url, pg_schema):
    from taxi_assets_tests.conftest import make_pipeline

    secret = "s3cret-Pw-of-the-pipeline"
    info = psycopg.conninfo.conninfo_to_dict(postgres_url)
    monkeypatch.setenv("TAXI_POSTGRES_URL", psycopg.conninfo.make_conninfo(postgres_url, password=info.get("password") or secret))
    for var in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    month = "2023-01"
    results = {}
    shown: list[str] = []
    for backend in ("duckdb", "postgres"):
        with dg.instance_for_test() as instance:
            pipeline = make_pipeline(tmp_path / backend, mirror, instance, TAXI_WAREHOUSE=backend, TAXI_WAREHOUSE_SCHEMA=pg_schema)
            assert pipeline.run("zones").success
            assert pipeline.run("yellow", month).success
            wh = pipeline.warehouse
            start = JAN.replace(year=2023)
            results[backend] = {
                "trips": wh.count("yellow_trips", start),
                "zones": wh.count(ZONES_TABLE),
                "rejects": sorted((r["rule"], r["rows"]) for r in wh.read_month("yellow_rejects_summary", start).to_pylist()),
                "mart": normalised(wh.read_month(mart_table(YELLOW), start)),
            }
            for run in instance.get_runs():
                shown.append(str(run.run_config))
                shown += [str(entry) for entry in instance.all_logs(run.run_id)]
    assert isinstance(pipeline.warehouse, PostgresWarehouse)
    assert results["postgres"]["trips"] > 1_000 and results["postgres"]["zones"] == 265
    # The month lies on disk in pickup order (loaded from the lake's days, each sorted), which is
    # what makes its BRIN time index worth having.
    with psycopg.connect(postgres_url) as conn:
        child = sql.Identifier(pg_schema, "yellow_trips_p202301")
        on_disk = [r[0] for r in conn.execute(sql.SQL("SELECT pickup_datetime FROM {} ORDER BY ctid").format(child))]
        method = conn.execute(
            "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.relname = 'yellow_trips_p202301_pickup_datetime_idx' "
            "AND c.relnamespace = %s::regnamespace", [pg_schema]
        ).fetchone()
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(sql.SQL(
            "EXPLAIN SELECT count(*) FROM {} WHERE pickup_datetime BETWEEN '2023-01-10' AND '2023-01-11'").format(child)))
    assert len(on_disk) == results["postgres"]["trips"] and on_disk == sorted(on_disk)
    assert method == ("brin",) and "yellow_trips_p202301_pickup_datetime_idx" in plan, plan
    assert results["postgres"] == results["duckdb"]
    assert any("PostgreSQL" in line for line in shown)  # the table's metadata names the warehouse
    password = psycopg.conninfo.conninfo_to_dict(os.environ["TAXI_POSTGRES_URL"])["password"]
    assert not any(password in line for line in shown)
