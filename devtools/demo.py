"""`make demo`: the whole pipeline offline, on the embedded default, through the real download path.

1. builds an offline mirror of TLC-shaped files with our generator (deterministic: same files each time),
2. serves it over a local HTTP server, exactly as the TLC site or the zoomcamp mirror would be,
3. materializes every asset for the chosen months on the Dagster instance in $DAGSTER_HOME,
4. prints what was read, kept and rejected per service and month, and where the data is.

Run it twice: the tables come out the same, because every month is replaced, never appended.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster._core.remote_representation.code_location import CodeLocation

from taxi_assets.definitions import build_definitions
from taxi_assets.defs.jobs import service_job_name
from devtools.generator import DEFAULT_ROWS, build_mirror
from devtools.launch import code_location, run_job
from taxi_assets.tlc.months import month_range
from taxi_assets.tlc.marts import REJECTS_SUMMARY_SUFFIX, mart_table, trips_table
from devtools.mirror import MirrorServer
from taxi_assets.tlc.services import SOURCE_MONTH, get_service
from taxi_assets.tlc.months import parse_month
from taxi_assets.settings import Settings
from taxi_assets.storage.warehouse.base import Warehouse, sql_date_literal

#: The port `make dev-offline` serves its mirror on (Makefile MIRROR_PORT).
DEV_OFFLINE_MIRROR_PORT = 8765
#: 2023-02 is where the TLC renamed airport_fee; the zoomcamp's csv.gz mirror stops at 2021-07.
DEFAULT_MONTHS = {"parquet": "2023-01..2023-03", "csv.gz": "2021-01..2021-03"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="yellow,green")
    parser.add_argument("--months", default=None, help="YYYY-MM..YYYY-MM or a comma list (default: 3 months of the format's era)")
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv.gz"])
    parser.add_argument("--rows", type=int, default=None, help="rows per generated month (default per service)")
    parser.add_argument("--data-dir", default=os.environ.get("TAXI_DATA_DIR", "data"))
    args = parser.parse_args(argv)

    services = [get_service(s.strip()) for s in args.services.split(",")]
    months = month_range(args.months or DEFAULT_MONTHS[args.format])
    data = Path(args.data_dir)
    mirror_root = data / "mirror" / args.format.replace(".", "_")

    started = time.monotonic()
    print(f"1/3 offline mirror in {mirror_root} ({args.format}, {', '.join(months)})")
    for service in services:
        build_mirror(mirror_root, [service.name], months, args.format, args.rows or DEFAULT_ROWS[service.name])

    with _mirror(mirror_root) as server:
        source_url = f"{server.url}/trip-data" if args.format == "parquet" else server.url + "/{service}"
        env = {
            **os.environ,
            "TAXI_SOURCE_URL": source_url,
            "TAXI_SOURCE_FORMAT": args.format,
            "TAXI_ZONES_URL": f"{server.url}/misc/taxi_zone_lookup.csv",
            "TAXI_LAKE_URI": os.environ.get("TAXI_LAKE_URI") or str(data / "lake"),
            "TAXI_DUCKDB_PATH": os.environ.get("TAXI_DUCKDB_PATH") or str(data / "warehouse.duckdb"),
        }
        settings = Settings.from_env(env)
        defs = build_definitions(settings)
        print(f"2/3 serving it at {server.url}; materializing on the Dagster instance in {os.environ.get('DAGSTER_HOME')}")
        # The runs are made from the code location the UI loads, which reads these settings from the
        # environment: they are this process's for the demo's duration.
        with _environment(env), dg.DagsterInstance.get() as instance, code_location(instance) as location:
            run(location, "zones", None, instance)
            for service in services:
                for month in months:
                    run(location, service_job_name(service.name), month, instance)

    warehouse: Warehouse = defs.resources["warehouse"].backend
    print(f"3/3 done in {time.monotonic() - started:.1f} s\n")
    print_summary(warehouse, services, months)
    print(f"\nlake:      {Path(settings.lake_uri).resolve()}  (raw/, trips/<service>/pickup_date=… (the cleaned trips), rejects/)")
    print(f"warehouse: {warehouse.describe()}")
    print(f"dagster:   {os.environ.get('DAGSTER_HOME')}")
    print("\nNext, offline: make dev-offline  (the UI on http://127.0.0.1:3000 with these runs; any other month or a")
    print("backfill of years loads from a local mirror that makes each month on request)")
    return 0


def _mirror(root: Path) -> MirrorServer:
    """The mirror on make dev-offline's port when it is free, so the source URLs the runs record open
    again under `make dev-offline`; any free port otherwise."""
    try:
        return MirrorServer(root, port=DEV_OFFLINE_MIRROR_PORT).start()
    except OSError:
        return MirrorServer(root).start()


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(location: CodeLocation, job_name: str, partition_key: str | None, instance: dg.DagsterInstance) -> None:
    label = job_name + (f" {partition_key}" if partition_key else "")
    started = time.monotonic()
    # The full event log goes to the instance (the UI shows it); the terminal gets warnings only.
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = run_job(location, instance, job_name, partition_key, run_config=quiet)
    if not result.success:
        failure = next((e for e in result.all_events if e.is_failure), None)
        message = failure.event_specific_data.error.message if failure and failure.event_specific_data else "see the run log"
        raise SystemExit(f"   {label}: FAILED (run {result.run_id}): {message.strip()}")
    failed_checks = [c for c in result.get_asset_check_evaluations() if not c.passed]
    note = f"; checks failed: {', '.join(c.check_name for c in failed_checks)}" if failed_checks else ""
    print(f"   {label}: ok in {time.monotonic() - started:.1f} s{note}")


def print_summary(warehouse: Warehouse, services: list, months: list[str]) -> None:
    header = f"{'service':8} {'month':7} {'read':>9} {'kept':>9} {'rejected':>9}  rejected by rule"
    print(header)
    print("-" * len(header))
    for service in services:
        for month in months:
            day = parse_month(month)
            kept = warehouse.count(trips_table(service), day)
            by_rule = warehouse.query(
                f"SELECT rule, rows FROM {warehouse.table_ref(service.name + REJECTS_SUMMARY_SUFFIX)} "
                f"WHERE {SOURCE_MONTH} = {sql_date_literal(day)} ORDER BY rows DESC, rule"
            ).to_pylist()
            rejected = sum(r["rows"] for r in by_rule)
            rules = ", ".join(f"{r['rule']} {r['rows']:,}" for r in by_rule) or "none"
            print(f"{service.name:8} {month:7} {kept + rejected:>9,} {kept:>9,} {rejected:>9,}  {rules}")
        marts = sum(warehouse.count(mart_table(service), parse_month(month)) for month in months)
        print(f"{service.name:8} {'mart':7} {marts:>9,} rows in {warehouse.schema_name}.{mart_table(service)} for these months")


if __name__ == "__main__":
    sys.exit(main())
