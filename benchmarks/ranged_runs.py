"""What Dagster records for each month of a ranged run (several months in one run).

    .venv/bin/python -m benchmarks.ranged_runs            # 4 months in one run, the third one failing

The backfill's overhead is the run start-up paid once per month (benchmarks/README.md); a run that
takes several months pays it once per range. This probe answers, on the installed Dagster, what such
a run leaves in the UI for each month, before our assets are changed to take ranges. A toy asset
with a `BackfillPolicy.multi_run` takes a range of months, loops over them, and for each month logs a
materialization (with its own metadata) and a partitioned check evaluation; the third month raises.
A downstream asset with a check of its own follows it in the same run. Three designs for the step:

  * `events only`: the step yields no output (its asset is `skippable`), so nothing but the per-month
    events is recorded; the downstream asset's step is then skipped, its months left unmaterialized.
  * `events + output`: the step also yields its output, so the downstream asset runs, and Dagster
    adds one materialization of its own for every month of the range, without the month's metadata.
  * `chain in the first step`: as `events only`, and the first step also does the downstream asset's
    month and records it (materialization and check) before the next month; the downstream step is
    skipped, and Dagster takes the recorded months as they are: no second materialization, no failure.

It prints, per month, each asset's status, its materializations' metadata and its last check result.
"""

import argparse
import json
import sys
import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

MONTHS = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", end_date="2025-01-01")
RANGE = ("2024-01-01", "2024-04-01")


DESIGNS = ("events only", "events + output", "chain in the first step")


def _definitions(design: str, fail_at: str | None) -> dg.Definitions:
    @dg.multi_asset(
        specs=[dg.AssetSpec("cleaned", partitions_def=MONTHS, skippable=True)],
        check_specs=[dg.AssetCheckSpec("audit", asset="cleaned", partitions_def=MONTHS)],
        partitions_def=MONTHS,
        can_subset=True,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=6),
    )
    def cleaned(context: dg.AssetExecutionContext):
        for month in context.partition_keys:
            if month == fail_at:
                raise RuntimeError(f"cleaned {month}: failed on purpose")
            context.log_event(dg.AssetMaterialization("cleaned", partition=month, metadata={"rows": int(month[5:7]) * 100}))
            context.log_event(dg.AssetCheckEvaluation(asset_key=dg.AssetKey("cleaned"), check_name="audit", passed=True, partition=month))
            if design == "chain in the first step":
                context.log_event(dg.AssetMaterialization("table", partition=month, metadata={"rows": int(month[5:7]) * 10}))
                context.log_event(dg.AssetCheckEvaluation(asset_key=dg.AssetKey("table"), check_name="matches", passed=True, partition=month))
        if design == "events + output":
            yield dg.Output(None, output_name="cleaned")

    @dg.asset(
        partitions_def=MONTHS,
        deps=[cleaned],
        check_specs=[dg.AssetCheckSpec("matches", asset="table", partitions_def=MONTHS)],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=6),
    )
    def table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={"months": len(context.partition_keys)}, check_results=[dg.AssetCheckResult(check_name="matches", passed=True)]
        )

    return dg.Definitions(assets=[cleaned, table])


def _rows_per_materialization(instance: dg.DagsterInstance, asset: str, keys: list[str]) -> dict[str, list]:
    found: dict[str, list] = {k: [] for k in keys}
    for record in reversed(instance.fetch_materializations(dg.AssetKey(asset), limit=100).records):
        mat = record.asset_materialization
        rows = mat.metadata.get("rows")
        found.setdefault(mat.partition, []).append(None if rows is None else rows.value)
    return found


def _last_check(instance: dg.DagsterInstance, asset: str, check: str) -> dict[str, str]:
    last: dict[str, str] = {}
    for record in instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(dg.AssetKey(asset), check), limit=20):
        last.setdefault(record.partition, record.status.value)  # newest first
    return last


def probe(design: str, fail_at: str | None) -> dict[str, object]:
    """One ranged run of the toy graph on a throwaway instance; what it recorded, month by month."""
    defs = _definitions(design, fail_at)
    with dg.instance_for_test() as instance:
        defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            tags={"dagster/asset_partition_range_start": RANGE[0], "dagster/asset_partition_range_end": RANGE[1]},
        )
        keys = MONTHS.get_partition_keys_in_range(dg.PartitionKeyRange(*RANGE))
        status = {
            name: {k: (s.value if s else None) for k, s in instance.get_status_by_partition(dg.AssetKey(name), keys, MONTHS).items()}
            for name in ("cleaned", "table")
        }
        rows = {name: _rows_per_materialization(instance, name, keys) for name in ("cleaned", "table")}
        checks = {"audit": _last_check(instance, "cleaned", "audit"), "matches": _last_check(instance, "table", "matches")}
        return {
            "design": design,
            "months": {
                k: {
                    "cleaned": status["cleaned"][k],
                    "cleaned_rows_per_materialization": rows["cleaned"][k],
                    "audit": checks["audit"].get(k),
                    "table": status["table"][k],
                    "table_rows_per_materialization": rows["table"][k],
                    "matches": checks["matches"].get(k),
                }
                for k in keys
            },
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail-at", default="2024-03-01", help="the month that raises ('' for none)")
    args = parser.parse_args(argv)
    print(f"{'design':24} {'failing':10} {'month':10} {'cleaned':12} {'rows':10} {'audit':10} {'table':12} {'rows':10} matches")
    for fail_at in (None, args.fail_at or None):
        for design in DESIGNS:
            found = probe(design, fail_at)
            for month, m in found["months"].items():
                print(f"{design:24} {fail_at or '-':10} {month:10} {m['cleaned'] or '-':12} "
                      f"{json.dumps(m['cleaned_rows_per_materialization']):10} {m['audit'] or '-':10} {m['table'] or '-':12} "
                      f"{json.dumps(m['table_rows_per_materialization']):10} {m['matches'] or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
