"""Automation without a daemon: the monthly schedule picks the right month, the publication sensor
(against a real local HTTP server) runs new and re-published months exactly once and never floods,
automation conditions carry a new raw month to the marts, and failures reach a webhook."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from taxi_assets.defs.alerts import AlertWebhook, build_alert_sensors, check_failure_alerts
from taxi_assets.defs.schedules import PUBLICATION_LAG_MONTHS
from taxi_assets.defs.sensors import MAX_PROBES_PER_TICK, build_publication_sensor
from taxi_assets.tlc.months import months_back
from taxi_assets.definitions import build_definitions
from taxi_assets.defs.jobs import service_job_name
from devtools.mirror import MirrorServer
from taxi_assets.defs.resources import TlcSource
from taxi_assets.tlc.services import YELLOW
from taxi_assets.tlc.months import parse_month
from taxi_assets.settings import Settings

from taxi_assets_tests.conftest import Pipeline

NY = dt.timezone(dt.timedelta(hours=-5))
run_failure_alert_sensor, asset_check_alert_sensor = build_alert_sensors()


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    tmp = tmp_path_factory.mktemp("defs")
    return build_definitions(
        Settings.from_env({"TAXI_LAKE_URI": str(tmp / "lake"), "TAXI_DUCKDB_PATH": str(tmp / "w.duckdb")})
    )


# -- the monthly schedule ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("service", "tick", "expected"),
    [
        ("yellow", dt.datetime(2024, 3, 28, 6, tzinfo=NY), "2024-01"),
        ("green", dt.datetime(2025, 1, 28, 6, tzinfo=NY), "2024-11"),  # across a year boundary
        ("fhvhv", dt.datetime(2019, 4, 28, 6, tzinfo=NY), "2019-02"),  # the service's first month
    ],
)
def test_schedule_requests_the_month_published_by_the_tick(defs, service, tick, expected):
    schedule = defs.get_schedule_def(f"{service}_monthly_schedule")
    assert schedule.job_name == service_job_name(service)
    assert schedule.cron_schedule == "0 6 28 * *"
    with dg.instance_for_test() as instance:
        data = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()))
    assert [r.partition_key for r in data.run_requests] == [expected]
    # the requested month is a partition of the job, PUBLICATION_LAG_MONTHS before the tick's month
    assert parse_month(expected) == months_back(dt.date(tick.year, tick.month, 1), PUBLICATION_LAG_MONTHS)


def test_schedule_skips_before_first_month_and_loaded_months(defs):
    schedule = defs.get_schedule_def("fhvhv_monthly_schedule")
    with dg.instance_for_test() as instance:
        early = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2019, 3, 28, 6, tzinfo=NY), repository_def=defs.get_repository_def())
        )
        assert not early.run_requests and "not a partition" in early.skip_message
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["fhvhv", "raw_file"]), partition="2024-01"))
        loaded = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2024, 3, 28, 6, tzinfo=NY), repository_def=defs.get_repository_def())
        )
        assert not loaded.run_requests and "already loaded" in loaded.skip_message


# -- the publication sensor against a local HTTP server -----------------------------------------
class Source:
    """A folder served like the TLC's site; publishing a month writes (or rewrites) its file."""

    def __init__(self, root: Path, server: MirrorServer):
        self.root, self.server = root, server
        self._stamp = 1_700_000_000

    def publish(self, month: str, body: bytes = b"PAR1 not really parquet PAR1") -> None:
        path = self.root / "trip-data" / f"yellow_tripdata_{month}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        self._stamp += 1000  # every publication gets its own Last-Modified (and so its own ETag)
        os.utime(path, (self._stamp, self._stamp))

    def heads(self) -> int:
        return sum(self.server.hits.values())


@pytest.fixture
def source(tmp_path) -> Iterator[Source]:
    with MirrorServer(tmp_path / "site", missing_status=403) as server:
        yield Source(tmp_path / "site", server)


def make_sensor(defs, clock: dt.datetime):
    job = defs.get_job_def(service_job_name("yellow"))
    return build_publication_sensor(YELLOW, job, job.partitions_def, clock=lambda: clock)


def tick(sensor, instance, source: Source, cursor: str | None, defs: dg.Definitions):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"tlc": TlcSource(base_url=f"{source.server.url}/trip-data")},
        repository_def=defs.get_repository_def(),
    )
    before = source.heads()
    result = sensor.evaluate_tick(context)
    return result, source.heads() - before


def test_sensor_new_month_republished_month_and_nothing_changed(defs, source):
    sensor = make_sensor(defs, dt.datetime(2023, 3, 20, tzinfo=dt.timezone.utc))  # newest months: 2023-02, 01, 2022-12
    source.publish("2022-12")
    with dg.instance_for_test() as instance:
        first, heads = tick(sensor, instance, source, None, defs)
        assert [r.partition_key for r in first.run_requests] == ["2022-12"]
        assert heads <= MAX_PROBES_PER_TICK

        # nothing changed -> no run
        quiet, _ = tick(sensor, instance, source, first.cursor, defs)
        assert quiet.run_requests == []

        # a new month appears -> one run for it
        source.publish("2023-01")
        new, _ = tick(sensor, instance, source, quiet.cursor, defs)
        assert [r.partition_key for r in new.run_requests] == ["2023-01"]
        request = new.run_requests[0]
        assert request.run_key.startswith("yellow:2023-01:")
        assert request.tags["taxi/trigger"] == "publication_sensor:new"

        # the same month re-published (new ETag) -> one more run, with another run_key
        source.publish("2023-01", b"PAR1 counts changed PAR1")
        again, _ = tick(sensor, instance, source, new.cursor, defs)
        assert [r.partition_key for r in again.run_requests] == ["2023-01"]
        assert again.run_requests[0].run_key != request.run_key
        assert again.run_requests[0].tags["taxi/trigger"] == "publication_sensor:re-published"

        # and then nothing changed -> no run
        still, _ = tick(sensor, instance, source, again.cursor, defs)
        assert still.run_requests == []


def test_sensor_carries_over_an_instance_that_ran_the_old_yyyy_mm_01_keys(defs, source):
    """The upgrade note's promise: an old cursor's months are not requested again, and old-key
    materializations are neither requested nor an error."""
    sensor = make_sensor(defs, dt.datetime(2023, 3, 20, tzinfo=dt.timezone.utc))
    for month in ("2022-06", "2022-12", "2023-01"):
        source.publish(month)
    with dg.instance_for_test() as instance:
        current, _ = tick(sensor, instance, source, None, defs)
        assert sorted(r.partition_key for r in current.run_requests) == ["2022-12", "2023-01"]
        state = json.loads(current.cursor)
        old_cursor = json.dumps({"versions": {f"{k}-01": v for k, v in state["versions"].items()}, "scan": None})
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["yellow", "raw_file"]), partition="2022-06-01"))
        result, _ = tick(sensor, instance, source, old_cursor, defs)
        assert result.run_requests == []
        assert all(len(k) == 7 for k in json.loads(result.cursor)["versions"])


def test_sensor_first_evaluation_on_empty_instance_is_bounded(defs, source):
    """Years of published files: the first tick HEADs a few URLs and requests only the newest months."""
    for year in range(2019, 2023):
        for m in range(1, 13):
            source.publish(f"{year}-{m:02d}")
    sensor = make_sensor(defs, dt.datetime(2023, 1, 10, tzinfo=dt.timezone.utc))  # newest: 2022-12, 11, 10
    with dg.instance_for_test() as instance:
        result, heads = tick(sensor, instance, source, None, defs)
    assert sorted(r.partition_key for r in result.run_requests) == ["2022-10", "2022-11", "2022-12"]
    assert heads <= MAX_PROBES_PER_TICK


def test_sensor_rechecks_loaded_old_months_in_turn(defs, source):
    """Old months already loaded are HEADed a few per tick; a re-published one gets a run."""
    loaded = [f"2021-{m:02d}" for m in range(1, 13)]
    for month in loaded:
        source.publish(month)
    sensor = make_sensor(defs, dt.datetime(2023, 3, 20, tzinfo=dt.timezone.utc))
    with dg.instance_for_test() as instance:
        for month in loaded:  # loaded earlier (e.g. a backfill), at the version now published
            version = source.server.url_for(f"trip-data/yellow_tripdata_{month}.parquet")
            import requests

            head = requests.head(version, timeout=5)
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    dg.AssetKey(["yellow", "raw_file"]),
                    partition=month,
                    metadata={"etag": head.headers["ETag"], "last_modified": head.headers["Last-Modified"]},
                )
            )
        cursor, seen = None, set()
        for _ in range(3):  # three ticks see every loaded month (5 old months a tick)
            result, heads = tick(sensor, instance, source, cursor, defs)
            assert result.run_requests == [] and heads <= MAX_PROBES_PER_TICK
            cursor = result.cursor
            seen |= set(json.loads(cursor)["versions"])
        assert set(loaded) <= seen

        source.publish("2021-06", b"PAR1 the TLC re-published this month PAR1")
        requested = []
        for _ in range(3):
            result, _ = tick(sensor, instance, source, cursor, defs)
            cursor = result.cursor
            requested += [r.partition_key for r in result.run_requests]
        assert requested == ["2021-06"]


# -- a new raw month ends in fresh marts ------------------------------------------------------
def test_sensor_run_request_loads_the_month_to_the_marts(pipeline: Pipeline, mirror):
    job_name = service_job_name("yellow")
    job = pipeline.defs.get_job_def(job_name)
    sensor = build_publication_sensor(
        YELLOW, job, job.partitions_def, clock=lambda: dt.datetime(2023, 2, 10, tzinfo=dt.timezone.utc)
    )
    context = dg.build_sensor_context(
        instance=pipeline.instance,
        resources={"tlc": pipeline.defs.resources["tlc"]},
        repository_def=pipeline.defs.get_repository_def(),
    )
    result = sensor.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests] == ["2023-01"]
    pipeline.run("zones")
    run = pipeline.defs.resolve_job_def(job_name).execute_in_process(
        partition_key=result.run_requests[0].partition_key, instance=pipeline.instance, tags=result.run_requests[0].tags
    )
    assert run.success
    assert pipeline.warehouse.count("yellow_daily_zone_mart", parse_month("2023-01")) > 0


def test_automation_conditions_carry_a_raw_month_to_the_marts(pipeline: Pipeline):
    """Only the month's ingest (raw file, cleaned rows in their date folders and rejected rows, audited
    together) is materialized by hand; the conditions request the rest of the month."""
    yellow = dg.AssetSelection.groups("yellow")
    pipeline.run("zones")
    first = dg.evaluate_automation_conditions(pipeline.defs, pipeline.instance, asset_selection=yellow)
    assert first.total_requested == 0  # nothing loaded: nothing to follow, and no flood of history
    job = pipeline.defs.resolve_job_def(service_job_name("yellow"))
    ingest = [dg.AssetKey(["yellow", name]) for name in ("raw_file", "trips_cleaned", "trips_rejected")]
    job.execute_in_process(partition_key="2023-01", instance=pipeline.instance, asset_selection=ingest)
    cursor, layers = first.cursor, []
    for _ in range(5):
        result = dg.evaluate_automation_conditions(pipeline.defs, pipeline.instance, asset_selection=yellow, cursor=cursor)
        cursor = result.cursor
        requested = {
            key.to_user_string(): sorted(result.get_requested_partitions(key))
            for key in pipeline.defs.resolve_asset_graph().get_all_asset_keys()
            if result.get_num_requested(key)
        }
        if not requested:
            break
        assert all(parts == ["2023-01"] for parts in requested.values()), requested
        layers.append(sorted(requested))
        job.execute_in_process(
            partition_key="2023-01",
            instance=pipeline.instance,
            asset_selection=[dg.AssetKey.from_user_string(k) for k in requested],
        )
    # One evaluation requests the whole chain below the raw month (Dagster counts a dep requested in
    # the same tick as not missing), so it runs as one run; then nothing more is requested.
    assert layers == [
        [
            "yellow/daily_zone_mart",
            "yellow/rejects_summary",
            "yellow/trips_table",
        ]
    ]
    assert pipeline.warehouse.count("yellow_daily_zone_mart", parse_month("2023-01")) > 0


def test_backfill_policy_run_of_one_month_range_replaces_only_that_month(pipeline: Pipeline):
    """Asset backfills with a backfill policy launch runs tagged with a partition *range* of one month
    (no `dagster/partition` tag): the IO managers must still write that month, never a whole table."""
    pipeline.run("zones")
    pipeline.run("yellow", "2023-02")
    before = pipeline.warehouse.count("yellow_trips", parse_month("2023-02"))
    job = pipeline.defs.resolve_job_def(service_job_name("yellow"))
    result = job.execute_in_process(
        instance=pipeline.instance,
        tags={"dagster/asset_partition_range_start": "2023-01", "dagster/asset_partition_range_end": "2023-01"},
    )
    assert result.success
    assert pipeline.warehouse.count("yellow_trips", parse_month("2023-01")) > 0
    assert pipeline.warehouse.count("yellow_trips", parse_month("2023-02")) == before  # the other month is intact
    assert pipeline.warehouse.count("yellow_daily_zone_mart", parse_month("2023-01")) > 0


# -- alerts -----------------------------------------------------------------------------------
class Receiver:
    """A local webhook receiver: collects the JSON bodies POSTed to it."""

    def __init__(self):
        self.posts: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/taxi"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def failure_context(pipeline: Pipeline, result, alerts: AlertWebhook):
    """The context the run-failure sensor gets for a failed run of ours."""
    failure = pipeline.instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
    return dg.build_run_status_sensor_context(
        sensor_name="taxi_run_failure_alert",
        dagster_event=failure,
        dagster_instance=pipeline.instance,
        dagster_run=pipeline.instance.get_run_by_id(result.run_id),
        resources={"alerts": alerts},
    ).for_run_failure()


def test_run_failure_alert_names_run_asset_partition_and_error(pipeline: Pipeline, receiver: Receiver):
    assert pipeline.run("zones").success
    result = pipeline.run("yellow", "2023-06", raise_on_error=False)  # not in the mirror: 403, not published
    assert not result.success
    run_failure_alert_sensor(failure_context(pipeline, result, AlertWebhook(url=receiver.url, dagster_url="http://127.0.0.1:3000")))
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    facts = post["taxi_assets"]
    assert facts["run_id"] == result.run_id
    assert facts["assets"] == ["yellow/raw_file", "yellow/trips_cleaned", "yellow/trips_rejected"]  # the ingest step
    assert facts["partition"] == "2023-06"
    assert "not published" in facts["error"]
    assert facts["url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"
    # Slack-compatible: a text fallback and a mrkdwn section
    assert "yellow/raw_file" in post["text"] and "2023-06" in post["text"]
    assert post["blocks"][0]["text"]["type"] == "mrkdwn" and result.run_id in post["blocks"][0]["text"]["text"]


def test_run_failure_alert_without_webhook_posts_nothing(pipeline: Pipeline, receiver: Receiver):
    result = pipeline.run("yellow", "2023-07", raise_on_error=False)
    run_failure_alert_sensor(failure_context(pipeline, result, AlertWebhook(url="")))
    assert receiver.posts == []


def test_asset_check_failure_alert(receiver: Receiver):
    """A real run whose (non-blocking) check fails: the check sensor posts it once, with its figures."""
    partitions = dg.MonthlyPartitionsDefinition(start_date="2023-01-01")

    @dg.asset(key=["yellow", "trips_table"], partitions_def=partitions)
    def trips_table() -> None:
        return None

    @dg.asset_check(asset=trips_table, name="matches_lake")
    def matches_lake() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, metadata={"warehouse_rows": 10, "lake_rows": 12})

    defs = dg.Definitions(
        assets=[trips_table],
        asset_checks=[matches_lake],
        sensors=[asset_check_alert_sensor],
        resources={"alerts": AlertWebhook(url=receiver.url)},
    )
    sensor = defs.get_sensor_def("taxi_asset_check_alert")
    with dg.instance_for_test() as instance:
        hook = {"alerts": AlertWebhook(url=receiver.url)}
        start = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, resources=hook))
        assert start.cursor is not None
        run = dg.materialize([trips_table, matches_lake], instance=instance, partition_key="2023-02-01")
        assert run.success  # a non-blocking check does not fail the run: only this sensor tells
        after = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=start.cursor, definitions=defs, resources=hook))
        # the next tick, from the advanced cursor, sends nothing again
        sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=after.cursor, definitions=defs, resources=hook))
        check_keys = list(defs.resolve_asset_graph().asset_check_keys)
        found, _ = check_failure_alerts(instance, check_keys, None)
    assert len(receiver.posts) == 1
    facts = receiver.posts[0]["taxi_assets"]
    assert facts["assets"] == ["yellow/trips_table"]
    assert facts["partition"] == "2023-02-01"
    assert facts["run_id"] == run.run_id
    assert "matches_lake" in facts["error"] and "warehouse_rows=10" in facts["error"]
    assert len(found) == 1
