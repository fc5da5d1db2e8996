"""`make backfill`: a range of months of one service, several months a run, queued at once.

A backfill launched from the UI is an asset backfill: the backfill daemon turns it into runs on its
next loop, which comes every 30 s (Dagster's fixed interval, not an instance setting), so the first
month starts up to half a minute after the click, and each month is a run of its own. This queues
the runs itself, as Dagster's own `dagster job launch` does but all from one load of the code
location: the daemon's run queue starts the first within a second and keeps `MAX_RUNS` going. Each
run carries up to `--months-per-run` consecutive months (12 by default): a run's start-up (a Python
spawned, Dagster and the code location loaded, ~2 core-seconds) is then paid once per range instead
of once per month, which was most of a backfill's overhead (benchmarks/README.md). The run's ingest
step carries each month through the whole chain and records every asset and check of the month as it
lands (taxi_assets/defs/assets/ranged.py), so each month keeps its own status in the UI; a month that
fails is that month's alone: the run goes on to the next, and ends failed naming it. The runs carry
the tag `taxi/backfill` (the UI's Runs page filters on it). `--months-per-run 1` queues one run a month instead, as a job
backfill (`dagster job backfill`) listed under Backfills.

The months are checked here first, so a typo fails with the service and month named and nothing queued.
On an instance that has not loaded the zone lookup yet (every month's cleaning needs it), the zones
job is queued first and waited for, so the months do not all fail on it.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click
import dagster as dg
# `dagster job launch`'s own pieces: the CLI takes one run per command, each loading the code location.
from dagster._cli.job import _create_run
from dagster._cli.workspace.cli_target import (
    get_code_location_from_workspace,
    get_remote_job_from_remote_repo,
    get_remote_repository_from_code_location,
    get_workspace_from_cli_opts,
)
from dagster_shared.cli import WorkspaceOpts

from taxi_assets.defs.assets.zones import taxi_zone_lookup, taxi_zones
from taxi_assets.defs.jobs import ZONES_JOB, service_job_name
from taxi_assets.defs.partitions import monthly_partitions
from taxi_assets.tlc.months import month_range
from taxi_assets.tlc.services import get_service


def backfill_months(service_name: str, spec: str) -> list[str]:
    """The months of `spec` ('2023-01..2023-12' or a comma list) for the service, in order; a
    ValueError naming the service and the month when one is not a month the service has."""
    service = get_service(service_name)
    if not spec.strip():
        raise ValueError(f"{service.name}: no months given (MONTHS=YYYY-MM..YYYY-MM or a comma list)")
    try:
        months = month_range(spec)
    except ValueError as exc:
        raise ValueError(f"{service.name}: {exc}") from None
    if not months:
        raise ValueError(f"{service.name}: no month in {spec!r} (a range runs from its first month to its last)")
    keys = monthly_partitions(service).get_partition_keys()
    outside = [m for m in months if m not in keys]
    if outside:
        raise ValueError(
            f"{service.name}: {', '.join(outside)} not among its months ({keys[0]}..{keys[-1]}: from its first "
            "month with zone ids to the last complete month)"
        )
    return sorted(set(months))


#: Months a run carries unless told: a run's start-up (~2 core-seconds, ~3 s of a run slot on two busy
#: cores) is paid once per run, and a month that fails is that month's alone (ranged.py), so a run can
#: be long: 24 months are two runs, side by side on `make`'s two run slots (0.91-0.98x the wall of four
#: runs of 6, alternated, in the twenty-ninth pass of benchmarks/JOURNAL.md).
MONTHS_PER_RUN = 12
#: The tag every run of one `make backfill` carries (a ranged run belongs to no Dagster backfill).
BACKFILL_TAG = "taxi/backfill"
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def month_runs(service_name: str, months: list[str], per_run: int) -> list[list[str]]:
    """The months in runs of at most `per_run` consecutive months (a run's range takes every month
    between its ends, so a gap in a list starts a new run), each stretch split into runs of even
    length, so no run of one month is left to finish alone after the others."""
    keys = monthly_partitions(get_service(service_name)).get_partition_keys()
    stretches: list[list[str]] = []
    for month in months:
        if stretches and keys.index(month) == keys.index(stretches[-1][-1]) + 1:
            stretches[-1].append(month)
        else:
            stretches.append([month])
    runs: list[list[str]] = []
    for stretch in stretches:
        count = -(-len(stretch) // per_run)
        size, longer = divmod(len(stretch), count)
        start = 0
        for k in range(count):
            end = start + size + (k < longer)
            runs.append(stretch[start:end])
            start = end
    return runs


class LaunchError(Exception):
    """Why no run could be queued."""


class JobLauncher:
    """Runs queued from one load of the code location, as `dagster job launch` queues each.

    The code location is loaded once for every run it queues, instead of once a run, and in this
    process when the workspace's Python is this one (as `dg check defs` loads it): a code server of
    its own cost 2.5-2.8 s more before the first run was queued, against 0.2-0.3 s in process. The
    runs are made as the CLI makes them (`dagster._cli.job._create_run`): the same job snapshot,
    execution plan and job origin (code location name, repository, job), which is all make dev's
    daemon reads to launch a run from its own code server.
    """

    def __init__(self, instance: dg.DagsterInstance, workspace: Path | None):
        self.instance = instance
        self._opts = WorkspaceOpts(workspace=[str(workspace)]) if workspace else WorkspaceOpts()

    def __enter__(self) -> JobLauncher:
        with contextlib.ExitStack() as stack:
            try:  # (the CLI's helpers say what went wrong as a click.UsageError)
                self.workspace = stack.enter_context(
                    get_workspace_from_cli_opts(self.instance, dg.__version__, self._opts, allow_in_process=True)
                )
                self.location = get_code_location_from_workspace(self.workspace, None)
            except click.UsageError as exc:
                raise LaunchError(f"the code location did not load: {exc.message.strip()}") from None
            self.repository = get_remote_repository_from_code_location(self.location, None)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def launch(self, job: str, tags: dict[str, str]) -> str:
        """Queue one run of `job`; its run id."""
        remote_job = get_remote_job_from_remote_repo(self.repository, job)
        run = _create_run(self.instance, self.location, self.repository, remote_job, {}, tags, None, None)
        return self.instance.submit_run(run.run_id, self.workspace).run_id


def queue_month_runs(launcher: JobLauncher, job: str, runs: list[list[str]]) -> tuple[str, str | None]:
    """Queue each run; the backfill's id, and why not when one failed."""
    backfill_id = uuid.uuid4().hex[:8]
    for queued, months in enumerate(runs):
        tags = {BACKFILL_TAG: backfill_id}
        if len(months) == 1:
            tags["dagster/partition"] = months[0]
        else:
            tags.update({RANGE_START_TAG: months[0], RANGE_END_TAG: months[-1]})
        try:
            launcher.launch(job, tags)
        except Exception as exc:  # noqa: BLE001 - whatever Dagster raised, said with what was queued
            return backfill_id, (f"{job} {months[0]}..{months[-1]} was not queued ({queued} run(s) before it were, "
                                 f"tag {BACKFILL_TAG}={backfill_id}): {type(exc).__name__}: {exc}")
    return backfill_id, None


#: How long to wait for a daemon's first heartbeat when one is needed: `make dev` started a moment
#: ago may not have reported yet.
DAEMON_WAIT_SECONDS = 30


def daemon_running(instance: dg.DagsterInstance, wait: float = 0) -> bool:
    """Whether a dagster-daemon (make dev's, make dev-offline's) is serving this instance's run queue,
    waiting up to `wait` seconds for it to report."""
    deadline = time.monotonic() + wait
    while not instance.get_daemon_statuses(["QUEUED_RUN_COORDINATOR"])["QUEUED_RUN_COORDINATOR"].healthy:
        if time.monotonic() >= deadline:
            return False
        time.sleep(1)
    return True


def zones_loaded(instance: dg.DagsterInstance) -> bool:
    return all(instance.get_latest_materialization_event(asset.key) for asset in (taxi_zone_lookup, taxi_zones))


def load_zones(launcher: JobLauncher, timeout: float = 600) -> str | None:
    """Queue the zones job and wait for it; None when it succeeded, else why not."""
    instance = launcher.instance
    try:
        run_id = launcher.launch(ZONES_JOB.name, {})
    except Exception as exc:  # noqa: BLE001 - whatever Dagster raised, said
        return f"the zones job was not queued: {type(exc).__name__}: {exc}"
    deadline = time.monotonic() + timeout
    while (run := instance.get_run_by_id(run_id)) is None or not run.is_finished:
        if time.monotonic() > deadline:
            return f"the zones run {run_id} did not finish within {timeout:.0f} s"
        time.sleep(1)
    return None if run.is_success else f"the zones run {run_id} ended {run.status.value} (its events are in the UI)"


def _dagster() -> str:
    return str(Path(sys.executable).parent / "dagster")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True, help="yellow, green, fhv or fhvhv")
    parser.add_argument("--months", required=True, help="YYYY-MM..YYYY-MM or a comma list")
    parser.add_argument("--months-per-run", type=int, default=MONTHS_PER_RUN,
                        help=f"consecutive months a run carries (default {MONTHS_PER_RUN}; 1: one run a month, a job backfill)")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="a workspace.yaml (default: the project's code location, as make dev loads it)")
    args = parser.parse_args(argv)
    try:
        months = backfill_months(args.service, args.months)
        if args.months_per_run < 1:
            raise ValueError(f"{args.service}: --months-per-run must be 1 or more, not {args.months_per_run}")
    except ValueError as exc:
        print(f"make backfill: {exc}; nothing was queued", file=sys.stderr)
        return 2
    job = service_job_name(args.service)
    with dg.DagsterInstance.get() as instance:
        # Submitted runs are launched at once by any other coordinator, from the code location this
        # command loads and then drops: only a queue hands them to the daemon's own code server.
        if not isinstance(instance.run_coordinator, dg.QueuedRunCoordinator):
            print("make backfill: this instance has no run queue (run_coordinator in $DAGSTER_HOME/dagster.yaml); "
                  "launch the backfill from the UI instead; nothing was queued", file=sys.stderr)
            return 2
        need_zones = not zones_loaded(instance)
        if need_zones and not daemon_running(instance, wait=DAEMON_WAIT_SECONDS):
            print("make backfill: the zone lookup is not loaded on this instance yet, and no dagster-daemon is "
                  "running to load it first: start `make dev` (or `make dev-offline`) and run this again; "
                  "nothing was queued", file=sys.stderr)
            return 2
        if need_zones or args.months_per_run > 1:
            try:
                with JobLauncher(instance, args.workspace) as launcher:
                    if need_zones:
                        print("the zone lookup is not loaded yet: running the zones job first")
                        if (failed := load_zones(launcher)) is not None:
                            print(f"make backfill: {failed}; no month was queued", file=sys.stderr)
                            return 1
                    if args.months_per_run > 1:
                        runs = month_runs(args.service, months, args.months_per_run)
                        backfill_id, failed = queue_month_runs(launcher, job, runs)
                        if failed is not None:
                            print(f"make backfill: {failed}", file=sys.stderr)
                            return 1
                        print(f"queued {len(runs)} run(s) of {job}, {months[0]}..{months[-1]}, up to {args.months_per_run} "
                              f"months each: backfill {backfill_id} (the UI: Runs, tag {BACKFILL_TAG}={backfill_id})")
            except LaunchError as exc:
                print(f"make backfill: {exc}; nothing was queued", file=sys.stderr)
                return 1
        if args.months_per_run == 1:
            workspace = ["-w", str(args.workspace)] if args.workspace else []
            command = [_dagster(), "job", "backfill", *workspace, "-j", job, "--partitions", ",".join(months), "--noprompt"]
            done = subprocess.run(command, capture_output=True, text=True)
            launched = re.search(r"Launched backfill job `([^`]+)`", done.stdout)
            if done.returncode or not launched:
                print(f"make backfill: {job} {months[0]}..{months[-1]} was not queued:\n{done.stdout}{done.stderr}",
                      file=sys.stderr)
                return done.returncode or 1
            print(f"queued {len(months)} run(s) of {job}, {months[0]}..{months[-1]}, one month each: "
                  f"backfill {launched.group(1)} (the UI: Runs -> Backfills)")
        if not daemon_running(instance):
            print("no dagster-daemon is serving this instance: the runs wait in the queue until `make dev` "
                  "(or `make dev-offline`) starts one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
