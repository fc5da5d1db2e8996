"""Per-service trip assets, monthly partitioned: raw file -> cleaned + rejected -> lake by date -> warehouse.

One factory builds the same graph for every service, grouped under the service's name in the UI.
Each month streams through in record batches: memory is bounded by a batch, not by the month.
"""


import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_assets.automation import FOLLOW_UPSTREAM, ONE_MONTH_PER_RUN
from taxi_assets.cleaning import REJECT_RULE, REJECTS_SCHEMA, RULES, Cleaner, rule_names_for
from taxi_assets.io_managers import DatePartitionedMonth, LakeFile, LakeMonthDataset, StagedFile
from taxi_assets.lake import PARQUET_WRITE_OPTIONS
from taxi_assets.marts import REJECTS_SUMMARY_SUFFIX, trips_table
from taxi_assets.metadata import rejects_markdown, source_metadata, table_metadata
from taxi_assets.overlapped_writes import OverlappedWrites
from taxi_assets.raw_reader import iter_canonical_batches, raw_preview
from taxi_assets.resources import LakeResource, TlcSource
from taxi_assets.services import SOURCE_MONTH, Service, month_label, next_month, parse_month
from taxi_assets.warehouse.base import TableSource
from taxi_assets.zones import read_zone_lookup

ZONE_LOOKUP_KEY = dg.AssetKey("taxi_zone_lookup")


def monthly_partitions(service: Service) -> dg.MonthlyPartitionsDefinition:
    """From the service's first month with zone ids up to the last complete month."""
    return dg.MonthlyPartitionsDefinition(start_date=service.first_month_date.isoformat())


def key(service: Service, name: str) -> dg.AssetKey:
    return dg.AssetKey([service.name, name])


class CleaningConfig(dg.Config):
    """Run config of the cleaning step: switch named rules off for one run."""

    disabled_rules: list[str] = []


def build_trip_assets(service: Service) -> list[dg.AssetsDefinition]:
    partitions = monthly_partitions(service)
    group = service.name
    name = service.name

    @dg.asset(
        key=key(service, "raw_file"),
        partitions_def=partitions,
        group_name=group,
        io_manager_key="lake_io_manager",
        metadata={"lake_folder": f"raw/{name}/{{month}}"},
        kinds={"parquet"},
        pool="tlc_downloads",
        backfill_policy=ONE_MONTH_PER_RUN,
        description=f"The {service.title.lower()} trip file exactly as the TLC published it, validated and checksummed.",
    )
    def raw_file(context: dg.AssetExecutionContext, tlc: TlcSource, lake: LakeResource):
        month = parse_month(context.partition_key)
        url = tlc.url_for(service, month)
        with lake.staging_dir() as stage:
            result = tlc.fetch(url, stage, f"{name} {month_label(month)}", tlc.format, context.log.info)
            staged = result.path.rename(stage / service.file_name(month, tlc.format))
            preview = raw_preview(staged, tlc.format)
            yield dg.Output(
                StagedFile(staged),
                metadata={
                    **table_metadata(preview.schema, preview),
                    **source_metadata(result),
                    "format": tlc.format,
                    "dagster/row_count": result.row_count if result.row_count is not None else -1,
                },
            )

    @dg.multi_asset(
        outs={
            "cleaned": dg.AssetOut(
                key=key(service, "trips_cleaned"),
                io_manager_key="lake_io_manager",
                metadata={"lake_key": f"cleaned/{name}/{name}_{{month}}.parquet"},
                kinds={"parquet"},
                automation_condition=FOLLOW_UPSTREAM,
                description=f"{service.title} trips of the month in one canonical schema, rows that pass every cleaning rule.",
            ),
            "rejected": dg.AssetOut(
                key=key(service, "trips_rejected"),
                io_manager_key="lake_io_manager",
                metadata={"lake_key": f"rejects/{name}/{name}_{{month}}.parquet"},
                kinds={"parquet"},
                automation_condition=FOLLOW_UPSTREAM,
                description=f"{service.title} rows a cleaning rule rejected, each with the rule that rejected it.",
            ),
        },
        ins={"raw": dg.AssetIn(key(service, "raw_file")), "zone_lookup": dg.AssetIn(ZONE_LOOKUP_KEY)},
        partitions_def=partitions,
        group_name=group,
        name=f"{name}_clean_trips",
        backfill_policy=ONE_MONTH_PER_RUN,
    )
    def clean_trips(context: dg.AssetExecutionContext, config: CleaningConfig, lake: LakeResource, raw: LakeFile, zone_lookup: LakeFile):
        month = parse_month(context.partition_key)
        unknown = sorted(set(config.disabled_rules) - {rule.name for rule in RULES})
        if unknown:
            raise dg.Failure(f"{name}: unknown cleaning rules {unknown}; known: {[rule.name for rule in RULES]}")
        if config.disabled_rules:
            context.log.warning(f"cleaning rules switched off for this run: {', '.join(config.disabled_rules)}")
        enabled = [r for r in rule_names_for(service) if r not in set(config.disabled_rules)]
        with zone_lookup.local_copy() as zones_path:
            zone_ids = read_zone_lookup(zones_path).column("location_id")
        cleaner = Cleaner(service, month, enabled=enabled, valid_location_ids=zone_ids)
        fmt = "csv.gz" if raw.name.endswith(".csv.gz") else "parquet"
        with raw.local_copy() as raw_path, lake.staging_dir() as stage:
            kept_path, rejected_path = stage / f"{name}_{month_label(month)}.parquet", stage / "rejected.parquet"
            kept_writer = pq.ParquetWriter(kept_path, service.schema, **PARQUET_WRITE_OPTIONS)
            rejected_writer = pq.ParquetWriter(rejected_path, REJECTS_SCHEMA(service), **PARQUET_WRITE_OPTIONS)
            # (the writes of one batch run while the next is read and cleaned; they finish before the files close)
            with kept_writer, rejected_writer, OverlappedWrites() as writes:
                for batch in iter_canonical_batches(raw_path, service, month, fmt, source_name=raw.name):
                    kept, rejected = cleaner.split(batch)
                    writes.next_batch()
                    writes.submit(kept_writer.write_batch, kept)
                    writes.submit(rejected_writer.write_batch, rejected)
            if cleaner.rows_kept + sum(cleaner.counts.values()) != cleaner.rows_in:
                raise RuntimeError(f"{name} {month_label(month)}: kept + rejected != rows read; nothing stored")
            context.log.info(
                f"{name} {month_label(month)}: read {cleaner.rows_in:,}, kept {cleaner.rows_kept:,}, "
                f"rejected {cleaner.rows_in - cleaner.rows_kept:,} ({rejects_line(cleaner.counts)})"
            )
            shared = {"rows_read": cleaner.rows_in, "rules": ", ".join(enabled)}
            yield dg.Output(
                StagedFile(kept_path),
                output_name="cleaned",
                metadata={
                    **shared,
                    "dagster/row_count": cleaner.rows_kept,
                    "rows_rejected": cleaner.rows_in - cleaner.rows_kept,
                    "rejected_by_rule": dg.MetadataValue.md(rejects_markdown(cleaner.counts)),
                },
            )
            yield dg.Output(
                StagedFile(rejected_path),
                output_name="rejected",
                metadata={
                    **shared,
                    "dagster/row_count": cleaner.rows_in - cleaner.rows_kept,
                    **{f"rule/{rule}": n for rule, n in cleaner.counts.items()},
                },
            )

    @dg.asset(
        key=key(service, "trips_by_pickup_date"),
        ins={"cleaned": dg.AssetIn(key(service, "trips_cleaned"))},
        partitions_def=partitions,
        group_name=group,
        io_manager_key="lake_io_manager",
        metadata={"lake_dataset": f"trips/{name}", "partition_column": "pickup_date"},
        kinds={"parquet"},
        automation_condition=FOLLOW_UPSTREAM,
        backfill_policy=ONE_MONTH_PER_RUN,
        description=f"{service.title} cleaned trips as parquet in pickup_date=YYYY-MM-DD folders, each month published atomically.",
    )
    def trips_by_pickup_date(cleaned: LakeFile) -> DatePartitionedMonth:
        return DatePartitionedMonth(cleaned.table_source(), "pickup_date", "pickup_datetime", file_prefix=name)

    @dg.asset(
        key=key(service, "trips_table"),
        ins={"by_date": dg.AssetIn(key(service, "trips_by_pickup_date")), "cleaned": dg.AssetIn(key(service, "trips_cleaned"))},
        partitions_def=partitions,
        group_name=group,
        io_manager_key="warehouse_io_manager",
        metadata={"table": trips_table(service)},
        kinds={"sql"},
        pool="warehouse_writes",
        automation_condition=FOLLOW_UPSTREAM,
        backfill_policy=ONE_MONTH_PER_RUN,
        description=f"{service.title} cleaned trips in the warehouse table {trips_table(service)}, one month replaced atomically.",
    )
    def trips_table_asset(by_date: LakeMonthDataset, cleaned: LakeFile) -> TableSource:
        # Rows are sent from the lake's date folders, day after day, each day sorted: a row store
        # (Postgres) holds the month in pickup order (time ranges read adjacent pages; the time
        # index can be a BRIN). An engine that reads parquet itself (DuckDB from this disk,
        # BigQuery from the bucket) takes the month's cleaned file instead: the same rows in one
        # file, read in parallel, and a columnar table needs no order.
        source = by_date.table_source(service.schema, order_by="pickup_datetime")
        direct = cleaned.table_source()
        source.local_parquet, source.uris = direct.local_parquet, direct.uris
        return source

    @dg.asset(
        key=key(service, "rejects_summary"),
        ins={"rejected": dg.AssetIn(key(service, "trips_rejected"))},
        partitions_def=partitions,
        group_name=group,
        io_manager_key="warehouse_io_manager",
        metadata={"table": f"{name}{REJECTS_SUMMARY_SUFFIX}"},
        kinds={"sql"},
        pool="warehouse_writes",
        automation_condition=FOLLOW_UPSTREAM,
        backfill_policy=ONE_MONTH_PER_RUN,
        description=f"Rejected {service.title.lower()} rows per cleaning rule and month, in the warehouse.",
    )
    def rejects_summary(context: dg.AssetExecutionContext, rejected: LakeFile) -> pa.Table:
        month = parse_month(context.partition_key)
        rules = rejected.parquet().read(columns=[REJECT_RULE])
        counts = rules.group_by(REJECT_RULE).aggregate([([], "count_all")]).sort_by(REJECT_RULE)
        return pa.table(
            {
                SOURCE_MONTH: pa.array([month] * counts.num_rows, pa.date32()),
                "rule": counts.column(REJECT_RULE),
                "rows": pc.cast(counts.column("count_all"), pa.int64()),
            }
        )

    return [raw_file, clean_trips, trips_by_pickup_date, trips_table_asset, rejects_summary]


def rejects_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{rule} {n:,}" for rule, n in counts.items() if n) or "none"


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.combine(month, dt.time()), dt.datetime.combine(next_month(month), dt.time())
