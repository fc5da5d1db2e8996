"""The taxi zone lookup: the CSV as published in the lake, and the zones table in the warehouse."""


import dagster as dg
import pyarrow as pa

from taxi_assets.storage.handles import LakeFile, StagedFile
from taxi_assets.defs.catalog import OWNERS, catalog_tags
from taxi_assets.defs.metadata import column_schema, source_metadata, table_metadata
from taxi_assets.defs.resources import LakeResource, TlcSource
from taxi_assets.defs.tables import ZONES_SPEC
from taxi_assets.tlc.zones import LOOKUP_FILE_SCHEMA, ZONES_SCHEMA, read_zone_lookup

ZONES_GROUP = "zones"


@dg.asset(
    key="taxi_zone_lookup",
    group_name=ZONES_GROUP,
    owners=OWNERS,
    tags=catalog_tags("reference"),
    io_manager_key="lake_io_manager",
    metadata={"lake_folder": "raw/zones", "dagster/column_schema": column_schema(LOOKUP_FILE_SCHEMA)},
    kinds={"csv"},
)
def taxi_zone_lookup(context: dg.AssetExecutionContext, tlc: TlcSource, lake: LakeResource):
    """The TLC taxi zone lookup CSV exactly as published, validated before it is stored."""
    with lake.staging_dir() as stage:
        result = tlc.fetch(tlc.zones_url, stage, "taxi zone lookup", "csv", context.log.info)
        staged = result.path.rename(stage / "taxi_zone_lookup.csv")
        zones = read_zone_lookup(staged)  # refuse a file we could not use, before it replaces a good one
        yield dg.Output(
            StagedFile(staged),
            metadata={
                **table_metadata(zones.schema, zones.slice(zones.num_rows - 5)),
                **source_metadata(result),
                "dagster/row_count": zones.num_rows,
            },
        )


@dg.asset(
    key="taxi_zones",
    ins={"lookup": dg.AssetIn("taxi_zone_lookup")},
    group_name=ZONES_GROUP,
    owners=OWNERS,
    tags=catalog_tags("reference"),
    io_manager_key="warehouse_io_manager",
    metadata={"table_spec": ZONES_SPEC.to_dict(), "dagster/column_schema": column_schema(ZONES_SCHEMA)},
    kinds={"sql"},
    automation_condition=dg.AutomationCondition.eager(),
)
def taxi_zones(lookup: LakeFile) -> pa.Table:
    """The 265 taxi zones (id, borough, zone, service zone) as a warehouse table; "NA" stays a name."""
    with lookup.local_copy() as path:
        return read_zone_lookup(path)
