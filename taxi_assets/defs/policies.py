"""How the platform's assets follow their upstream and how backfills split into runs."""

from __future__ import annotations

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

# Backfills: the assets carry no backfill policy, on purpose. Without one, an asset backfill (and the
# automation sensor) launches one run per month tagged `dagster/partition`, like a scheduled run, and
# the whole chain of a month goes in that run. With any policy, even one month per run, Dagster 1.13
# tags the run with a one-month *range* instead, and then records every check of the month without a
# partition: each backfilled month's checks would stay "planned" (shown as skipped) in the UI, and the
# result would be aimed at whichever month of the asset materialized last.
# (`make backfill`'s runs over several months are ranges on purpose: their ingest step records each
# month's assets and checks against that month itself, assets/ranged.py.)
