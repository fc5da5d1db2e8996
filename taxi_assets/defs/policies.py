"""How the platform's assets follow their upstream and how backfills split into runs."""

from __future__ import annotations

import warnings

import dagster as dg

#: The lookup tables every month depends on: a new zone file must not re-run fifteen years of marts.
_ZONE_KEYS = dg.AssetSelection.assets(dg.AssetKey("taxi_zone_lookup"), dg.AssetKey("taxi_zones"))

#: Downstream of a raw month: run when any (non-zone) upstream partition was updated since this
#: partition was last requested or updated, once nothing upstream is missing or in progress and the
#: partition itself is not in a run or a backfill. Unlike `eager()`, not limited to the latest
#: month (a re-published old month must reach the marts too) and without `newly_missing()` (which
#: would request every historical month the day the condition is deployed).
FOLLOW_UPSTREAM = (
    (
        dg.AutomationCondition.any_deps_updated().ignore(_ZONE_KEYS).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    )
    .with_label("follow_upstream")
)

# Explicit backfill policies are "beta" in Dagster 1.13; the policy used here is the default's behaviour.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy`", category=dg.BetaWarning)

#: Each month of each asset is its own run step: the IO managers read and write one month per step
#: (see the report in docs/operations.md on why warehouse steps do not batch months yet).
ONE_MONTH_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
