"""A run over several months (`make backfill`'s): the ingest step carries each month through the
whole chain, and records every asset and check of the month as it lands.

A run a month pays a run's start-up each month (a Python spawned, Dagster and the code location
loaded: ~2 core-seconds, most of a backfill's overhead); a run over several months pays it once.
Dagster hands such a run's steps the whole range, and a step that yields no output skips the steps
after it, so the ingest step does each month's warehouse table, rejects summary, mart and checks
itself, through the functions and IO managers the single-month steps use, and records each one for
its month before the next month starts. A month that fails is logged with its reason and the run goes
on to the next month, as a backfill of a run a month would; the run then fails naming every month that
failed, and only those months show as failed (benchmarks/ranged_runs.py holds what Dagster 1.13
records). A run of one month keeps its own steps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator

import dagster as dg
# Dagster 1.13 exports AssetCheckEvaluation but not the type of its target: without one the UI does
# not count a month's check (test_ranged_runs.py fails if this moves).
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData

from taxi_assets.defs.assets.marts import build_month_mart
from taxi_assets.defs.assets.warehouse import month_table_source, rejects_per_rule
from taxi_assets.defs.checks import keys_present, mart_adds_up, pickups_inside, reconciles, table_matches_lake
from taxi_assets.defs.io_managers import LakeIOManager, WarehouseIOManager
from taxi_assets.defs.partitions import asset_key
from taxi_assets.defs.resources import LakeResource, WarehouseResource
from taxi_assets.tlc.months import month_label
from taxi_assets.tlc.services import Service


Event = dg.AssetMaterialization | dg.AssetCheckEvaluation


class MonthChain:
    """Each month of a ranged run, from its ingest's outputs to its mart's check."""

    def __init__(
        self, context: dg.AssetExecutionContext, service: Service, lake: LakeResource, warehouse: WarehouseResource,
        downstream: Iterable[dg.AssetsDefinition], no_resources: object,
    ):
        self.context, self.service, self.backend = context, service, warehouse.backend
        self.no_resources = no_resources
        # The IO managers the single-month steps are given (definitions.py wires the same pair).
        self.lake_io, self.warehouse_io = LakeIOManager(lake=lake), WarehouseIOManager(warehouse=warehouse)
        self.specs = {key: spec for a in (context.assets_def, *downstream) for key, spec in a.specs_by_key.items()}

    def run_months(
        self, months: list[dt.date], ingest_of: Callable[[dt.date], Iterable[dg.Output | dg.AssetCheckResult]]
    ) -> Iterator[Event]:
        """Every month in turn, each one's failure kept to itself; then the run fails if any month did."""
        failed: list[str] = []
        for month in months:
            try:
                yield from self.run(month, ingest_of(month))
            except Exception as exc:  # noqa: BLE001 - any month's error is that month's; an interrupted run is a BaseException
                which = f"{self.service.name} {month_label(month)}"
                if isinstance(exc, dg.Failure):
                    reason = exc.description or "a Failure without a description"
                else:
                    reason = f"{type(exc).__name__}: {exc}"
                said = reason if reason.startswith(which) else f"{which}: {reason}"
                self.context.log.error(f"{said} (going on to the next month)")
                failed.append(said)
        if failed:
            others = ", the others landed" if len(failed) < len(months) else ""
            raise dg.Failure(
                description=f"{len(failed)} of the run's {len(months)} months failed{others}. " + " | ".join(failed),
                allow_retries=False,
            )

    def run(self, month: dt.date, ingest: Iterable[dg.Output | dg.AssetCheckResult]) -> Iterator[Event]:
        """The month's events, each yielded as it happens: Dagster stores it before the next starts
        (a check's result is aimed at the materialization just stored, as a step's would be)."""
        partition = month_label(month)
        raw, cleaned, rejected, table, summary, mart = (
            asset_key(self.service, name)
            for name in ("raw_file", "trips_cleaned", "trips_rejected", "trips_table", "rejects_summary", "daily_zone_mart")
        )
        for item in ingest:  # raw, cleaned, rejected published in turn, then the audit's verdict
            if isinstance(item, dg.Output):
                key = self.context.asset_key_for_output(item.output_name)
                yield self._materialized(key, partition, {**item.metadata, **self._store(self.lake_io, key, partition, item.value)})
            else:
                yield from self._checked(item, cleaned, partition)
        raw_file, month_rows, rejects = (self.lake_io.month_handle(key, self.specs[key].metadata, partition) for key in (raw, cleaned, rejected))
        yield from self._checked(reconciles(raw_file, month_rows, rejects), cleaned, partition, blocking=True)
        yield from self._checked(keys_present(self.service, month_rows), cleaned, partition, blocking=True)
        yield from self._checked(pickups_inside(month, month_rows), cleaned, partition)

        yield self._materialized(table, partition, self._store(self.warehouse_io, table, partition, month_table_source(self.service, month_rows)))
        loaded = self.warehouse_io.month_handle(table, self.specs[table].metadata, partition)
        yield from self._checked(table_matches_lake(loaded, month_rows), table, partition)
        yield self._materialized(summary, partition, self._store(self.warehouse_io, summary, partition, rejects_per_rule(month, rejects)))
        yield self._materialized(mart, partition, build_month_mart(self.service, self.backend, month))
        yield from self._checked(mart_adds_up(self.service, self.backend, month), mart, partition)

    # The IO managers read no resources from their contexts; an output context given none builds an
    # empty set on an ephemeral Dagster instance of its own (an in-memory SQLite database, migrated
    # by alembic), so the chain hands every output context one empty set built once
    # (`no_resources`). Dagster's input contexts cannot be given one: the chain reads through the IO
    # managers' `month_handle`, what their `load_input` hands an unannotated month, without a context.
    def _store(self, io_manager: dg.IOManager, key: dg.AssetKey, partition: str, value: object) -> dict[str, object]:
        """What the asset's IO manager does with a single-month step's output; the metadata it adds."""
        spec = self.specs[key]
        context = dg.build_output_context(
            asset_key=key, partition_key=partition, asset_partitions_def=spec.partitions_def,
            definition_metadata=spec.metadata, asset_spec=spec, resources=self.no_resources,
        )
        io_manager.handle_output(context, value)
        return dict(context.get_logged_metadata())

    @staticmethod
    def _materialized(key: dg.AssetKey, partition: str, metadata: dict[str, object]) -> dg.AssetMaterialization:
        return dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata)

    def _checked(self, result: dg.AssetCheckResult, key: dg.AssetKey, partition: str, blocking: bool = False) -> Iterator[Event]:
        yield self._evaluation(result, key, partition, blocking)
        if blocking and not result.passed:
            # As a blocking check's failure stops a single month's run before its warehouse steps.
            raise dg.Failure(
                description=f"{self.service.name} {partition}: blocking check {result.check_name} failed on "
                f"{key.to_user_string()}; the month's lake files are published, its warehouse tables not replaced",
                metadata=result.metadata,
                allow_retries=False,
            )

    def _evaluation(self, result: dg.AssetCheckResult, key: dg.AssetKey, partition: str, blocking: bool) -> dg.AssetCheckEvaluation:
        # Aimed at the month's latest materialization, as Dagster aims a step's result: the UI
        # counts a month's check only while it is about the version that month shows.
        latest = self.context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        target = (
            AssetCheckEvaluationTargetMaterializationData(
                storage_id=latest[0].storage_id, run_id=latest[0].run_id, timestamp=latest[0].timestamp
            )
            if latest
            else None
        )
        return dg.AssetCheckEvaluation(
            asset_key=key, check_name=result.check_name, passed=result.passed, metadata=result.metadata,
            severity=result.severity, partition=partition, blocking=blocking, target_materialization_data=target,
        )
