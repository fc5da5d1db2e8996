"""The Postgres table step alone: the floor under our Postgres chain on this machine.

The month's cleaned rows, already in a lake our chain just wrote, go through exactly what the
`trips_table` asset does with them (`PostgresWarehouse.replace_month`: the day files in pickup
order, binary COPY into a staged partition, the CHECK, the time BRIN and the zone-pair btree,
ANALYZE, the durable commit and the swap), with no download, no cleaning, no lake writes and no
Dagster. Our whole chain can beat this only by making the table step itself cheaper; set beside
dlt in the same run it says how far the "1.5x dlt" bar is from what the server work alone costs.

    python -m benchmarks.table_step --lake DIR --month 2021-01 --pg-url postgresql://... --schema NAME [--result out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import write_outcome

# Imports are part of the process, not of the measured work (the same boundary as every variant).
from taxi_assets.defs.assets.by_date import cleaned_dataset
from taxi_assets.defs.assets.warehouse import month_table_source
from taxi_assets.defs.tables import trips_spec
from taxi_assets.storage.handles import LakeMonthDataset
from taxi_assets.storage.lake import Lake
from taxi_assets.storage.warehouse.postgres import PostgresWarehouse
from taxi_assets.tlc.months import month_label, parse_month
from taxi_assets.tlc.services import YELLOW


def load(lake: Path, month: str, pg_url: str, schema: str) -> dict:
    first_day = parse_month(month)
    cleaned = LakeMonthDataset(Lake(str(lake)), cleaned_dataset(YELLOW), month_label(first_day), "pickup_date")
    warehouse = PostgresWarehouse(url=pg_url, schema_name=schema)
    rows = warehouse.replace_month(trips_spec(YELLOW), first_day, month_table_source(YELLOW, cleaned))
    return {"rows": rows, "rows_in_lake": cleaned.num_rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table_step", description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, required=True, help="a lake holding the month's cleaned trips")
    parser.add_argument("--month", required=True)
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--schema", required=True, help="the Postgres schema the month is loaded into")
    parser.add_argument("--result", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    outcome = load(args.lake, args.month, args.pg_url, args.schema)
    outcome["work_seconds"] = time.perf_counter() - started
    write_outcome(outcome, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
