"""Alerting: a failed run, or a failed asset check, becomes one message on a webhook.

The message is Slack-compatible JSON (`text` plus a `blocks` section), so a Slack incoming webhook,
Mattermost, Rocket.Chat or a plain HTTP receiver takes it as is. It names the run, the job, the
asset(s), the partition (month) and the error. The webhook URL is a secret: it comes only from the
environment variable TAXI_ALERT_WEBHOOK_URL through `dg.EnvVar` (never run config, never the
image); when it is not set the sensors run and log, but post nothing.

- `taxi_run_failure_alert`: a run failure sensor over every job of this code location (scheduled,
  sensor and backfill runs alike). The failing step is mapped to its assets through the run's
  planned materializations.
- `taxi_asset_check_alert`: a sensor that reads every check's execution history (its cursor is
  the last execution id handled) and alerts on each failed one, blocking or not; a blocking
  failure also fails its run, so it is reported twice: once as the check, once as the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg
import requests

from taxi_assets.defs.sensors import sensor_status
from taxi_assets.settings import ALERT_WEBHOOK_ENV as WEBHOOK_ENV
from taxi_assets.settings import Settings

MAX_ERROR_CHARS = 1500
CHECK_EVENTS_PER_TICK = 200


class AlertDeliveryError(RuntimeError):
    """An alert that could not be posted; says why without the webhook's URL."""


class AlertWebhook(dg.ConfigurableResource):
    """Where alerts go: a Slack-compatible incoming webhook; empty means "log only"."""

    url: str = ""
    dagster_url: str = ""
    timeout_seconds: float = 10.0

    def post(self, message: "Alert", log=None) -> bool:
        if not self.url:
            if log:
                log.info(f"no {WEBHOOK_ENV} configured; alert not sent: {message.text}")
            return False
        # requests puts the URL (the secret) in its errors: they never leave this method.
        try:
            resp = requests.post(self.url, json=message.payload(self.dagster_url), timeout=self.timeout_seconds)
        except requests.RequestException as exc:
            raise AlertDeliveryError(f"the alert webhook (${WEBHOOK_ENV}) could not be reached: {type(exc).__name__}") from None
        if not resp.ok:
            raise AlertDeliveryError(f"the alert webhook (${WEBHOOK_ENV}) answered HTTP {resp.status_code}")
        return True


def build_alert_webhook(settings: Settings) -> AlertWebhook:
    """The webhook from the settings: its URL (a secret) through dg.EnvVar, read when a sensor posts."""
    url = dg.EnvVar(WEBHOOK_ENV) if settings.alert_webhook_set else ""
    return AlertWebhook(url=url, dagster_url=settings.dagster_url)


@dataclass(frozen=True)
class Alert:
    kind: str  # "run failed" | "asset check failed"
    run_id: str
    job: str
    assets: list[str]
    partition: str | None
    error: str
    title: str

    @property
    def text(self) -> str:
        where = f" partition {self.partition}" if self.partition else ""
        return f":rotating_light: {self.title}: {', '.join(self.assets) or self.job}{where} (run {self.run_id[:8]}): {self.error}"

    def payload(self, dagster_url: str = "") -> dict:
        link = f"{dagster_url.rstrip('/')}/runs/{self.run_id}" if dagster_url and self.run_id else None
        fields = [
            f"*Run:* {f'<{link}|{self.run_id}>' if link else self.run_id}",
            f"*Job:* {self.job}",
            f"*Asset:* {', '.join(self.assets) or '-'}",
            f"*Partition:* {self.partition or '-'}",
        ]
        body = f"*{self.title}*\n" + "\n".join(fields) + f"\n*Error:*\n```{self.error}```"
        return {
            "text": self.text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body}}],
            # The same facts as fields, for receivers that are not chat tools.
            "taxi_assets": {
                "kind": self.kind,
                "run_id": self.run_id,
                "job": self.job,
                "assets": self.assets,
                "partition": self.partition,
                "error": self.error,
                "url": link,
            },
        }


def _clip(text: str) -> str:
    text = (text or "").strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _step_assets(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """step key -> the assets that step was to materialize, from the run's planned events."""
    by_step: dict[str, list[str]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED):
        event = entry.dagster_event
        if event is not None and event.asset_key is not None:
            by_step.setdefault(event.step_key or "", []).append(event.asset_key.to_user_string())
    return by_step


def _cause(error) -> str:
    """The error a user would act on: Dagster's 'Error occurred while executing op …' wrapper
    carries the real exception (a WarehouseError, a refused download) as its cause."""
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    return error.message.strip()


def run_failure_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, failure_message: str | None) -> Alert:
    """What went wrong in a failed run: the failed steps' assets and errors, else the run's message."""
    by_step = _step_assets(instance, run.run_id)
    assets: list[str] = []
    errors: list[str] = []
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        step = event.step_key or ""
        assets += [a for a in by_step.get(step, [step]) if a not in assets]
        error = getattr(event.event_specific_data, "error", None)
        message = _cause(error) if error is not None else (entry.message or "")
        errors.append(f"{step}: {message.strip()}")
    if not assets:
        assets = sorted({a for keys in by_step.values() for a in keys})
    partition = run.tags.get("dagster/partition")
    if partition is None and run.tags.get("dagster/asset_partition_range_start"):
        partition = f"{run.tags['dagster/asset_partition_range_start']}..{run.tags.get('dagster/asset_partition_range_end')}"
    return Alert(
        kind="run failed",
        run_id=run.run_id,
        job=run.job_name,
        assets=assets,
        partition=partition,
        error=_clip("\n".join(errors) or failure_message or "the run failed (no step failed: see its logs)"),
        title="Dagster run failed",
    )


_FAILED = {"FAILED", "EXECUTION_FAILED"}
#: A check planned this long ago that never finished (its run crashed) stops holding the cursor back.
_STALE_PLANNED_SECONDS = 24 * 3600


def _check_records(instance: dg.DagsterInstance, check_keys, after: int, limit: int):
    records = []
    for check_key in check_keys:
        for record in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=limit):
            if record.id > after:
                records.append(record)
    return sorted(records, key=lambda r: r.id)


def _check_alert(instance: dg.DagsterInstance, record, runs: dict) -> Alert:
    if record.run_id not in runs:
        runs[record.run_id] = instance.get_run_by_id(record.run_id)
    run = runs[record.run_id]
    status = getattr(record.status, "value", str(record.status))
    data = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
    if status == "FAILED" and data is not None and hasattr(data, "passed"):
        facts = ", ".join(
            f"{k}={getattr(v, 'value', v)}" for k, v in (data.metadata or {}).items() if not k.startswith("dagster/")
        )
        severity = getattr(data.severity, "value", str(data.severity))
        error = f"check {record.key.name} failed ({severity}){': ' + facts if facts else ''}"
        if data.description:
            error += f" - {data.description}"
    else:
        severity = "ERROR"
        error = f"check {record.key.name} could not run (the check itself raised; see the run's logs)"
    return Alert(
        kind="asset check failed",
        run_id=record.run_id,
        job=run.job_name if run else "",
        assets=[record.key.asset_key.to_user_string()],
        partition=record.partition or (run.tags.get("dagster/partition") if run else None),
        error=_clip(error),
        title=f"Asset check failed ({severity})",
    )


def check_failure_alerts(
    instance: dg.DagsterInstance, check_keys, cursor: dict | None, limit: int = 50, now: float | None = None
) -> tuple[list[Alert], dict]:
    """Failed asset check executions not alerted yet: (alerts, next cursor).

    Works on every event log storage (SQLite's run-sharded one included): it reads each check's
    execution history, not the global event stream. A check's record is created when it is
    planned and completed later, so the cursor stays below checks still in flight and remembers
    which failures above it were already sent.
    """
    import time

    now = time.time() if now is None else now
    cursor = dict(cursor or {})
    after = int(cursor.get("after", 0))
    alerted = set(cursor.get("alerted", []))
    records = _check_records(instance, check_keys, after, limit)
    alerts: list[Alert] = []
    runs: dict = {}
    pending: list[int] = []
    for record in records:
        status = getattr(record.status, "value", str(record.status))
        if status == "PLANNED":
            if now - record.create_timestamp < _STALE_PLANNED_SECONDS:
                pending.append(record.id)
            continue
        if status in _FAILED and record.id not in alerted:
            alerts.append(_check_alert(instance, record, runs))
            alerted.add(record.id)
    top = max([after] + [r.id for r in records])
    new_after = min(pending) - 1 if pending else top
    return alerts, {"after": new_after, "alerted": sorted(i for i in alerted if i > new_after)}


def _all_check_keys(context: dg.SensorEvaluationContext):
    return sorted(context.repository_def.asset_graph.asset_check_keys, key=lambda k: k.to_user_string())


def build_alert_sensors(running: bool = False) -> list[dg.SensorDefinition]:
    """The run-failure and asset-check alert sensors, started when a deployment says so."""

    @dg.run_failure_sensor(
        name="taxi_run_failure_alert",
        default_status=sensor_status(running),
        minimum_interval_seconds=30,
        description=f"Posts every failed run (run, asset, partition, error) to ${WEBHOOK_ENV} if set.",
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertWebhook) -> None:
        message = context.failure_event.message if context.failure_event else None
        alert = run_failure_alert(context.instance, context.dagster_run, message)
        alerts.post(alert, context.log)

    @dg.sensor(
        name="taxi_asset_check_alert",
        default_status=sensor_status(running),
        minimum_interval_seconds=30,
        description=f"Posts every failed asset check (asset, partition, check, figures) to ${WEBHOOK_ENV} if set.",
    )
    def asset_check_alert_sensor(context: dg.SensorEvaluationContext, alerts: AlertWebhook):
        keys = _all_check_keys(context)
        if context.cursor is None:
            # First tick: alert on what fails from now on, not on every check the instance ever ran.
            _, cursor = check_failure_alerts(context.instance, keys, None)
            context.update_cursor(json.dumps(cursor))  # failures seen so far count as sent
            return dg.SkipReason("started: alerting on asset check failures from now on")
        found, cursor = check_failure_alerts(context.instance, keys, json.loads(context.cursor))
        for alert in found:
            alerts.post(alert, context.log)
        context.update_cursor(json.dumps(cursor))
        if not found:
            return dg.SkipReason("no new failed asset checks")
        return None

    return [run_failure_alert_sensor, asset_check_alert_sensor]
