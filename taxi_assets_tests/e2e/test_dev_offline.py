"""`make dev-offline` as a user runs it: the UI comes up with no internet; `make backfill` on the
fresh instance loads the zones first and then its month; a month nobody generated is launched
through the webserver and lands; and Ctrl-C stops the mirror with the UI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from devtools.backfill import BACKFILL_TAG

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def backfill_month_succeeds(home: Path, backfill_id: str) -> str:
    """The month of a one-month `make backfill`'s run, once the daemon ran it to success."""
    import dagster as dg

    deadline = time.monotonic() + 180
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while True:
            runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
            if runs and runs[0].is_finished:
                assert runs[0].is_success, runs[0].status
                return runs[0].tags["dagster/partition"]
            assert time.monotonic() < deadline, f"backfill {backfill_id}: {[r.status for r in runs]}"
            time.sleep(1)


@pytest.mark.timeout(420)
def test_make_dev_offline_loads_a_month_launched_through_the_webserver(tmp_path: Path):
    from dagster_graphql import DagsterGraphQLClient

    data, home = tmp_path / "data", tmp_path / "dagster_home"
    mirror_port, ui_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXI_")}
    env.update(TAXI_DATA_DIR=str(data), DAGSTER_HOME=str(home))
    make = subprocess.Popen(
        ["make", "-s", "dev-offline", f"MIRROR_PORT={mirror_port}", f"DEV_PORT={ui_port}"], cwd=REPO, env=env,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{ui_port}/server_info", 120)
        client = DagsterGraphQLClient("127.0.0.1", port_number=ui_port)
        queued = subprocess.run(["make", "-s", "backfill", "SERVICE=green", "MONTHS=2016-12"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=300)
        assert queued.returncode == 0, queued.stdout + queued.stderr
        assert "running the zones job first" in queued.stdout, queued.stdout
        backfill_id = queued.stdout.split(": backfill ")[1].split()[0]
        assert backfill_month_succeeds(home, backfill_id) == "2016-12"
        for job, tags in (("zones", {}), ("green_monthly", {"dagster/partition": "2016-11"})):
            run_id = client.submit_job_execution(job, tags=tags)
            deadline = time.monotonic() + 120
            while (status := client.get_run_status(run_id).value) not in ("SUCCESS", "FAILURE", "CANCELED"):
                assert time.monotonic() < deadline, f"{job} still {status}"
                time.sleep(1)
            assert status == "SUCCESS", job
        generated = data / "mirror" / "parquet" / "trip-data" / "green_tripdata_2016-11.parquet"
        assert (data / "lake" / "raw" / "green" / "2016-11" / generated.name).read_bytes() == generated.read_bytes()
        assert (data / "warehouse.duckdb").exists()
    finally:
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal
        try:
            make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{mirror_port}/misc/taxi_zone_lookup.csv", timeout=2)
