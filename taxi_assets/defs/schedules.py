"""The monthly schedule: a month's run after the TLC's usual publication delay.

The schedule (`{service}_monthly_schedule`) fires once a month and requests the month the TLC should
have published by then (two months back), as one run of the service's partitioned job: raw file ->
cleaned -> lake -> warehouse -> mart. It skips a month the publication sensor already loaded.
Schedules start stopped (Dagster's convention; turn them on in the UI, Automation tab), unless
`TAXI_AUTOMATION_DEFAULT_STATUS=running`, which a deployment sets.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from taxi_assets.defs.jobs import TRIGGER_TAG
from taxi_assets.defs.partitions import asset_key
from taxi_assets.tlc.months import month_label, months_back
from taxi_assets.tlc.services import Service

#: The TLC publishes a month about two months after it ends.
PUBLICATION_LAG_MONTHS = 2
#: When the monthly schedule fires (New York time): the 28th at 06:00, after the usual publication.
SCHEDULE_CRON = "0 6 28 * *"
SCHEDULE_TIMEZONE = "America/New_York"


def build_monthly_schedule(
    service: Service, job: dg.UnresolvedAssetJobDefinition, partitions: dg.MonthlyPartitionsDefinition, running: bool = False
) -> dg.ScheduleDefinition:
    """The month the TLC should have published by the tick, as a run of the service's job."""

    @dg.schedule(
        name=f"{service.name}_monthly_schedule",
        cron_schedule=SCHEDULE_CRON,
        execution_timezone=SCHEDULE_TIMEZONE,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"On the 28th, load the {service.title.lower()} month that ended {PUBLICATION_LAG_MONTHS} months "
            "earlier (the TLC's publication delay), unless the publication sensor already did."
        ),
    )
    def monthly_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time
        month = months_back(dt.date(tick.year, tick.month, 1), PUBLICATION_LAG_MONTHS)
        key = month_label(month)
        if key not in partitions.get_partition_keys(current_time=tick):
            return dg.SkipReason(f"{service.name} {key} is not a partition (before {service.first_month})")
        if key in context.instance.get_materialized_partitions(asset_key(service, "raw_file")):
            return dg.SkipReason(f"{service.name} {key} is already loaded (publication sensor or backfill)")
        return dg.RunRequest(
            run_key=f"{service.name}:{key}:scheduled",
            partition_key=key,
            tags={TRIGGER_TAG: "schedule"},
        )

    return monthly_schedule
