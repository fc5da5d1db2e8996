"""A month's ingest, write–audit–publish: download, read to the end, clean, audit, and only then publish.

The raw file, the cleaned trips (in pickup-date folders) and the rejected rows of a month are one
step: the new version is written to staging beside the stored one, in one pass over the raw file,
profiled while it is cleaned, and audited against the stored version (`taxi_assets.tlc.audit`).
Only a version that passes reaches the lake (each file renamed into place, the folders under their
manifest); one that fails is kept under `_held/` in the lake with its audit, the stored month stays
exactly as it was, and the run fails naming service, month, file and every failed rule. The audit's
verdict is the `audit` check of each month's `trips_cleaned`. A run over several months
(`make backfill`'s) takes each month through here and then through the rest of its chain, in this
step (assets/ranged.py).
"""


import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from taxi_assets.tlc.audit import AUDIT_RULES, AuditPolicy, AuditReport, MonthProfile, audit_month, describe_failures, parse_failure
from taxi_assets.defs.partitions import asset_key
from taxi_assets.tlc.cleaning import REJECTS_SCHEMA, RULES, Cleaner, rule_names_for
from taxi_assets.storage.handles import LakeFile, StagedFile, StagedPartitionedMonth
from taxi_assets.storage.lake import Lake, new_version, parquet_write_options
from taxi_assets.storage.manifests import Filtered, write_hive_folders
from taxi_assets.defs.assets.by_date import PARTITION_COLUMN, by_date_schema, cleaned_dataset, cleaned_out, with_pickup_date
from taxi_assets.defs.catalog import OWNERS, catalog_tags
from taxi_assets.defs.metadata import column_schema, rejects_markdown, source_metadata, table_metadata
from taxi_assets.storage.overlapped_writes import OverlappedWrites
from taxi_assets.tlc.raw_reader import RawFileError, iter_canonical_batches, raw_preview
from taxi_assets.defs.assets.ranged import MonthChain
from taxi_assets.defs.resources import LakeResource, TlcSource, WarehouseResource
from taxi_assets.tlc.services import Service
from taxi_assets.tlc.months import month_label, next_month, parse_month, previous_month
from taxi_assets.tlc.zones import read_zone_lookup

ZONE_LOOKUP_KEY = dg.AssetKey("taxi_zone_lookup")
AUDIT_CHECK = "audit"
#: Where a version that failed its audit is kept: `_held/<service>/<YYYY-MM>/<version>/`.
HELD_PREFIX = "_held"

def raw_folder(service: Service) -> str:
    return f"raw/{service.name}/{{month}}"


def rejected_key(service: Service) -> str:
    return f"rejects/{service.name}/{service.name}_{{month}}.parquet"


class IngestConfig(dg.Config):
    """Run config of a month's ingest: cleaning rules, and how far a new version may stray from the stored one."""

    disabled_rules: list[str] = Field(default=[], description="Cleaning rules to switch off for this run.")
    force_publish: bool = Field(
        default=False,
        description=(
            "Publish the new version even if its audit fails (a deliberate re-publication, e.g. one that shrinks). "
            "A file that cannot be read to its end is never published."
        ),
    )
    min_rows_ratio: float = Field(default=AuditPolicy.min_rows_ratio, description="Least rows read, as a share of the stored version's.")
    max_rows_ratio: float = Field(default=AuditPolicy.max_rows_ratio, description="Most rows read, as a multiple of the stored version's.")
    neighbour_min_rows_ratio: float = Field(
        default=AuditPolicy.neighbour_min_rows_ratio, description="First load: least rows, as a share of a stored neighbouring month's."
    )
    neighbour_max_rows_ratio: float = Field(
        default=AuditPolicy.neighbour_max_rows_ratio, description="First load: most rows, as a multiple of a stored neighbouring month's."
    )
    max_reject_share_increase: float = Field(
        default=AuditPolicy.max_reject_share_increase,
        description="How far the rejected share may rise above the stored history's (0.10 = ten points).",
    )

    def policy(self) -> AuditPolicy:
        return AuditPolicy(
            min_rows_ratio=self.min_rows_ratio,
            max_rows_ratio=self.max_rows_ratio,
            neighbour_min_rows_ratio=self.neighbour_min_rows_ratio,
            neighbour_max_rows_ratio=self.neighbour_max_rows_ratio,
            max_reject_share_increase=self.max_reject_share_increase,
        )


def build_ingest(
    service: Service, partitions: dg.PartitionsDefinition, downstream: list[dg.AssetsDefinition]
) -> dg.AssetsDefinition:
    """The month's ingest; `downstream`, the service's other assets, which a run over several months
    carries each month through here (assets/ranged.py)."""
    name = service.name
    raw_key, kept_key, rejects_key = (asset_key(service, n) for n in ("raw_file", "trips_cleaned", "trips_rejected"))
    audit_key = dg.AssetCheckKey(kept_key, AUDIT_CHECK)

    @dg.multi_asset(
        name=f"{name}_ingest",
        outs={
            "raw": dg.AssetOut(
                is_required=False,  # (none yielded by a run over several months: assets/ranged.py)
                owners=OWNERS,
                tags=catalog_tags("raw", name),
                key=raw_key,
                io_manager_key="lake_io_manager",
                metadata={"lake_folder": raw_folder(service)},
                kinds={"parquet"},
                description=f"The {service.title.lower()} trip file exactly as the TLC published it, validated, "
                "checksummed, and stored only once its month passed the audit.",
            ),
            "cleaned": cleaned_out(service),
            "rejected": dg.AssetOut(
                is_required=False,
                owners=OWNERS,
                tags=catalog_tags("rejected", name),
                key=rejects_key,
                io_manager_key="lake_io_manager",
                metadata={"lake_key": rejected_key(service), "dagster/column_schema": column_schema(REJECTS_SCHEMA(service))},
                kinds={"parquet"},
                description=f"{service.title} rows a cleaning rule rejected, each with the rule that rejected it.",
            ),
        },
        ins={"zone_lookup": dg.AssetIn(ZONE_LOOKUP_KEY)},
        internal_asset_deps={
            "raw": set(),
            "cleaned": {raw_key, ZONE_LOOKUP_KEY},
            "rejected": {raw_key, ZONE_LOOKUP_KEY},
        },
        check_specs=[
            dg.AssetCheckSpec(
                AUDIT_CHECK,
                asset=kept_key,
                partitions_def=partitions,
                description="Write–audit–publish: the month's new version passed its audit and was published, or was "
                "held back (the stored month unchanged) and why. Rules: "
                + "; ".join(f"{rule} ({text})" for rule, text in AUDIT_RULES.items()),
            )
        ],
        partitions_def=partitions,
        group_name=name,
        pool="tlc_downloads",
        # Subsettable only so that a run over several months may yield none of the step's outputs
        # and audit results (each month is recorded on its own: assets/ranged.py); a selection of
        # part of the step is refused below.
        can_subset=True,
    )
    def ingest(
        context: dg.AssetExecutionContext, config: IngestConfig, tlc: TlcSource, lake: LakeResource,
        warehouse: WarehouseResource, zone_lookup: LakeFile,
    ):
        if context.selected_asset_keys != {raw_key, kept_key, rejects_key} or audit_key not in context.selected_asset_check_keys:
            raise dg.Failure(
                f"{name}_ingest: {raw_key.to_user_string()}, {kept_key.to_user_string()}, {rejects_key.to_user_string()} "
                "and the audit are one pass over the month's file and are published together: select all three assets"
            )
        enabled = _enabled_rules(service, config, context.log)
        policy = config.policy()  # a bad band fails here, before anything is downloaded
        with zone_lookup.local_copy() as zones_path:
            zone_ids = read_zone_lookup(zones_path).column("location_id")
        months = [parse_month(key) for key in context.partition_keys]

        def month_of(month: dt.date):
            return _ingest_month(context, service, month, config, tlc, lake, zone_ids, enabled, policy, kept_key)

        if len(months) == 1:
            yield from month_of(months[0])
            return
        with dg.build_resources({}, instance=context.instance) as no_resources:  # several months: assets/ranged.py
            yield from MonthChain(context, service, lake, warehouse, downstream, no_resources).run_months(months, month_of)

    return ingest


def _ingest_month(
    context: dg.AssetExecutionContext, service: Service, month: dt.date, config: IngestConfig, tlc: TlcSource,
    lake: LakeResource, zone_ids: pa.ChunkedArray, enabled: list[str], policy: AuditPolicy, kept_key: dg.AssetKey,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """One month's write–audit–publish: its three outputs, then the audit's verdict (a held-back
    version: the verdict, then a Failure). Nothing starts before the first item is asked for."""
    name = service.name
    label = f"{name} {month_label(month)}"
    store = lake.lake
    with lake.staging_dir() as stage:
        result = tlc.fetch(tlc.url_for(service, month), stage, label, tlc.format, context.log.info)
        raw_path = result.path.rename(stage / service.file_name(month, tlc.format))
        staged = [raw_path, stage / "rejected.parquet"]
        days, version = stage / "cleaned", new_version()
        cleaner = Cleaner(service, month, enabled=enabled, valid_location_ids=zone_ids)
        profile, report = _write_and_audit(
            store, service, month, tlc.format, result.row_count, staged, (days, f"{name}_{month_label(month)}_{version}"), cleaner, policy
        )
        forced = config.force_publish and not report.passed and "parses_to_end" not in report.failures
        held = None if report.passed or forced else _hold_back(store, service, month, [*staged, days], report)
        verdict = _check_result(kept_key, month, report, forced, held)
        if held is not None:
            # Nothing is published: the verdict lands on the stored version, which stays the month's latest.
            yield verdict
            raise dg.Failure(
                description=(
                    f"{label} ({raw_path.name}): the new version failed its audit and was held back; the stored "
                    f"month is unchanged. {describe_failures(report.failures)}. The new version is kept at {held} "
                    f"for inspection. To publish it anyway (a deliberate re-publication), run again with "
                    f"ops: {name}_ingest: config: force_publish: true"
                ),
                metadata={"held_back_at": held, "failed_rules": ", ".join(report.failures), "source_url": result.url},
                allow_retries=False,
            )
        if forced:
            context.log.warning(f"{label}: published although its audit failed (force_publish): {describe_failures(report.failures)}")
        context.log.info(
            f"{label}: read {profile.rows_read:,}, kept {profile.rows_kept:,}, rejected {profile.rows_rejected:,} "
            f"({rejects_line(cleaner.counts)}); publishing"
        )
        # The lake IO manager renames each file into place: raw, then the cleaned rows' date
        # folders under their manifest, then the rejected rows.
        preview = raw_preview(raw_path, tlc.format)
        raw_meta = {**table_metadata(preview.schema, preview), **source_metadata(result), "format": tlc.format}
        shared = {"rows_read": profile.rows_read, "rules": ", ".join(enabled)}
        kept_meta = {
            "rows_rejected": profile.rows_rejected,
            "rejected_share": round(profile.rows_rejected / profile.rows_read, 6) if profile.rows_read else 0.0,
            "rejected_by_rule": dg.MetadataValue.md(rejects_markdown(cleaner.counts)),
        }
        rejected_meta = {f"rule/{rule}": n for rule, n in cleaner.counts.items()}
        yield dg.Output(StagedFile(staged[0]), output_name="raw", metadata={**raw_meta, "dagster/row_count": profile.rows_read})
        yield dg.Output(
            StagedPartitionedMonth(days, version, name, profile.rows_kept), output_name="cleaned", metadata={**shared, **kept_meta}
        )
        meta = {**shared, **rejected_meta, "dagster/row_count": profile.rows_rejected}
        yield dg.Output(StagedFile(staged[1]), output_name="rejected", metadata=meta)
        # After the outputs: Dagster aims a check result at the month's latest materialization and
        # counts it only while that stays the latest, so a verdict given before publishing would be
        # about the version just replaced (the month's audit never shown as passed).
        yield verdict


def _enabled_rules(service: Service, config: IngestConfig, log) -> list[str]:
    unknown = sorted(set(config.disabled_rules) - {rule.name for rule in RULES})
    if unknown:
        raise dg.Failure(f"{service.name}: unknown cleaning rules {unknown}; known: {[rule.name for rule in RULES]}")
    if config.disabled_rules:
        log.warning(f"cleaning rules switched off for this run: {', '.join(config.disabled_rules)}")
    return [r for r in rule_names_for(service) if r not in set(config.disabled_rules)]


def _write_and_audit(
    lake: Lake, service: Service, month: dt.date, fmt: str, file_rows: int | None, staged: list[Path],
    days: tuple[Path, str], cleaner: Cleaner, policy: AuditPolicy,
) -> tuple[MonthProfile, AuditReport]:
    """Read the raw file to its end into the staged rejected file and the kept rows' date folders
    (`days`: the folder and the files' basename), profiling the new version on the way, and audit it
    against what the lake stores. Touches nothing stored."""
    raw_path, rejected_path = staged
    profile = MonthProfile()
    try:
        rejects_schema = REJECTS_SCHEMA(service)
        rejected_writer = pq.ParquetWriter(rejected_path, rejects_schema, **parquet_write_options(rejects_schema))
        # One pass, one copy: the kept rows go to their date folders as they are cleaned. A month-long
        # cleaned file beside the folders was a second parquet encode of every kept row (a 20M-row
        # fhvhv month: 13.5-15.6 against 10.2-10.7 s, 26-29 against 16 core-seconds).
        with rejected_writer, OverlappedWrites(threads=1) as writes:

            def kept_with_dates() -> Iterator[Filtered]:
                for batch in iter_canonical_batches(raw_path, service, month, fmt, source_name=raw_path.name):
                    keep, rejected = cleaner.judge(batch)
                    profile.add(batch, rejected)
                    writes.next_batch()
                    writes.submit(rejected_writer.write_batch, rejected)
                    yield Filtered(with_pickup_date(batch), keep)

            write_hive_folders(*days, kept_with_dates(), by_date_schema(service), PARTITION_COLUMN)
    except Exception as exc:  # whatever stops the read is the file's fault: held back, never published
        named = isinstance(exc, (RawFileError, ValueError))  # these already name service, month and file
        return profile, parse_failure(str(exc) if named else f"{raw_path.name}: {type(exc).__name__}: {exc}")
    # parquet: the footer's count, independent of what the reader yielded; CSV: the rows parsed
    profile.rows_read = file_rows if fmt == "parquet" and file_rows is not None else cleaner.rows_in
    previous = _stored_profile(lake, service, month)
    neighbours = {} if previous is not None else _stored_neighbours(lake, service, month)
    return profile, audit_month(profile, previous, neighbours, policy)


def _stored_profile(lake: Lake, service: Service, month: dt.date) -> MonthProfile | None:
    """The profile of the month's stored version, from its files' footers; None if none is stored."""
    label, dataset = month_label(month), cleaned_dataset(service)
    manifest = lake.read_manifest(dataset, label)
    if manifest is None:
        return None
    kept = [lake.parquet_file(f"{dataset}/{entry.path}") for entry in manifest.files]
    rejected = rejected_key(service).format(month=label)
    return MonthProfile.of_files(kept, lake.parquet_file(rejected) if lake.exists(rejected) else None)


def _stored_neighbours(lake: Lake, service: Service, month: dt.date) -> dict[str, MonthProfile]:
    """The stored months just before and after, for a first load's audit."""
    found = {}
    for neighbour in (previous_month(month), next_month(month)):
        if neighbour >= service.first_month_date:
            profile = _stored_profile(lake, service, neighbour)
            if profile is not None:
                found[month_label(neighbour)] = profile
    return found


def _hold_back(lake: Lake, service: Service, month: dt.date, files: list[Path], report: AuditReport) -> str:
    """Keep a version that failed its audit where a user can inspect it; returns where, for people."""
    folder = f"{HELD_PREFIX}/{service.name}/{month_label(month)}/{new_version()}"
    for path in files:
        if path.is_dir():  # the date folders, kept as they were laid out
            for file in sorted(path.rglob("*.parquet")):
                lake.put_file(file, f"{folder}/{file.relative_to(path.parent).as_posix()}")
        elif path.exists():
            lake.put_file(path, f"{folder}/{path.name}")
    lake.put_bytes(json.dumps(report.to_dict(), indent=1, default=str).encode(), f"{folder}/audit.json")
    return lake.display(folder)


def _check_result(
    check_asset: dg.AssetKey, month: dt.date, report: AuditReport, forced: bool, held: str | None
) -> dg.AssetCheckResult:
    verdict = "passed, published" if report.passed else ("failed, published by force_publish" if forced else "failed, held back")
    # The month is said in the metadata too: a run over a partition range records the result unpartitioned.
    metadata: dict[str, object] = {
        "verdict": verdict,
        "month": month_label(month),
        **{k: v for k, v in report.facts.items() if not isinstance(v, dict)},
    }
    if report.failures:
        metadata["failed_rules"] = dg.MetadataValue.md("\n".join(f"- **{r}**: {why}" for r, why in report.failures.items()))
    if held:
        metadata["held_back_at"] = held
    return dg.AssetCheckResult(
        check_name=AUDIT_CHECK,
        asset_key=check_asset,
        passed=report.passed,
        # A held-back version leaves the stored month intact: a warning on it, not an error. The run fails.
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def rejects_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{rule} {n:,}" for rule, n in counts.items() if n) or "none"
