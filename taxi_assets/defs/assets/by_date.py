"""A month's cleaned trips in the lake as `pickup_date=YYYY-MM-DD` folders, published by manifest.

The folders are an output of the month's ingest: written in the same pass over the raw file as the
cleaned file (each month is parquet-encoded once more, never decoded again), and published with it,
only once the month passed its audit.
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


def by_date_out(service: Service) -> dg.AssetOut:
    return dg.AssetOut(
        key=asset_key(service, "trips_by_pickup_date"),
        owners=OWNERS,
        tags=catalog_tags("lake", service.name),
        io_manager_key="lake_io_manager",
        metadata={
            "lake_dataset": f"trips/{service.name}",
            "partition_column": PARTITION_COLUMN,
            "dagster/column_schema": column_schema(by_date_schema(service)),
        },
        kinds={"parquet"},
        description=f"{service.title} cleaned trips as parquet in pickup_date=YYYY-MM-DD folders, each month published "
        "atomically, with its cleaned file, once it passed its audit.",
    )
