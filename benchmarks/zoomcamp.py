"""The baseline users know: the DataTalksClub zoomcamp's way of loading a yellow month into Postgres.

Faithful to the course code (module 1 `ingest_data.py`, 2025/2026 edition, plus the Mage
`api_to_postgres` transformer of the 2024 edition):

* `pd.read_csv(url, dtype=<its dtype map>, parse_dates=[pickup, dropoff], iterator=True,
  chunksize=100000)` straight from the csv.gz URL,
* drop rows without passengers: `df[df["passenger_count"] > 0]` (the Mage transformer; with the
  nullable Int64 dtype a missing passenger_count is dropped too, as our `passenger_count_positive` rule does),
* `df.head(0).to_sql(..., if_exists="replace")` once, then `df.to_sql(..., if_exists="append")` per chunk,
  through SQLAlchemy on psycopg2 (the course's `postgresql://` URL), default `method=None`
  (executemany), index written as the course does.

Nothing here is tuned: it is the reference point, not a contender.

    python -m benchmarks.zoomcamp --url URL --pg-url postgresql://user@host:port/db [--result out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import write_outcome

# Imports are part of the process, not of the measured work (the same boundary as our variants).
import pandas as pd
from sqlalchemy import create_engine

#: The course's dtype map, as published.
DTYPE = {
    "VendorID": "Int64",
    "passenger_count": "Int64",
    "trip_distance": "float64",
    "RatecodeID": "Int64",
    "store_and_fwd_flag": "string",
    "PULocationID": "Int64",
    "DOLocationID": "Int64",
    "payment_type": "Int64",
    "fare_amount": "float64",
    "extra": "float64",
    "mta_tax": "float64",
    "tip_amount": "float64",
    "tolls_amount": "float64",
    "improvement_surcharge": "float64",
    "total_amount": "float64",
    "congestion_surcharge": "float64",
}
PARSE_DATES = ["tpep_pickup_datetime", "tpep_dropoff_datetime"]
CHUNKSIZE = 100_000
TABLE = "yellow_taxi_data"


def sqlalchemy_url(pg_url: str) -> str:
    """A libpq URI (postgresql://...) as SQLAlchemy's psycopg2 URL, the driver the course used."""
    for prefix in ("postgresql://", "postgres://"):
        if pg_url.startswith(prefix):
            return "postgresql+psycopg2://" + pg_url[len(prefix):]
    return pg_url


def ingest(url: str, pg_url: str, table: str = TABLE, chunksize: int = CHUNKSIZE, verbose: bool = False) -> dict:
    engine = create_engine(sqlalchemy_url(pg_url))
    df_iter = pd.read_csv(url, dtype=DTYPE, parse_dates=PARSE_DATES, iterator=True, chunksize=chunksize)
    rows_read = rows_loaded = chunks = 0
    first = True
    for df in df_iter:
        rows_read += len(df)
        df = df[df["passenger_count"] > 0]  # the Mage transformer: "drop passenger_count == 0"
        if first:
            df.head(n=0).to_sql(name=table, con=engine, if_exists="replace")
            first = False
        t_start = time.perf_counter()
        df.to_sql(name=table, con=engine, if_exists="append")
        rows_loaded += len(df)
        chunks += 1
        if verbose:
            print(f"inserted another chunk, took {time.perf_counter() - t_start:.3f} second", flush=True)
    engine.dispose()
    return {"rows": rows_read, "rows_loaded": rows_loaded, "chunks": chunks, "table": table}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.zoomcamp", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the yellow csv.gz (http(s) URL or a path)")
    parser.add_argument("--pg-url", required=True, help="libpq URI of the target database")
    parser.add_argument("--table", default=TABLE)
    parser.add_argument("--chunksize", type=int, default=CHUNKSIZE)
    parser.add_argument("--result", type=Path, help="write the outcome here as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per chunk, as the course prints")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    outcome = ingest(args.url, args.pg_url, args.table, args.chunksize, args.verbose)
    outcome["work_seconds"] = time.perf_counter() - started
    write_outcome(outcome, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
