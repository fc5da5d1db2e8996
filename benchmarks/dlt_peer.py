"""The loader a user would pick instead: dlt, on the same parquet month, into the same Postgres server.

dlt's fastest way into Postgres: Arrow batches from the parquet file, parquet as the loader file
format, and its ADBC job (adbc-driver-postgresql is installed), into a fresh dataset (schema). It
validates nothing, keeps no lake and builds no index beyond its own: it is a pure loader, the
fairest peer for our chain's speed. `--filters` adds the two zoomcamp rules (passenger_count > 0,
trip_distance > 0) as an Arrow filter on each batch, the smallest cleaning a user would add.

    python -m benchmarks.dlt_peer --parquet FILE --pg-url postgresql://... --dataset NAME [--filters] [--result out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from benchmarks.common import write_outcome

# Imports are part of the process, not of the measured work (the same boundary as every variant).
import dlt
import pyarrow.compute as pc
import pyarrow.parquet as pq

TABLE = "yellow_trips"
BATCH_ROWS = 256 * 1024


def load(parquet: Path, pg_url: str, dataset: str, filters: bool, pipelines_dir: str) -> dict:
    rows_read = 0

    @dlt.resource(name=TABLE, write_disposition="replace", file_format="parquet")
    def trips():
        nonlocal rows_read
        with pq.ParquetFile(parquet) as pf:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS):
                rows_read += batch.num_rows
                if filters:
                    keep = pc.and_kleene(pc.greater(batch["passenger_count"], 0), pc.greater(batch["trip_distance"], 0))
                    batch = batch.filter(pc.fill_null(keep, False))
                yield batch

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{dataset}", destination=dlt.destinations.postgres(credentials=_with_password(pg_url)),
        dataset_name=dataset, pipelines_dir=pipelines_dir,
    )
    info = pipeline.run(trips(), loader_file_format="parquet")
    info.raise_on_failed_jobs()
    with pipeline.sql_client() as client:
        loaded = client.execute_sql(f'SELECT COUNT(*) FROM "{dataset}"."{TABLE}"')[0][0]
    jobs = [j for p in info.load_packages for j in p.jobs.get("completed_jobs", [])]
    return {"rows": rows_read, "rows_loaded": int(loaded), "jobs": len(jobs),
            "file_formats": sorted({j.job_file_info.file_format for j in jobs})}


def _with_password(pg_url: str) -> str:
    """dlt refuses credentials without a password; the bench's throwaway server trusts local
    connections and ignores the one given here."""
    parts = urllib.parse.urlsplit(pg_url)
    if parts.password is not None:
        return pg_url
    user = urllib.parse.quote(parts.username or "postgres")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:unused@{host}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dlt_peer", description=__doc__.splitlines()[0])
    parser.add_argument("--parquet", type=Path, required=True)
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--dataset", required=True, help="the Postgres schema dlt loads into (replaced)")
    parser.add_argument("--filters", action="store_true", help="apply the two zoomcamp rules on the way")
    parser.add_argument("--result", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dlt-bench-") as pipelines_dir:
        started = time.perf_counter()
        outcome = load(args.parquet, args.pg_url, args.dataset, args.filters, pipelines_dir)
        outcome["work_seconds"] = time.perf_counter() - started
    write_outcome(outcome, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
