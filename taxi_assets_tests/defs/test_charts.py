"""The mart's materialization carries a real picture and numbers the Plots tab can chart."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import dagster as dg

from taxi_assets.defs.charts import WEEKDAY, WEEKEND
from taxi_assets.tlc.months import parse_month

from taxi_assets_tests.conftest import Pipeline

SVG = "{http://www.w3.org/2000/svg}"


def test_the_marts_materialization_has_a_chart_and_numeric_metadata(pipeline: Pipeline):
    assert pipeline.run("zones").success
    result = pipeline.run("yellow", "2023-01")
    [mart] = [e.materialization for e in result.get_asset_materialization_events()
              if e.materialization.asset_key == dg.AssetKey(["yellow", "daily_zone_mart"])]
    chart = mart.metadata["chart"].value
    match = re.fullmatch(r"!\[[^\]]+\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", chart)
    assert match, chart[:80]
    svg = ET.fromstring(base64.b64decode(match.group(1)))  # well-formed XML, or this raises
    assert svg.tag == f"{SVG}svg" and int(svg.get("width")) >= 800 and int(svg.get("height")) >= 250
    # one bar a pickup day, each titled with its date and trips; weekday and weekend bars both drawn
    day_bars = [r for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    per_day = pipeline.warehouse.query(
        f"SELECT pickup_date, SUM(trips) AS trips FROM {pipeline.warehouse.table_ref('yellow_daily_zone_mart')} "
        "WHERE source_month = DATE '2023-01-01' GROUP BY pickup_date ORDER BY pickup_date"
    ).to_pylist()
    assert [r.find(f"{SVG}title").text for r in day_bars] == [f"{d['pickup_date']}: {int(d['trips']):,} trips" for d in per_day]
    assert {r.get("fill") for r in day_bars} == {WEEKDAY, WEEKEND}
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "yellow 2023-01: trips per pickup day (orange: weekend)" in texts and "busiest pickup zones" in texts

    table_rows = pipeline.warehouse.count("yellow_trips", parse_month("2023-01"))
    assert mart.metadata["trips"].value == table_rows
    assert mart.metadata["pickup_days"].value == 31
    assert 0 < mart.metadata["busiest_zone_trips"].value < table_rows
    [cleaned] = [e.materialization for e in result.get_asset_materialization_events()
                 if e.materialization.asset_key == dg.AssetKey(["yellow", "trips_cleaned"])]
    share = cleaned.metadata["rejected_share"].value
    assert isinstance(share, float) and 0 < share < 0.5
    assert share == round(cleaned.metadata["rows_rejected"].value / cleaned.metadata["rows_read"].value, 6)
