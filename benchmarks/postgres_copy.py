"""Loading a yellow month into Postgres: our binary COPY against the zoomcamp's pandas `to_sql`.

    .venv/bin/python -m benchmarks.postgres_copy                   # 3M rows, both ways
    .venv/bin/python -m benchmarks.postgres_copy --to-sql-rows 300000   # to_sql on the first 300k only

The same rows (the canonical yellow schema, realistic NULL patterns, written once to a parquet file)
are loaded
  * by `PostgresWarehouse.replace_month`: streamed record batches -> binary COPY into a new
    partition -> CHECK, indexes, ANALYZE -> atomic swap (reported whole, and without indexes);
  * by the zoomcamp's way: pandas chunks of 100,000 rows, `to_sql(if_exists="append")` through
    SQLAlchemy and psycopg2 into a plain table.
It prints rows/s for each and the ratio. With no `--url` (or TAXI_TEST_POSTGRES_URL) it starts a
throwaway server with the tests' helper, with PostgreSQL's default (durable) settings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from taxi_assets.defs.tables import trips_spec
from taxi_assets.storage.warehouse.base import TableSource
from taxi_assets.storage.warehouse.pg_copy import BinaryCopyEncoder, pg_type_for
from taxi_assets.storage.warehouse.postgres import PostgresWarehouse
from taxi_assets.tlc.months import next_month
from taxi_assets.tlc.services import SOURCE_MONTH, YELLOW

MONTH = dt.date(2024, 1, 1)
BATCH_ROWS = 256 * 1024
TO_SQL_CHUNK = 100_000


def synthetic_yellow(rows: int, month: dt.date = MONTH, seed: int = 0, batch_rows: int = BATCH_ROWS):
    """Batches of yellow trips in the canonical schema, shaped like a 2024 month.

    NULLs come the way the TLC's do: vendor, passenger count, rate code, store-and-forward flag and
    payment type together on a few percent of rows, congestion and airport fees on those rows too,
    and cbd_congestion_fee (2025+) NULL throughout.
    """
    rng = np.random.default_rng(seed)
    start = np.datetime64(month, "us").astype(np.int64)
    span = np.datetime64(next_month(month), "us").astype(np.int64) - start
    for lo in range(0, rows, batch_rows):
        n = min(batch_rows, rows - lo)
        pickup = start + rng.integers(0, span, n) // 10**6 * 10**6
        dropoff = pickup + rng.integers(60, 3600, n) * 10**6
        group = rng.random(n) < 0.05

        def ints(low: int, high: int, mask=None) -> pa.Array:
            return pa.array(rng.integers(low, high, n).astype(np.int32), mask=mask)

        def money(scale: float, mask=None) -> pa.Array:
            return pa.array(np.round(rng.gamma(2.0, scale, n), 2), mask=mask)

        columns = {
            "vendor_id": ints(1, 3, group),
            "pickup_datetime": pa.array(pickup, pa.timestamp("us")),
            "dropoff_datetime": pa.array(dropoff, pa.timestamp("us")),
            "passenger_count": ints(0, 7, group),
            "trip_distance": pa.array(np.round(rng.gamma(2.0, 1.5, n), 2)),
            "ratecode_id": ints(1, 7, group),
            "store_and_fwd_flag": pa.array(np.where(rng.random(n) < 0.01, "Y", "N"), mask=group),
            "pickup_location_id": ints(1, 266),
            "dropoff_location_id": ints(1, 266),
            "payment_type": ints(1, 5, group),
            "fare_amount": money(8.0),
            "extra": money(1.0),
            "mta_tax": money(0.3),
            "tip_amount": money(2.0),
            "tolls_amount": money(0.5),
            "improvement_surcharge": money(0.5),
            "total_amount": money(12.0),
            "congestion_surcharge": money(1.0, group),
            "airport_fee": money(0.5, group),
            "cbd_congestion_fee": pa.nulls(n, pa.float64()),
            SOURCE_MONTH: pa.array(np.full(n, month.toordinal() - dt.date(1970, 1, 1).toordinal(), np.int32), pa.date32()),
        }
        yield pa.record_batch(list(columns.values()), schema=YELLOW.schema)


def write_parquet(path: Path, rows: int, seed: int) -> None:
    with pq.ParquetWriter(path, YELLOW.schema) as writer:
        for batch in synthetic_yellow(rows, seed=seed):
            writer.write_batch(batch)


def parquet_source(path: Path) -> TableSource:
    return TableSource.from_batches(YELLOW.schema, lambda: pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS))


def rate(rows: int, seconds: float) -> str:
    return f"{rows:>10,} rows {seconds:8.2f} s {rows / seconds:>12,.0f} rows/s"


class CpuMeter:
    """CPU seconds spent by this process and, for a local server, by all of its processes.

    On a shared machine wall-clock rates move with the neighbours' load; CPU seconds per row say
    what each side costs (the server's backend is one process: its CPU time bounds its rate).
    """

    def __init__(self, postmaster_pid: int | None):
        self.postmaster = postmaster_pid

    def _server(self) -> float | None:
        if self.postmaster is None:
            return None
        tick = os.sysconf("SC_CLK_TCK")

        def stat(pid: int) -> list[str]:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

        fields = stat(self.postmaster)  # fields[11:15]: utime stime cutime cstime (reaped children)
        total = sum(int(v) for v in fields[11:15])
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    f = stat(int(entry.name))
                except OSError:
                    continue
                if int(f[1]) == self.postmaster:
                    total += int(f[11]) + int(f[12])
        return total / tick

    def _children(self) -> int:
        count = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1]) == self.postmaster:
                        count += 1
                except OSError:
                    continue
        return count

    def __enter__(self) -> CpuMeter:
        self.baseline = self._children() if self.postmaster else 0
        self.client0, self.server0 = time.process_time(), self._server()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.started
        self.client = time.process_time() - self.client0
        deadline = time.monotonic() + 3  # let the closed sessions' backends exit and be counted
        while self.postmaster and self._children() > self.baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        server = self._server()
        self.server = None if server is None else server - self.server0

    def line(self, rows: int) -> str:
        text = f"{rate(rows, self.wall)}   client CPU {self.client:6.2f} s"
        if self.server is not None:
            text += f", server CPU {self.server:6.2f} s ({rows / self.server:,.0f} rows per server CPU-second)"
        return text


def bench_encode(path: Path) -> int:
    """Client side only: read the parquet and encode every row, no server."""
    encoder = BinaryCopyEncoder([pg_type_for(f.type) for f in YELLOW.schema])
    rows = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        for _chunk in encoder.encode(batch):
            pass
        rows += batch.num_rows
    return rows


def bench_ours(url: str, path: Path, schema: str, indexes: bool) -> int:
    wh = PostgresWarehouse(url=url, schema_name=schema)
    return wh.replace_month(trips_spec(YELLOW) if indexes else "yellow_trips", MONTH, parquet_source(path))


def bench_to_sql(url: str, path: Path, schema: str, limit: int) -> int:
    import sqlalchemy

    info = psycopg.conninfo.conninfo_to_dict(url)
    engine = sqlalchemy.create_engine(
        sqlalchemy.URL.create(
            "postgresql+psycopg2",  # what the zoomcamp's notebooks and Mage blocks used
            username=info.get("user"),
            password=info.get("password"),
            host=info.get("host"),
            port=int(info["port"]) if info.get("port") else None,
            database=info.get("dbname"),
        )
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    rows = 0
    try:
        first = True
        for batch in pq.ParquetFile(path).iter_batches(batch_size=TO_SQL_CHUNK):
            if rows >= limit:
                break
            df = batch.to_pandas().head(limit - rows)
            if first:  # the zoomcamp creates the table from the header first
                df.head(0).to_sql("yellow_taxi_data", engine, schema=schema, if_exists="replace", index=False)
                first = False
            df.to_sql("yellow_taxi_data", engine, schema=schema, if_exists="append", index=False)
            rows += len(df)
    finally:
        engine.dispose()
    return rows


def bench_read_adbc(url: str, schema: str) -> int:
    """The warehouse's read path: ADBC's binary COPY decoded into Arrow batches (a supported API)."""
    wh = PostgresWarehouse(url=url, schema_name=schema)
    return sum(batch.num_rows for batch in wh.read_months("yellow_trips", [MONTH]))


def bench_read_psycopg_csv(url: str, schema: str) -> int:
    """The read path it replaced, through psycopg's public COPY API: CSV rows gathered into 16 MB
    blocks and parsed by Arrow's CSV reader (the public iterator hands over one row per call)."""
    names = [f.name for f in YELLOW.schema]
    types = {f.name: f.type for f in YELLOW.schema}
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        statement = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT csv)").format(
            sql.SQL(", ").join(sql.Identifier(n) for n in names), sql.Identifier(schema, "yellow_trips")
        )
        block, size = [], 0
        with cur.copy(statement) as copy:
            for data in copy:
                block.append(bytes(data))
                size += len(data)
                if size >= 16 * 1024 * 1024:
                    rows += _parse_csv(b"".join(block), names, types)
                    block, size = [], 0
        if block:
            rows += _parse_csv(b"".join(block), names, types)
    return rows


def _parse_csv(data: bytes, names: list[str], types: dict) -> int:
    import io

    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=names),
        convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True),
    )
    return table.num_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--to-sql-rows", type=int, default=None, help="load only this many rows with to_sql (default: all)")
    parser.add_argument("--skip-to-sql", action="store_true")
    parser.add_argument("--url", default=os.environ.get("TAXI_TEST_POSTGRES_URL"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from taxi_assets_tests.postgres_server import throwaway_postgres

    with tempfile.TemporaryDirectory(prefix="taxi-bench-") as tmp:
        path = Path(tmp) / "yellow_2024-01.parquet"
        started = time.perf_counter()
        write_parquet(path, args.rows, args.seed)
        print(f"data: {args.rows:,} yellow rows, {len(YELLOW.schema)} columns, {path.stat().st_size / 1e6:.0f} MB parquet "
              f"({time.perf_counter() - started:.1f} s to generate)")
        with contextlib.ExitStack() as stack:
            if args.url:
                url, postmaster = args.url, None
            else:
                server = stack.enter_context(throwaway_postgres())  # PostgreSQL's default settings
                url, postmaster = server.url, server.process.pid
            with psycopg.connect(url) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
                fsync = conn.execute("SHOW fsync").fetchone()[0]
            print(f"server: PostgreSQL {version} (fsync={fsync}), {'given' if args.url else 'throwaway'}; "
                  f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
            results = {}
            meter = CpuMeter(None)
            with meter:
                rows = bench_encode(path)
            print(f"encode only (parquet -> COPY bytes, no server)   {meter.line(rows)}")
            for label, schema, indexes, key in (
                ("replace_month, COPY+check+swap, no index", "bench_copy_noidx", False, "copy"),
                ("replace_month, + time BRIN, zone btree, ANALYZE", "bench_copy", True, "ours"),
                ("again: replacing the month atomically    ", "bench_copy", True, None),
            ):
                meter = CpuMeter(postmaster)
                with meter:
                    rows = bench_ours(url, path, schema, indexes)
                if key:
                    results[key] = rows / meter.wall
                print(f"{label}       {meter.line(rows)}")
            print(f"peak memory of this process so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
            # Reading the month back, the two ways alternated (A B A B): the warehouse's ADBC path and
            # the CSV COPY it replaced, through psycopg's public API.
            for label, read in (("read back: ADBC binary COPY -> Arrow         ", bench_read_adbc),
                                ("read back: psycopg COPY csv -> Arrow CSV     ", bench_read_psycopg_csv)) * 2:
                meter = CpuMeter(postmaster)
                with meter:
                    rows = read(url, "bench_copy")
                results.setdefault(read.__name__, []).append(rows / meter.wall)
                print(f"{label}  {meter.line(rows)}")
            adbc, csv_path = results["bench_read_adbc"], results["bench_read_psycopg_csv"]
            print(f"ratio (rows/s, pair by pair): ADBC {', '.join(f'{a / c:.1f}x' for a, c in zip(adbc, csv_path))} the psycopg CSV path")
            if not args.skip_to_sql:
                limit = args.to_sql_rows or args.rows
                meter = CpuMeter(postmaster)
                with meter:
                    rows = bench_to_sql(url, path, "bench_to_sql", limit)
                results["to_sql"] = rows / meter.wall
                print(f"zoomcamp: pandas to_sql, 100k chunks            {meter.line(rows)}")
                print(f"ratio (rows/s): COPY path {results['copy'] / results['to_sql']:.0f}x, whole replace_month "
                      f"with indexes {results['ours'] / results['to_sql']:.0f}x to_sql")
            with psycopg.connect(url, autocommit=True) as conn:
                for schema in ("bench_copy_noidx", "bench_copy", "bench_to_sql"):
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
