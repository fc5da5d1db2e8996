"""Automation: a monthly schedule per service, a publication sensor per service, and the conditions
that make downstream assets follow their upstream.

Three paths bring a month in, and all of them end in fresh marts:

- The schedule (`{service}_monthly_schedule`) fires once a month, after the TLC's publication delay,
  and requests the month the TLC should have published by then (two months back), as one run of the
  service's partitioned job: raw file -> cleaned -> lake -> warehouse -> mart. It skips a month the
  publication sensor already loaded.
- The publication sensor (`{service}_publication_sensor`) HEADs the source (a bounded number of
  requests per tick) for the newest months and for the months already materialized, and requests a
  run when a month appears or is re-published (its ETag / Last-Modified changed). The version is part
  of the run_key, so a re-publication gets exactly one new run and nothing unchanged gets any. What
  it has seen lives in the sensor cursor. On an empty instance it requests only the newest months;
  history is loaded with backfills from the UI.
- Anyone materializing a raw month by hand (or a backfill of raw files only): every downstream asset
  carries `FOLLOW_UPSTREAM`, so the automation condition sensor materializes the rest of that month.

Schedules and sensors start stopped (Dagster's convention; turn them on in the UI, Automation tab),
unless `TAXI_AUTOMATION_DEFAULT_STATUS=running`, which a deployment sets.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from collections.abc import Callable

import dagster as dg

from taxi_assets.storage.http import DownloadError, SourceVersion, make_session, probe
from taxi_assets.defs.resources import TlcSource
from taxi_assets.tlc.services import Service, month_label, parse_month

#: The TLC publishes a month about two months after it ends.
PUBLICATION_LAG_MONTHS = 2
#: When the monthly schedule fires (New York time): the 28th at 06:00, after the usual publication.
SCHEDULE_CRON = "0 6 28 * *"
SCHEDULE_TIMEZONE = "America/New_York"
#: Newest months the sensor always checks; on an empty instance these are all it may request.
RECENT_MONTHS = 3
#: HEAD requests per sensor tick, for one service: recent months first, then a rotating scan of
#: the months already loaded (to see re-publications of old files).
MAX_PROBES_PER_TICK = 8
SENSOR_INTERVAL_SECONDS = 3600
AUTOMATION_SENSOR_INTERVAL_SECONDS = 60
DEFAULT_STATUS_ENV = "TAXI_AUTOMATION_DEFAULT_STATUS"

SENSOR_TAG = "taxi/trigger"
VERSION_TAG = "taxi/source_version"

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


def default_status(env: dict[str, str] | None = None) -> dg.DefaultSensorStatus:
    value = (os.environ if env is None else env).get(DEFAULT_STATUS_ENV, "stopped").strip().lower()
    if value not in ("running", "stopped"):
        raise ValueError(f"{DEFAULT_STATUS_ENV}={value!r}: expected 'running' or 'stopped'")
    return dg.DefaultSensorStatus.RUNNING if value == "running" else dg.DefaultSensorStatus.STOPPED


def _schedule_status(env: dict[str, str] | None = None) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus(default_status(env).value)


def months_back(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - n
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_key(month: dt.date) -> str:
    return month.isoformat()


def _raw_key(service: Service) -> dg.AssetKey:
    return dg.AssetKey([service.name, "raw_file"])


# -- the monthly schedule ---------------------------------------------------------------------
def build_monthly_schedule(
    service: Service, job: dg.UnresolvedAssetJobDefinition, partitions: dg.MonthlyPartitionsDefinition, env=None
) -> dg.ScheduleDefinition:
    """The month the TLC should have published by the tick, as a run of the service's job."""

    @dg.schedule(
        name=f"{service.name}_monthly_schedule",
        cron_schedule=SCHEDULE_CRON,
        execution_timezone=SCHEDULE_TIMEZONE,
        job=job,
        default_status=_schedule_status(env),
        description=(
            f"On the 28th, load the {service.title.lower()} month that ended {PUBLICATION_LAG_MONTHS} months "
            "earlier (the TLC's publication delay), unless the publication sensor already did."
        ),
    )
    def monthly_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time
        month = months_back(dt.date(tick.year, tick.month, 1), PUBLICATION_LAG_MONTHS)
        key = partition_key(month)
        if key not in partitions.get_partition_keys(current_time=tick):
            return dg.SkipReason(f"{service.name} {month_label(month)} is not a partition (before {service.first_month})")
        if key in context.instance.get_materialized_partitions(_raw_key(service)):
            return dg.SkipReason(f"{service.name} {month_label(month)} is already loaded (publication sensor or backfill)")
        return dg.RunRequest(
            run_key=f"{service.name}:{month_label(month)}:scheduled",
            partition_key=key,
            tags={SENSOR_TAG: "schedule"},
        )

    return monthly_schedule


# -- the publication sensor -------------------------------------------------------------------
def _materialized_token(instance: dg.DagsterInstance, service: Service, key: str, url: str) -> str | None:
    """The source version the latest materialization of this raw month was downloaded at."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=_raw_key(service), asset_partitions=[key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    meta = records[0].asset_materialization.metadata

    def text(name: str) -> str | None:
        value = meta.get(name)
        value = getattr(value, "value", value)
        return str(value) if value not in (None, "") else None

    size = meta.get("bytes")
    size = getattr(size, "value", size)
    version = SourceVersion(url=url, etag=text("etag"), last_modified=text("last_modified"), content_length=size)
    return version.token


def _load_cursor(raw: str | None) -> dict:
    if not raw:
        return {"versions": {}, "scan": None}
    try:
        cursor = json.loads(raw)
    except ValueError:
        return {"versions": {}, "scan": None}
    cursor.setdefault("versions", {})
    cursor.setdefault("scan", None)
    return cursor


def build_publication_sensor(
    service: Service,
    job: dg.UnresolvedAssetJobDefinition,
    partitions: dg.MonthlyPartitionsDefinition,
    *,
    recent_months: int = RECENT_MONTHS,
    max_probes_per_tick: int = MAX_PROBES_PER_TICK,
    clock: Callable[[], dt.datetime] | None = None,
    env=None,
) -> dg.SensorDefinition:
    """HEAD the TLC for new and re-published months of a service; one run per (month, version)."""
    if max_probes_per_tick < recent_months:
        raise ValueError("max_probes_per_tick must cover at least the recent months")
    now = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    @dg.sensor(
        name=f"{service.name}_publication_sensor",
        job=job,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=default_status(env),
        description=(
            f"HEADs the {service.title.lower()} files (at most {max_probes_per_tick} a tick): the newest "
            f"{recent_months} months, then the loaded months in turn; runs a month that appeared or whose "
            "ETag/Last-Modified changed."
        ),
    )
    def publication_sensor(context: dg.SensorEvaluationContext, tlc: TlcSource):
        cursor = _load_cursor(context.cursor)
        versions: dict[str, str] = cursor["versions"]
        keys = partitions.get_partition_keys(current_time=now())
        recent = list(reversed(keys[-recent_months:]))  # newest first
        loaded = context.instance.get_materialized_partitions(_raw_key(service))
        # The rest of the budget goes to months already loaded, in turn, newest to oldest.
        older_loaded = sorted((k for k in loaded if k not in recent), reverse=True)
        budget = max_probes_per_tick - len(recent)
        scan: list[str] = []
        if older_loaded and budget > 0:
            start = cursor["scan"]
            start_at = next((i for i, k in enumerate(older_loaded) if k <= start), 0) if start else 0
            for i in range(min(budget, len(older_loaded))):
                scan.append(older_loaded[(start_at + i) % len(older_loaded)])
            cursor["scan"] = older_loaded[(start_at + len(scan)) % len(older_loaded)]

        requests_: list[dg.RunRequest] = []
        session = make_session()
        try:
            for key in recent + scan:
                month = parse_month(key)
                url = tlc.url_for(service, month)
                try:
                    version = probe(
                        url, session=session, timeout=15, max_attempts=2, backoff_seconds=1.0,
                        redirect_hosts=tlc.redirect_hosts,
                    )
                except DownloadError as exc:
                    context.log.warning(f"{service.name} {month_label(month)}: HEAD failed ({exc}); next tick")
                    continue
                if version is None:
                    continue  # not published (yet)
                token = version.token
                reference = versions.get(key)
                if reference is None and key in loaded:
                    reference = _materialized_token(context.instance, service, key, url)
                versions[key] = token
                if reference == token:
                    continue
                reason = "new" if reference is None else "re-published"
                context.log.info(f"{service.name} {month_label(month)}: {reason} (version {token})")
                requests_.append(
                    dg.RunRequest(
                        run_key=f"{service.name}:{month_label(month)}:{token}",
                        partition_key=key,
                        tags={SENSOR_TAG: f"publication_sensor:{reason}", VERSION_TAG: token[:200]},
                    )
                )
        finally:
            session.close()
        return dg.SensorResult(run_requests=requests_, cursor=json.dumps(cursor, sort_keys=True))

    return publication_sensor


def build_automation_sensor(env=None) -> dg.AutomationConditionSensorDefinition:
    """Evaluates FOLLOW_UPSTREAM (and the zones' eager condition) for every asset."""
    return dg.AutomationConditionSensorDefinition(
        "taxi_automation",
        target=dg.AssetSelection.all(),
        default_status=default_status(env),
        minimum_interval_seconds=AUTOMATION_SENSOR_INTERVAL_SECONDS,
        description="Materializes downstream months after their upstream changed (automation conditions).",
    )


def build_automation(
    services: dict[str, Service], jobs: dict[str, dg.UnresolvedAssetJobDefinition], partitions: dict, env=None
) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    schedules, sensors = [], [build_automation_sensor(env)]
    for name, service in services.items():
        schedules.append(build_monthly_schedule(service, jobs[name], partitions[name], env))
        sensors.append(build_publication_sensor(service, jobs[name], partitions[name], env=env))
    return schedules, sensors


__all__ = [
    "FOLLOW_UPSTREAM",
    "ONE_MONTH_PER_RUN",
    "build_automation",
    "build_monthly_schedule",
    "build_publication_sensor",
]
