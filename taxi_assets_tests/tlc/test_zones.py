"""The zone lookup: "NA" and "N/A" are names, not nulls; a broken lookup is refused."""

from __future__ import annotations

import pyarrow.csv as pacsv
import pytest

from taxi_assets.tlc.zones import ZONES_SCHEMA, ZoneLookupError, read_zone_lookup

from taxi_assets_tests.samples import samples_dir


def test_real_lookup_keeps_na_zone_names():
    path = samples_dir() / "taxi_zone_lookup.csv"
    zones = read_zone_lookup(path)
    assert zones.schema.equals(ZONES_SCHEMA)
    assert zones.num_rows == 265
    rows = {r["location_id"]: r for r in zones.to_pylist()}
    assert rows[265] == {"location_id": 265, "borough": "Unknown", "zone": "NA", "service_zone": "N/A"}
    assert rows[264]["zone"] == "NV"
    assert rows[1]["zone"] == "Newark Airport"
    assert zones.column("zone").null_count == 0


def test_unquoted_na_stays_a_name(tmp_path):
    """Re-exported lookups (pandas, spreadsheets) drop the quotes; NA must still be a zone name."""
    path = tmp_path / "taxi_zone_lookup.csv"
    path.write_text("LocationID,Borough,Zone,service_zone\n264,Unknown,NV,N/A\n265,Unknown,NA,N/A\n")
    zones = read_zone_lookup(path).to_pylist()
    assert [z["zone"] for z in zones] == ["NV", "NA"]
    assert [z["service_zone"] for z in zones] == ["N/A", "N/A"]
    # the trap we avoid: a reader that lets strings be null turns them into nulls
    naive = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    assert naive.column("Zone").null_count == 1


def test_generated_lookup_has_the_same_shape(tmp_path):
    from devtools.generator import generate_zone_lookup

    path = tmp_path / "taxi_zone_lookup.csv"
    generate_zone_lookup(path)
    zones = read_zone_lookup(path)
    assert zones.num_rows == 265
    assert zones.to_pylist()[-1]["zone"] == "NA"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'"LocationID","Borough"\r\n1,"EWR"\r\n',
        b'"LocationID","Borough","Zone","service_zone"\r\n1,"EWR","Newark Airport","EWR"\r\n1,"EWR","Again","EWR"\r\n',
        b"<html>not a csv</html>",
    ],
)
def test_broken_lookup_is_refused(tmp_path, content):
    path = tmp_path / "taxi_zone_lookup.csv"
    path.write_bytes(content)
    with pytest.raises(ZoneLookupError, match="taxi_zone_lookup.csv"):
        read_zone_lookup(path)
