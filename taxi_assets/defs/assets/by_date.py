"""A month's cleaned trips in the lake: `pickup_date=YYYY-MM-DD` folders, published by manifest.

The folders are the month's one cleaned copy, written in the ingest's one pass over the raw file
(each kept row parquet-encoded once; a day of a large month in two files, encoded side by side:
`write_hive_folders`) and published only once the month passed its audit. A month
is read back through its manifest: one table to a user's asset, the day files to an engine that
reads parquet itself, the days in order to a row store that keeps the month in pickup order.
"""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from taxi_assets.defs.catalog import OWNERS, catalog_tags
from taxi_assets.defs.metadata import column_schema
from taxi_assets.defs.partitions import asset_key
from taxi_assets.tlc.services import Service

PARTITION_COLUMN = "pickup_date"
#: The timestamp each row's folder is cut from.
DERIVED_FROM = "pickup_datetime"


def by_date_schema(service: Service) -> pa.Schema:
    return service.schema.append(pa.field(PARTITION_COLUMN, pa.date32()))


def with_pickup_date(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.append_column(PARTITION_COLUMN, pc.cast(batch.column(DERIVED_FROM), pa.date32()))


def cleaned_dataset(service: Service) -> str:
    return f"trips/{service.name}"


def cleaned_out(service: Service) -> dg.AssetOut:
    return dg.AssetOut(
        key=asset_key(service, "trips_cleaned"),
        is_required=False,  # a run over several months records each month itself (assets/ranged.py)
        owners=OWNERS,
        tags=catalog_tags("cleaned", service.name),
        io_manager_key="lake_io_manager",
        metadata={
            "lake_dataset": cleaned_dataset(service),
            "partition_column": PARTITION_COLUMN,
            "dagster/column_schema": column_schema(by_date_schema(service)),
        },
        kinds={"parquet"},
        description=f"{service.title} trips of the month in one canonical schema, rows that pass every cleaning rule, "
        "as parquet in pickup_date=YYYY-MM-DD folders; each month published atomically by manifest once it passed its audit.",
    )
