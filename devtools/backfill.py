"""`make backfill`: a range of months of one service, each month its own run, queued at once.

A backfill launched from the UI is an asset backfill: the backfill daemon turns it into runs on its
next loop, which comes every 30 s (Dagster's fixed interval, not an instance setting), so the first
month starts up to half a minute after the click. This queues the runs itself, through Dagster's own
`dagster job backfill` (a job backfill of `<service>_monthly`): the daemon's run queue starts the
first month within a second and keeps `MAX_RUNS` going. The UI lists it under Backfills like any
other, and each run is tagged with its month like a scheduled run, so every month's assets and checks
keep their own status.

The months are checked here first, so a typo fails with the service and month named and nothing queued.
On an instance that has not loaded the zone lookup yet (every month's cleaning needs it), the zones
job is queued first and waited for, so the months do not all fail on it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg

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


def load_zones(instance: dg.DagsterInstance, workspace: list[str], timeout: float = 600) -> str | None:
    """Queue the zones job and wait for it; None when it succeeded, else why not."""
    run_id = str(uuid.uuid4())
    done = subprocess.run([_dagster(), "job", "launch", *workspace, "-j", ZONES_JOB.name, "--run-id", run_id],
                          capture_output=True, text=True)
    if done.returncode:
        return f"the zones job was not queued:\n{done.stdout}{done.stderr}"
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
    parser.add_argument("--workspace", type=Path, default=None,
                        help="a workspace.yaml (default: the project's code location, as make dev loads it)")
    args = parser.parse_args(argv)
    try:
        months = backfill_months(args.service, args.months)
    except ValueError as exc:
        print(f"make backfill: {exc}; nothing was queued", file=sys.stderr)
        return 2
    job = service_job_name(args.service)
    with dg.DagsterInstance.get() as instance:
        # Submitted runs are launched at once by any other coordinator, from the code server this
        # command starts and stops: only a queue hands them to the daemon's own.
        if not isinstance(instance.run_coordinator, dg.QueuedRunCoordinator):
            print("make backfill: this instance has no run queue (run_coordinator in $DAGSTER_HOME/dagster.yaml); "
                  "launch the backfill from the UI instead; nothing was queued", file=sys.stderr)
            return 2
        workspace = ["-w", str(args.workspace)] if args.workspace else []
        if not zones_loaded(instance):
            if not daemon_running(instance, wait=DAEMON_WAIT_SECONDS):
                print("make backfill: the zone lookup is not loaded on this instance yet, and no dagster-daemon is "
                      "running to load it first: start `make dev` (or `make dev-offline`) and run this again; "
                      "nothing was queued", file=sys.stderr)
                return 2
            print("the zone lookup is not loaded yet: running the zones job first")
            if (failed := load_zones(instance, workspace)) is not None:
                print(f"make backfill: {failed}; no month was queued", file=sys.stderr)
                return 1
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
