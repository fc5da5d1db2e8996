"""What Dagster records for each month of a ranged run (several months in one run).

    .venv/bin/python -m benchmarks.ranged_runs            # 4 months in one run, the third one failing

The backfill's overhead is the run start-up paid once per month (benchmarks/README.md); a run that
takes several months pays it once per range. This probe answers, on the installed Dagster, what such
a run leaves in the UI for each month, before our assets are changed to take ranges. A toy asset
with a `BackfillPolicy.multi_run` takes a range of months, loops over them, and for each month logs a
materialization (with its own metadata) and a partitioned check evaluation; the third month raises.
Two designs for the step's end are run side by side:

  * `events only`: the step yields no output (its asset is `skippable`), so nothing but the per-month
    events is recorded; a downstream asset in the same run is then skipped.
  * `events + output`: the step also yields its output, so the downstream asset runs, and Dagster
    adds one materialization of its own for every month of the range, without the month's metadata.

It prints, per month, the asset's status, its materializations and the last check evaluation.
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


def _definitions(with_output: bool, fail_at: str | None) -> dg.Definitions:
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
        if with_output:
            yield dg.Output(None, output_name="cleaned")

    @dg.asset(partitions_def=MONTHS, deps=[cleaned], backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=6))
    def table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"months": len(context.partition_keys)})

    return dg.Definitions(assets=[cleaned, table])


def probe(with_output: bool, fail_at: str | None) -> dict[str, object]:
    """One ranged run of the toy graph on a throwaway instance; what it recorded, month by month."""
    defs = _definitions(with_output, fail_at)
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
        materializations: dict[str, list] = {k: [] for k in keys}
        for record in reversed(instance.fetch_materializations(dg.AssetKey("cleaned"), limit=100).records):
            mat = record.asset_materialization
            rows = mat.metadata.get("rows")
            materializations[mat.partition].append(None if rows is None else rows.value)
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("cleaned"), "audit"), limit=20
        )
        last_check: dict[str, str] = {}
        for record in checks:  # newest first
            last_check.setdefault(record.partition, record.status.value)
        return {
            "design": "events + output" if with_output else "events only",
            "months": {
                k: {
                    "cleaned": status["cleaned"][k],
                    "cleaned_rows_per_materialization": materializations[k],
                    "audit": last_check.get(k),
                    "table": status["table"][k],
                }
                for k in keys
            },
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail-at", default="2024-03-01", help="the month that raises ('' for none)")
    args = parser.parse_args(argv)
    print(f"{'design':16} {'failing':10} {'month':10} {'cleaned':12} {'its rows, per materialization':30} {'audit':10} table")
    for fail_at in (None, args.fail_at or None):
        for with_output in (False, True):
            found = probe(with_output, fail_at)
            for month, m in found["months"].items():
                print(f"{found['design']:16} {fail_at or '-':10} {month:10} {m['cleaned'] or '-':12} "
                      f"{json.dumps(m['cleaned_rows_per_materialization']):30} {m['audit'] or '-':10} {m['table'] or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
