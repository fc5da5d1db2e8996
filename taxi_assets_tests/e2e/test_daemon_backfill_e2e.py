"""End to end, as a user would: the real `dagster code-server`, `dagster-webserver` and
`dagster-daemon` processes on Postgres storage (the deployment's own dagster.yaml and the
workspace.yaml shape), the code location pointed at a local TLC mirror, the Postgres warehouse.

1. An asset backfill of three months for two services, launched through the GraphQL API as the UI
   does: every month lands once, and the warehouse holds exactly the lake's rows.
2. Three more months, with the daemon SIGKILLed half-way and restarted: the backfill finishes, every
   month is materialized exactly once, and no row is duplicated.
3. Two months queued by `make backfill`'s program (`devtools.backfill`: one run over both months,
   queued as `dagster job launch` queues it): the run exists as soon as it returns, and the daemon lands every
   month once, each month's assets and checks recorded for that month.

The `stack` fixture is session-scoped and shared with test_ui_browser.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import requests
import yaml
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from devtools.backfill import BACKFILL_TAG, RANGE_END_TAG, RANGE_START_TAG
from devtools.generator import build_mirror
from devtools.mirror import MirrorServer
from taxi_assets.tlc.months import parse_month
from taxi_assets_tests import conftest
from taxi_assets_tests.postgres_server import create_database, drop_database

if "taxi_assets_tests.postgres_server" not in getattr(conftest, "pytest_plugins", ()):
    from taxi_assets_tests.postgres_server import postgres_url  # noqa: F401 - the fixture, until conftest loads the plugin

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts"

SERVICES = ["yellow", "green"]
FIRST_MONTHS = ["2023-01", "2023-02", "2023-03"]
KILL_MONTHS = ["2023-04", "2023-05", "2023-06"]
SPARE_MONTH = "2023-07"  # in the mirror, run by no backfill: for a test that needs a run of its own
CLI_MONTHS = ["2023-08", "2023-09"]  # queued by `make backfill`'s program, not the UI
ROWS = 3_000
TRIP_ASSETS = ["raw_file", "trips_cleaned", "trips_rejected", "trips_table", "rejects_summary", "daily_zone_mart"]
LOCATION = "taxi_assets"

pytestmark = pytest.mark.timeout(600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    popen: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> Proc:
        self.starts += 1
        log = open(self.log_dir / f"{self.name}-{self.starts}.log", "wb")  # noqa: SIM115 - closed with the process
        self.popen = subprocess.Popen(
            self.args, env=self.env, cwd=self.log_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopping it stops what it spawned
        )
        log.close()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            self.popen.wait(30)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(5)  # the code server would wait up to 60 s for open RPCs
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Stack:
    url: str  # the webserver
    home: Path
    env: dict[str, str]
    instance: dg.DagsterInstance
    warehouse_url: str
    lake: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    first_backfill: str | None = None

    def gql(self, query: str, variables: dict | None = None) -> dict:
        resp = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        assert resp.ok, f"GraphQL {resp.status_code}: {resp.text[:2000]}"
        body = resp.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def launch_run(self, job: str) -> str:
        data = self.gql(LAUNCH_RUN, {"p": {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": job}}})
        result = data["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def wait_run(self, run_id: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.gql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1)
        raise TimeoutError(f"run {run_id} did not finish in {timeout}s")

    def launch_backfill(self, services: list[str], months: list[str]) -> str:
        """An asset backfill over a range of months for every trip asset of the services."""
        by_asset = [
            {"assetKey": {"path": [svc, name]}, "partitions": {"range": {"start": months[0], "end": months[-1]}}}
            for svc in services
            for name in TRIP_ASSETS
        ]
        result = self.gql(LAUNCH_BACKFILL, {"p": {"partitionsByAssets": by_asset, "title": f"{'+'.join(services)} {months[0]}..{months[-1]}"}})
        result = result["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        return result["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        return self.gql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]

    def backfill_runs(self, backfill_id: str, tag: str = "dagster/backfill") -> list[dg.DagsterRun]:
        return list(self.instance.get_runs(dg.RunsFilter(tags={tag: backfill_id})))

    def failures(self, backfill_id: str) -> str:
        """The errors of a backfill's failed runs, for assertion messages."""
        lines = []
        for run in self.backfill_runs(backfill_id):
            if run.status != dg.DagsterRunStatus.SUCCESS:
                lines.append(f"run {run.run_id} {run_month(run)} {run.status}")
                lines.extend(self.run_errors(run.run_id))
        return "\n".join(lines) or "no failed run"

    def run_errors(self, run_id: str) -> list[str]:
        """A run's failure events and its engine events (a run worker that died says so there)."""
        lines = []
        for entry in self.instance.all_logs(run_id):
            event = entry.dagster_event
            if event is not None and (event.is_failure or event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE", "ENGINE_EVENT")):
                error = getattr(event.event_specific_data, "error", None)
                lines.append(f"  {event.event_type_value} {event.step_key}: {entry.message} {error.to_string() if error else ''}"[:3000])
        return lines

    def run_succeeds(self, run_id: str, timeout: float = 180) -> None:
        status = self.wait_run(run_id, timeout)
        assert status == "SUCCESS", "\n".join([f"run {run_id} {status}", *self.run_errors(run_id)])

    def timeline(self, backfill_id: str, since: float) -> str:
        """When each run of a backfill started and ended, in seconds after `since` (for the log)."""
        out = []
        for record in self.instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id})):
            run = record.dagster_run
            start = record.start_time - since if record.start_time else float("nan")
            end = record.end_time - since if record.end_time else float("nan")
            out.append(f"{run_month(run)} {run.run_id[:8]} {run.status.value} {start:5.1f}s -> {end:5.1f}s")
        return "\n".join(sorted(out, key=lambda line: line.split()[3]))

    def wait_runs(self, backfill_id: str, count: int, timeout: float = 300, tag: str = "dagster/backfill") -> list[dg.DagsterRun]:
        """Until the backfill has launched `count` runs and every one of them has finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.backfill_runs(backfill_id, tag)
            if len(runs) >= count and all(r.is_finished for r in runs):
                return runs
            time.sleep(1)
        raise TimeoutError(f"backfill {backfill_id}: runs not finished after {timeout}s:\n{self.timeline(backfill_id, time.time())}")

    def wait_backfill(self, backfill_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.backfill_status(backfill_id)
            if status in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
                return status
            time.sleep(2)
        raise TimeoutError(f"backfill {backfill_id} still {self.backfill_status(backfill_id)} after {timeout}s")

    def ensure_month(self, service: str, month: str) -> None:
        """Materialize one month (zones first) if it is not already: for tests that need data in the UI."""
        if month not in self.instance.get_materialized_partitions(dg.AssetKey([service, "daily_zone_mart"])):
            self.run_month(service, month)

    def run_month(self, service: str, month: str) -> None:
        """Run the service's monthly job for one month (zones first if they are not loaded), to success."""
        if not self.instance.get_latest_materialization_event(dg.AssetKey("taxi_zones")):
            self.run_succeeds(self.launch_run("zones"))
        data = self.gql(
            LAUNCH_RUN,
            {"p": {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": f"{service}_monthly"},
                   "executionMetadata": {"tags": [{"key": "dagster/partition", "value": month}]}}},
        )
        assert data["launchRun"]["__typename"] == "LaunchRunSuccess", data
        self.run_succeeds(data["launchRun"]["run"]["runId"])


LAUNCH_RUN = """
mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message stack }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
LAUNCH_BACKFILL = """
mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }"""
REEXECUTE = """
mutation($p: ReexecutionParams!) { launchRunReexecution(reexecutionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message stack } } }"""
BACKFILL_STATUS = "query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename ... on PartitionBackfill { status } } }"
WORKSPACE = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _wait_http(url: str, procs: list[Proc], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.alive(), f"{p.name} exited early; see {p.log_dir}/{p.name}-{p.starts}.log"
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).ok:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def _pg_pieces(url: str) -> dict[str, str]:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return {
        "DAGSTER_PG_HOST": info.get("host", "127.0.0.1"),
        "DAGSTER_PG_PORT": str(info.get("port", 5432)),
        "DAGSTER_PG_USER": info.get("user", "postgres"),
        "DAGSTER_PG_PASSWORD": info.get("password", ""),
        "DAGSTER_PG_DB": info["dbname"],
    }


_SHARED: dict = {"users": 0, "stack": None, "cm": None}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Stack]:  # noqa: F811
    """One stack per session, also when another test module imports this fixture (pytest then makes
    a fixture of its own from it): the first user starts it, the last one stops it."""
    if _SHARED["users"] == 0:
        cm = _running_stack(tmp_path_factory, postgres_url)
        _SHARED.update(stack=cm.__enter__(), cm=cm)
    _SHARED["users"] += 1
    try:
        yield _SHARED["stack"]
    finally:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0:
            cm, _SHARED["cm"], _SHARED["stack"] = _SHARED["cm"], None, None
            cm.__exit__(None, None, None)


@contextlib.contextmanager
def _running_stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Stack]:  # noqa: F811
    root = tmp_path_factory.mktemp("stack")
    logs = ARTIFACTS / "dagster-stack"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    build_mirror(root / "mirror", SERVICES, [*FIRST_MONTHS, *KILL_MONTHS, SPARE_MONTH, *CLI_MONTHS], "parquet", ROWS)
    dagster_db = create_database(postgres_url, "taxi_e2e_dagster")
    warehouse_db = create_database(postgres_url, "taxi_e2e_warehouse")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")  # the deployment's instance, as is
    grpc_port, web_port = _free_port(), _free_port()
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())  # the deployment's shape, local address
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=grpc_port)
    (home / "workspace.yaml").write_text(yaml.safe_dump(workspace))

    with MirrorServer(root / "mirror", missing_status=403) as mirror, pytest.MonkeyPatch.context() as mp:
        instance_env = _pg_pieces(dagster_db)
        env = {
            **os.environ,
            **instance_env,
            "DAGSTER_HOME": str(home),
            "TAXI_SOURCE_URL": f"{mirror.url}/trip-data",
            "TAXI_ZONES_URL": f"{mirror.url}/misc/taxi_zone_lookup.csv",
            "TAXI_LAKE_URI": str(root / "lake"),
            "TAXI_WAREHOUSE": "postgres",
            "TAXI_POSTGRES_URL": warehouse_db,
            "TAXI_WAREHOUSE_SCHEMA": "ny_taxi",
            "TAXI_AUTOMATION_DEFAULT_STATUS": "stopped",  # only the backfills run here
            "TAXI_ALERT_WEBHOOK_URL": "",
            "PYTHONUNBUFFERED": "1",
        }
        for k, v in instance_env.items():
            mp.setenv(k, v)
        instance = dg.DagsterInstance.from_config(str(home))
        # What the compose `dagster-init` service does: pool limits.
        instance.event_log_storage.set_concurrency_slots("tlc_downloads", 3)
        instance.event_log_storage.set_concurrency_slots("warehouse_writes", 1)
        ws = str(home / "workspace.yaml")
        procs = {
            "code-server": Proc("code-server", [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc_port), "-m", "taxi_assets.definitions"], env, logs),
            "webserver": Proc("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", ws], env, logs),
            "daemon": Proc("daemon", [str(BIN / "dagster-daemon"), "run", "-w", ws], env, logs),
        }
        s = Stack(f"http://127.0.0.1:{web_port}", home, env, instance, warehouse_db, root / "lake", procs)
        try:
            procs["code-server"].start()
            time.sleep(1)
            procs["webserver"].start()
            procs["daemon"].start()
            _wait_http(f"{s.url}/server_info", list(procs.values()))
            deadline = time.monotonic() + 120
            while True:
                entries = s.gql(WORKSPACE)["workspaceOrError"]["locationEntries"]
                loaded = [e for e in entries if e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"]
                if loaded:
                    break
                assert time.monotonic() < deadline, entries
                time.sleep(1)
            yield s
        finally:
            for p in reversed(list(procs.values())):
                p.stop()
            instance.dispose()
            for db in (dagster_db, warehouse_db):
                with contextlib.suppress(Exception):
                    drop_database(db, postgres_url)


# -- checks -------------------------------------------------------------------------------------
def run_month(run: dg.DagsterRun) -> str:
    """A run's month, from its `dagster/partition` tag: a backfill launches one month per run, tagged
    like a scheduled run, not with a one-month range (whose checks Dagster records without a month)."""
    assert "dagster/partition" in run.tags, f"run {run.run_id} carries no month: {sorted(run.tags.items())}"
    return run.tags["dagster/partition"]


def warehouse_count(stack: Stack, table: str, month: str | None = None) -> int:
    with psycopg.connect(stack.warehouse_url) as conn:
        if month is None:
            return conn.execute(f'SELECT COUNT(*) FROM ny_taxi."{table}"').fetchone()[0]
        return conn.execute(f'SELECT COUNT(*) FROM ny_taxi."{table}" WHERE source_month = %s', [parse_month(month)]).fetchone()[0]


def mart_trips(stack: Stack, service: str, month: str) -> int:
    with psycopg.connect(stack.warehouse_url) as conn:
        return int(conn.execute(
            f'SELECT COALESCE(SUM(trips), 0) FROM ny_taxi."{service}_daily_zone_mart" WHERE source_month = %s', [parse_month(month)]
        ).fetchone()[0])


def lake_rows(stack: Stack, service: str, month: str) -> int:
    return json.loads((stack.lake / "trips" / service / "_manifests" / f"{month}.json").read_text())["rows"]


def assert_months_landed_once(stack: Stack, months: list[str]) -> None:
    for service in SERVICES:
        for month in months:
            for name in TRIP_ASSETS:
                records = stack.instance.fetch_materializations(
                    dg.AssetRecordsFilter(dg.AssetKey([service, name]), asset_partitions=[month]), limit=10
                ).records
                assert len(records) == 1, f"{service}/{name} {month}: materialized {len(records)} times"
            expected = lake_rows(stack, service, month)
            assert expected > ROWS * 0.8
            assert warehouse_count(stack, f"{service}_trips", month) == expected, (service, month)
            assert mart_trips(stack, service, month) == expected, (service, month)


#: Every check of a service's month, on the asset it checks.
MONTH_CHECKS = {
    "trips_cleaned": ["audit", "reconciles_with_raw", "keys_not_null", "pickups_within_month"],
    "trips_table": ["matches_lake"],
    "daily_zone_mart": ["trips_add_up"],
}


def assert_checks_recorded_per_month(stack: Stack, months: list[str]) -> None:
    """Each month's checks passed *for that month*: what the UI shows on the check's partitions and
    on the month's asset page. (A run tagged with a range left them planned, shown as skipped.)"""
    for service in SERVICES:
        keys = [dg.AssetCheckKey(dg.AssetKey([service, asset]), name) for asset, names in MONTH_CHECKS.items() for name in names]
        infos = stack.instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=months)
        status = {(i.check_key.name, i.partition_key): i.latest_execution_status for i in infos}
        for key in keys:
            for month in months:
                got = status.get((key.name, month))
                assert got == AssetCheckExecutionRecordStatus.SUCCEEDED, f"{key.to_user_string()} {month}: {got}"
        unpartitioned = stack.instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=None)
        assert not [i for i in unpartitioned if i.partition_key is None], f"{service}: a check recorded without its month"


def assert_no_duplicates(stack: Stack, months: list[str]) -> None:
    for service in SERVICES:
        total = sum(lake_rows(stack, service, m) for m in months)
        assert warehouse_count(stack, f"{service}_trips") == total, service
        with psycopg.connect(stack.warehouse_url) as conn:
            # the mart's key: one row per source month, pickup day and pickup zone
            dupes = conn.execute(
                f'SELECT COUNT(*) FROM (SELECT source_month, pickup_date, pickup_location_id '
                f'FROM ny_taxi."{service}_daily_zone_mart" GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) d'
            ).fetchone()[0]
        assert dupes == 0, service


# -- the tests --------------------------------------------------------------------------------
def test_asset_backfill_through_graphql(stack: Stack):
    started = time.monotonic()
    stack.run_succeeds(stack.launch_run("zones"))
    launched = time.time()
    backfill = stack.launch_backfill(SERVICES, FIRST_MONTHS)
    stack.first_backfill = backfill
    # The runs finishing is what a user waits for; the backfill daemon marks the backfill complete
    # on its next 30-second iteration, which the next test checks rather than waiting here.
    runs = stack.wait_runs(backfill, len(FIRST_MONTHS) * len(SERVICES))
    assert stack.backfill_status(backfill) not in ("FAILED", "COMPLETED_FAILED", "CANCELED"), stack.failures(backfill)
    assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
    # one run per service and month: the whole chain of a month runs in one run (same backfill policy)
    assert sorted(run_month(r) for r in runs) == sorted(m for m in FIRST_MONTHS for _ in SERVICES)
    assert_months_landed_once(stack, FIRST_MONTHS)
    assert_checks_recorded_per_month(stack, FIRST_MONTHS)
    assert_no_duplicates(stack, FIRST_MONTHS)
    print(f"backfill of {len(FIRST_MONTHS)} months x {len(SERVICES)} services: {time.monotonic() - started:.0f}s")
    print(stack.timeline(backfill, launched))


def test_backfill_survives_daemon_sigkill(stack: Stack):
    if not stack.instance.get_latest_materialization_event(dg.AssetKey("taxi_zones")):
        stack.run_succeeds(stack.launch_run("zones"))
    launched = time.time()
    backfill = stack.launch_backfill(SERVICES, KILL_MONTHS)
    daemon = stack.procs["daemon"]
    # half-way: a first run has finished, others are still running or queued
    deadline = time.monotonic() + 180
    while True:
        runs = stack.backfill_runs(backfill)
        if any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs):
            break
        assert not any(r.status == dg.DagsterRunStatus.FAILURE for r in runs), stack.failures(backfill)
        assert time.monotonic() < deadline, "no run of the backfill finished"
        time.sleep(0.5)
    done_before_kill = sum(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    daemon.kill(signal.SIGKILL)
    killed_at = time.time()
    assert not daemon.alive()
    time.sleep(5)
    assert stack.backfill_status(backfill) == "REQUESTED"  # nobody is driving it now
    daemon.start()
    # A run the daemon was handing to the code server when it died stays STARTING until run monitoring
    # fails it (the deployment's start_timeout_seconds) and run retries launch it again: allow for it.
    monitoring = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())["run_monitoring"]
    recovery = monitoring["start_timeout_seconds"] + monitoring["poll_interval_seconds"] + 180
    assert stack.wait_backfill(backfill, timeout=recovery) in ("COMPLETED", "COMPLETED_SUCCESS"), stack.failures(backfill)
    first = getattr(stack, "first_backfill", None)
    if first:  # the first test's backfill was completed by the daemon meanwhile
        assert stack.wait_backfill(first, timeout=60) in ("COMPLETED", "COMPLETED_SUCCESS"), stack.failures(first)
    runs = stack.backfill_runs(backfill)
    succeeded = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
    retried = {r.tags.get("dagster/parent_run_id") for r in succeeded}
    # any other run is one the kill left starting: failed by run monitoring, and retried successfully
    assert all(r.status == dg.DagsterRunStatus.FAILURE and r.run_id in retried for r in runs if r.status != dg.DagsterRunStatus.SUCCESS), \
        [(r.run_id, r.status, r.tags.get("dagster/parent_run_id")) for r in runs]
    # one successful run per month, whatever the daemon was doing when it died
    assert sorted(run_month(r) for r in succeeded) == sorted(m for m in KILL_MONTHS for _ in SERVICES)
    assert_months_landed_once(stack, KILL_MONTHS)
    assert_checks_recorded_per_month(stack, KILL_MONTHS)
    assert_no_duplicates(stack, FIRST_MONTHS + KILL_MONTHS if _first_loaded(stack) else KILL_MONTHS)
    print(f"runs finished before the kill: {done_before_kill} of {len(runs)}; killed at {killed_at - launched:.0f}s; "
          f"backfill complete at {time.time() - launched:.0f}s")
    print(stack.timeline(backfill, launched))


def _first_loaded(stack: Stack) -> bool:
    return FIRST_MONTHS[0] in stack.instance.get_materialized_partitions(dg.AssetKey([SERVICES[0], "trips_table"]))


def test_make_backfill_queues_its_months_in_one_run_for_the_daemon(stack: Stack):
    """`make backfill`'s default: consecutive months in one run (up to MONTHS_PER_RUN), each month recorded on its own."""
    if not stack.instance.get_latest_materialization_event(dg.AssetKey("taxi_zones")):
        stack.run_succeeds(stack.launch_run("zones"))
    backfills = []
    for service in SERVICES:
        done = subprocess.run(
            [sys.executable, "-m", "devtools.backfill", "--service", service, "--months", f"{CLI_MONTHS[0]}..{CLI_MONTHS[-1]}",
             "--workspace", str(stack.home / "workspace.yaml")],
            env=stack.env, cwd=REPO, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"queued 1 run(s) of {service}_monthly, {CLI_MONTHS[0]}..{CLI_MONTHS[-1]}" in done.stdout, done.stdout
        assert "no dagster-daemon" not in done.stdout  # the stack's daemon is serving the queue
        backfill = done.stdout.split("backfill ")[1].split()[0]
        # Queued by the command itself: the run is there before any backfill daemon loop came by.
        queued = stack.backfill_runs(backfill, BACKFILL_TAG)
        assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in queued] == [(CLI_MONTHS[0], CLI_MONTHS[-1])]
        assert all(r.remote_job_origin.location_name == LOCATION for r in queued)
        backfills.append(backfill)
    for backfill in backfills:
        runs = stack.wait_runs(backfill, 1, tag=BACKFILL_TAG)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), "\n".join(
            line for r in runs for line in stack.run_errors(r.run_id)
        )
    assert_months_landed_once(stack, CLI_MONTHS)
    assert_checks_recorded_per_month(stack, CLI_MONTHS)
    # The run was made from a code location loaded in the command's own process, not the UI's code
    # server: the UI's "Re-execute" still finds its job, and the months are replaced, not added to.
    [first] = stack.backfill_runs(backfills[0], BACKFILL_TAG)
    again = stack.gql(REEXECUTE, {"p": {"parentRunId": first.run_id, "strategy": "ALL_STEPS"}})["launchRunReexecution"]
    assert again["__typename"] == "LaunchRunSuccess", again
    stack.run_succeeds(again["run"]["runId"])
    for month in CLI_MONTHS:
        for name in TRIP_ASSETS:  # published again by the re-execution, each month on its own
            records = stack.instance.fetch_materializations(
                dg.AssetRecordsFilter(dg.AssetKey([SERVICES[0], name]), asset_partitions=[month]), limit=10
            ).records
            assert sorted(r.run_id for r in records) == sorted([first.run_id, again["run"]["runId"]]), (name, month)
        expected = lake_rows(stack, SERVICES[0], month)
        assert warehouse_count(stack, f"{SERVICES[0]}_trips", month) == expected, month
        assert mart_trips(stack, SERVICES[0], month) == expected, month
