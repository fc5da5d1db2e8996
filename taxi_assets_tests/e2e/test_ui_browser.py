"""The Dagster UI in a real headless Chromium (Debian's package, driven by Playwright through
`executable_path`; Playwright's own browser download is never used), against the real webserver
and daemon of test_daemon_backfill_e2e.py's `stack`:

- the asset graph of a service lists its assets,
- a partitioned asset shows its partitions,
- a materialization shows its metadata.

Screenshots are saved under test-artifacts/ui/ (gitignored) whether the checks pass or not.
`scripts/ensure_chromium.sh` installs the browser; without it these tests are skipped with the
reason, not failed, so a machine without apt can still run the rest of the suite.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import dagster as dg
import pytest

from taxi_assets_tests import conftest
from taxi_assets_tests.e2e.test_daemon_backfill_e2e import ARTIFACTS, SPARE_MONTH, Stack, stack  # noqa: F401 - the shared stack fixture

if "taxi_assets_tests.postgres_server" not in getattr(conftest, "pytest_plugins", ()):
    from taxi_assets_tests.postgres_server import postgres_url  # noqa: F401 - the fixture, until conftest loads the plugin

CHROMIUM = os.environ.get("TAXI_CHROMIUM", "/usr/bin/chromium")
SHOTS = ARTIFACTS / "ui"
SERVICE, MONTH = "yellow", "2023-01"
TIMEOUT_MS = 60_000

playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra) is not installed")
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: run scripts/ensure_chromium.sh"),
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    shot(page, f"{request.node.name}-final.png", full_page=True)
    context.close()


@pytest.fixture(scope="module")
def loaded(stack: Stack) -> Stack:  # noqa: F811
    """At least one month of the service materialized (the e2e test's backfill, or a run of our own)."""
    stack.ensure_month(SERVICE, MONTH)
    return stack


def body_text(page) -> str:
    return page.inner_text("body")


def open_page(page, url: str) -> None:
    """Go to a UI page; dismiss the first-visit "Join the Dagster community" dialog if it shows."""
    page.goto(url)
    page.wait_for_load_state("domcontentloaded")
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=3000)
        skip.click()
    except playwright_sync.TimeoutError:
        pass


def shot(page, name: str, **options) -> None:
    """Save a screenshot; the community dialog can pop up late, over the page: close it first."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count() and skip.first.is_visible():
        skip.first.click()
        page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / name), **options)


def test_asset_graph_lists_the_services_assets(loaded: Stack, page):
    open_page(page, f"{loaded.url}/locations/taxi_assets/asset-groups/{SERVICE}")
    for name in ("raw_file", "trips_cleaned", "trips_rejected", "trips_table", "rejects_summary", "daily_zone_mart"):
        page.get_by_text(name, exact=True).first.wait_for()
    shot(page, "asset-graph-yellow.png")
    # and the global lineage shows every service's group
    open_page(page, f"{loaded.url}/asset-groups")
    for group in ("yellow", "green", "fhv", "fhvhv", "zones"):
        page.get_by_text(group, exact=True).first.wait_for()
    shot(page, "asset-graph-all.png")


def test_partitioned_asset_shows_its_partitions(loaded: Stack, page):
    open_page(page, f"{loaded.url}/assets/{SERVICE}/raw_file?view=partitions")
    total = len(loaded.instance.get_materialized_partitions(dg.AssetKey([SERVICE, "raw_file"])))
    page.get_by_text(re.compile(r"\d+ Partitions Selected", re.I)).first.wait_for()
    page.get_by_text(f"Materialized ({total})").first.wait_for()
    # the partition list: filter to the loaded month, open it, and see its materialization
    search = page.get_by_placeholder(re.compile("filter|search", re.I))
    if search.count():
        search.first.fill(MONTH)
    page.get_by_text(MONTH, exact=True).first.click()
    page.get_by_text("sha256", exact=True).first.wait_for()
    shot(page, "partitions-yellow-raw_file.png")
    materialized = loaded.instance.get_materialized_partitions(dg.AssetKey([SERVICE, "raw_file"]))
    assert MONTH in materialized


def test_materialization_shows_its_metadata(loaded: Stack, page):
    record = loaded.instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey([SERVICE, "raw_file"]), asset_partitions=[MONTH]), limit=1
    ).records[0]
    sha = record.asset_materialization.metadata["sha256"].value
    open_page(page, f"{loaded.url}/assets/{SERVICE}/raw_file?view=events&partition={MONTH}")
    page.get_by_text("sha256", exact=True).first.wait_for()
    page.get_by_text(sha).first.wait_for()
    for label in ("source_url", "etag"):
        page.get_by_text(label, exact=True).first.wait_for()
    shot(page, "materialization-metadata-yellow-raw_file.png", full_page=True)


def test_the_months_audit_shows_its_verdict(loaded: Stack, page):
    """Write–audit–publish in the UI: the `audit` check of trips_cleaned, with the month's verdict.

    The page shows the check's latest evaluation, whichever run of the shared stack made it; the test
    runs a month of its own first, so it knows which evaluation that is and can look for its month."""
    loaded.run_month(SERVICE, SPARE_MONTH)
    open_page(page, f"{loaded.url}/assets/{SERVICE}/trips_cleaned?view=checks&checkDetail=audit")
    page.get_by_text("audit", exact=True).first.wait_for()
    page.get_by_text("passed, published").first.wait_for()
    page.get_by_text("rows_read", exact=True).first.wait_for()
    page.get_by_text(SPARE_MONTH, exact=True).first.wait_for()  # the month it audited, in the metadata
    shot(page, "audit-check-yellow-trips_cleaned.png", full_page=True)
    # the check's Partitions tab: every month that landed, backfilled or run alone, passed its audit
    total = len(loaded.instance.get_materialized_partitions(dg.AssetKey([SERVICE, "trips_cleaned"])))
    page.get_by_text("Partitions", exact=True).last.click()
    page.get_by_text(f"Passed ({total})").first.wait_for()
    shot(page, "audit-check-partitions-yellow-trips_cleaned.png", full_page=True)
