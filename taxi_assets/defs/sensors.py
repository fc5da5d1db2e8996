"""Sensors: the publication sensor per service, and the automation condition sensor.

- The publication sensor (`{service}_publication_sensor`) HEADs the source (a bounded number of
  requests per tick) for the newest months and for the months already materialized, and requests a
  run when a month appears or is re-published (its ETag / Last-Modified changed). The version is part
  of the run_key, so a re-publication gets exactly one new run and nothing unchanged gets any. What
  it has seen lives in the sensor cursor. On an empty instance it requests only the newest months;
  history is loaded with backfills from the UI.
- Anyone materializing a raw month by hand (or a backfill of raw files only): every downstream asset
  carries `FOLLOW_UPSTREAM`, so the automation condition sensor materializes the rest of that month.

Sensors start stopped (Dagster's convention), unless `TAXI_AUTOMATION_DEFAULT_STATUS=running`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import dagster as dg

from taxi_assets.defs.jobs import TRIGGER_TAG, VERSION_TAG
from taxi_assets.defs.partitions import asset_key
from taxi_assets.defs.resources import TlcSource
from taxi_assets.storage.http import DownloadError, SourceVersion, make_session, probe
from taxi_assets.tlc.months import month_label, parse_month
from taxi_assets.tlc.services import Service

#: Newest months the sensor always checks; on an empty instance these are all it may request.
RECENT_MONTHS = 3
#: HEAD requests per sensor tick, for one service: recent months first, then a rotating scan of
#: the months already loaded (to see re-publications of old files).
MAX_PROBES_PER_TICK = 8
SENSOR_INTERVAL_SECONDS = 3600
AUTOMATION_SENSOR_INTERVAL_SECONDS = 60


def sensor_status(running: bool) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def _materialized_token(instance: dg.DagsterInstance, service: Service, key: str, url: str) -> str | None:
    """The source version the latest materialization of this raw month was downloaded at."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key(service, "raw_file"), asset_partitions=[key]), limit=1
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
    # Cursors written before partition keys became YYYY-MM name months YYYY-MM-01.
    cursor["versions"] = {k[:7]: v for k, v in cursor.get("versions", {}).items()}
    cursor["scan"] = (cursor.get("scan") or "")[:7] or None
    return cursor


def build_publication_sensor(
    service: Service,
    job: dg.UnresolvedAssetJobDefinition,
    partitions: dg.MonthlyPartitionsDefinition,
    *,
    recent_months: int = RECENT_MONTHS,
    max_probes_per_tick: int = MAX_PROBES_PER_TICK,
    clock: Callable[[], dt.datetime] | None = None,
    running: bool = False,
) -> dg.SensorDefinition:
    """HEAD the TLC for new and re-published months of a service; one run per (month, version)."""
    if max_probes_per_tick < recent_months:
        raise ValueError("max_probes_per_tick must cover at least the recent months")
    now = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    @dg.sensor(
        name=f"{service.name}_publication_sensor",
        job=job,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=sensor_status(running),
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
        # Only current keys: an instance that ran the old YYYY-MM-01 keys still lists those.
        loaded = context.instance.get_materialized_partitions(asset_key(service, "raw_file")) & set(keys)
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
                        tags={TRIGGER_TAG: f"publication_sensor:{reason}", VERSION_TAG: token[:200]},
                    )
                )
        finally:
            session.close()
        return dg.SensorResult(run_requests=requests_, cursor=json.dumps(cursor, sort_keys=True))

    return publication_sensor


def build_automation_sensor(running: bool = False) -> dg.AutomationConditionSensorDefinition:
    """Evaluates FOLLOW_UPSTREAM (and the zones' eager condition) for every asset."""
    return dg.AutomationConditionSensorDefinition(
        "taxi_automation",
        target=dg.AssetSelection.all(),
        default_status=sensor_status(running),
        minimum_interval_seconds=AUTOMATION_SENSOR_INTERVAL_SECONDS,
        description="Materializes downstream months after their upstream changed (automation conditions).",
    )
