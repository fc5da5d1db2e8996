"""The mart's materialization carries a real picture and numbers the Plots tab can chart."""

from __future__ import annotations

import base64
import io
import re

import dagster as dg
from PIL import Image

from taxi_assets.defs.charts import WEEKDAY, WEEKEND
from taxi_assets.tlc.months import parse_month

from taxi_assets_tests.conftest import Pipeline


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def test_the_marts_materialization_has_a_png_chart_and_numeric_metadata(pipeline: Pipeline):
    assert pipeline.run("zones").success
    result = pipeline.run("yellow", "2023-01")
    [mart] = [e.materialization for e in result.get_asset_materialization_events()
              if e.materialization.asset_key == dg.AssetKey(["yellow", "daily_zone_mart"])]
    chart = mart.metadata["chart"].value
    match = re.fullmatch(r"!\[[^\]]+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", chart)
    assert match, chart[:80]
    image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    assert image.format == "PNG" and image.width >= 800 and image.height >= 250
    colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    assert _rgb(WEEKDAY) in colours and _rgb(WEEKEND) in colours  # weekday and weekend bars both drawn

    table_rows = pipeline.warehouse.count("yellow_trips", parse_month("2023-01"))
    assert mart.metadata["trips"].value == table_rows
    assert mart.metadata["pickup_days"].value == 31
    assert 0 < mart.metadata["busiest_zone_trips"].value < table_rows
    [cleaned] = [e.materialization for e in result.get_asset_materialization_events()
                 if e.materialization.asset_key == dg.AssetKey(["yellow", "trips_cleaned"])]
    share = cleaned.metadata["rejected_share"].value
    assert isinstance(share, float) and 0 < share < 0.5
    assert share == round(cleaned.metadata["rows_rejected"].value / cleaned.metadata["rows_read"].value, 6)
