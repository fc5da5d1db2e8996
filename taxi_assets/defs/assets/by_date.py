"""A month's cleaned trips in the lake as `pickup_date=YYYY-MM-DD` folders, published by manifest."""

import dagster as dg
import pyarrow as pa

from taxi_assets.defs.catalog import OWNERS, catalog_tags
from taxi_assets.defs.metadata import column_schema
from taxi_assets.defs.partitions import asset_key, monthly_partitions
from taxi_assets.defs.policies import FOLLOW_UPSTREAM
from taxi_assets.storage.handles import DatePartitionedMonth, LakeFile
from taxi_assets.tlc.services import Service


def build_by_date(service: Service) -> dg.AssetsDefinition:
    @dg.asset(
        key=asset_key(service, "trips_by_pickup_date"),
        ins={"cleaned": dg.AssetIn(asset_key(service, "trips_cleaned"))},
        partitions_def=monthly_partitions(service),
        group_name=service.name,
        owners=OWNERS,
        tags=catalog_tags("lake", service.name),
        io_manager_key="lake_io_manager",
        metadata={
            "lake_dataset": f"trips/{service.name}",
            "partition_column": "pickup_date",
            "dagster/column_schema": column_schema(service.schema.append(pa.field("pickup_date", pa.date32()))),
        },
        kinds={"parquet"},
        automation_condition=FOLLOW_UPSTREAM,
        description=f"{service.title} cleaned trips as parquet in pickup_date=YYYY-MM-DD folders, each month published atomically.",
    )
    def trips_by_pickup_date(cleaned: LakeFile) -> DatePartitionedMonth:
        return DatePartitionedMonth(cleaned.table_source(), "pickup_date", "pickup_datetime", file_prefix=service.name)

    return trips_by_pickup_date
