"""The second hour, as a new user lives it: `make demo`, then `make dev-offline`, then the UI.

- the demo prints no warning, and its runs belong to their job (the job's page lists them);
- `make dev-offline` starts without a warning;
- yellow 2023-06, a month the demo never loaded, launched through the webserver, lands in the
  lake and the warehouse, under the partition key `2023-06`;
- the mart's page shows its picture;
- and the README's command line, `dg launch ... --partition 2023-02`, is quiet and lands the month.

Screenshots go to test-artifacts/ui/ whether the checks pass or not.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from taxi_assets_tests.e2e.test_dev_offline import REPO, free_port, wait_for
from taxi_assets_tests.e2e.test_ui_browser import CHROMIUM, SHOTS, browser, open_page, shot  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.timeout(600)

WARNING = re.compile(r"warn", re.I)


def run_status(client, run_id: str, seconds: float = 180) -> str:
    deadline = time.monotonic() + seconds
    while (status := client.get_run_status(run_id).value) not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)
    return status


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: run scripts/ensure_chromium.sh")
def test_after_the_demo_the_offline_ui_loads_a_new_month_and_shows_the_demos_runs(tmp_path: Path, browser):  # noqa: F811
    from dagster_graphql import DagsterGraphQLClient

    data, home = tmp_path / "data", tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXI_")}
    env.update(TAXI_DATA_DIR=str(data), DAGSTER_HOME=str(home))
    # (installing is not the demo: a changed pyproject.toml makes `make demo` reinstall first, and pip talks)
    subprocess.run(["make", "-s", "install"], cwd=REPO, env=env, capture_output=True, check=True, timeout=600)
    demo = subprocess.run(
        ["make", "-s", "demo", "ROWS=3000", "SERVICES=yellow"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert not WARNING.search(demo.stdout + demo.stderr), demo.stdout + demo.stderr
    assert "make dev-offline" in demo.stdout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        demo_runs = [r for r in instance.get_runs() if r.job_name == "yellow_monthly"]
    assert sorted(r.tags["dagster/partition"] for r in demo_runs) == ["2023-01", "2023-02", "2023-03"]

    mirror_port, ui_port = free_port(), free_port()
    make = subprocess.Popen(
        ["make", "-s", "dev-offline", f"MIRROR_PORT={mirror_port}", f"DEV_PORT={ui_port}"], cwd=REPO, env=env,
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{ui_port}"
    page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    page.set_default_timeout(60_000)
    try:
        wait_for(f"{url}/server_info", 120)

        # the job's page lists the demo's runs
        open_page(page, f"{url}/locations/taxi_assets/jobs/yellow_monthly/runs")
        for run in demo_runs:
            page.get_by_text(run.run_id[:8]).first.wait_for()
        shot(page, "second-hour-job-runs.png", full_page=True)

        # a month the demo never loaded, launched through the webserver, keyed YYYY-MM
        client = DagsterGraphQLClient("127.0.0.1", port_number=ui_port)
        run_id = client.submit_job_execution("yellow_monthly", tags={"dagster/partition": "2023-06"})
        assert run_status(client, run_id) == "SUCCESS"
        raw = data / "lake" / "raw" / "yellow" / "2023-06" / "yellow_tripdata_2023-06.parquet"
        assert raw.read_bytes() == (data / "mirror" / "parquet" / "trip-data" / raw.name).read_bytes()
        with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
            landed = con.execute("SELECT COUNT(*) FROM ny_taxi.yellow_trips WHERE source_month = DATE '2023-06-01'").fetchone()[0]
        published = pq.ParquetFile(raw).metadata.num_rows  # the mirror's own size for a month made on request
        assert 0.8 * published < landed < published

        # the mart's page: the month's picture, an SVG the UI shows as an image
        open_page(page, f"{url}/assets/yellow/daily_zone_mart?view=events&partition=2023-06")
        page.locator("tr", has_text="chart").get_by_text("Show Markdown").click()  # the UI opens markdown in a dialog
        chart = page.locator("img[src^='data:image/svg+xml;base64,']").first
        chart.wait_for()
        assert chart.evaluate("img => img.naturalWidth") >= 800
        shot(page, "second-hour-mart-chart.png", full_page=True)
    finally:
        page.context.close()
        os.killpg(make.pid, signal.SIGINT)
        try:
            output, _ = make.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
    (SHOTS / "second-hour-dev-offline.log").write_text(output)
    assert not WARNING.search(output), output


def test_the_cli_launches_a_yyyy_mm_month_quietly(tmp_path: Path, mirror):
    """README's command line: `dg launch --job yellow_monthly --partition 2023-02` on the embedded
    default's instance config: no warning, no DEBUG flood, the month lands under key 2023-02."""
    home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAXI_", "VIRTUAL_ENV"))}
    env.update(
        DAGSTER_HOME=str(home),
        TAXI_SOURCE_URL=f"{mirror.url}/trip-data",
        TAXI_ZONES_URL=f"{mirror.url}/misc/taxi_zone_lookup.csv",
        TAXI_LAKE_URI=str(tmp_path / "lake"),
        TAXI_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"),
    )
    subprocess.run(["make", "-s", f"{home}/dagster.yaml", f"DAGSTER_HOME={home}"], cwd=REPO, env=env, check=True)
    dg_cli = str(REPO / ".venv" / "bin" / "dg")
    output = ""
    for args in (["--job", "zones"], ["--job", "yellow_monthly", "--partition", "2023-02"]):
        done = subprocess.run([dg_cli, "launch", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        output += done.stdout + done.stderr
    assert not WARNING.search(output) and " - DEBUG - " not in output, output
    assert "yellow 2023-02: read " in output  # what the step did, at INFO
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert "2023-02" in instance.get_materialized_partitions(dg.AssetKey(["yellow", "trips_table"]))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT COUNT(*) FROM ny_taxi.yellow_trips WHERE source_month = DATE '2023-02-01'").fetchone()[0] > 0
