"""What the environment may say is checked when the code location loads, before any connection,
download or statement: source URLs, identifiers that become SQL, the download deadline."""

from __future__ import annotations

import pytest

from taxi_assets.definitions import build_definitions
from taxi_assets.settings import Settings
from taxi_assets.tlc.sources import ZOOMCAMP_REDIRECT_HOSTS
from taxi_assets.storage.warehouse.base import validate_identifier


@pytest.mark.parametrize("name", ["ny_taxi\n", "ny taxi", "ny;taxi", "1taxi", "", "x" * 64, "ny_taxi\r\n"])
def test_identifiers_are_anchored_at_the_very_end(name):
    with pytest.raises(ValueError, match="invalid"):
        validate_identifier(name)


def test_a_bad_warehouse_schema_is_refused_at_load_before_any_connection(tmp_path):
    duckdb_file = tmp_path / "warehouse.duckdb"
    settings = Settings.from_env({"TAXI_WAREHOUSE_SCHEMA": "ny_taxi\n", "TAXI_DUCKDB_PATH": str(duckdb_file)})
    with pytest.raises(ValueError, match="TAXI_WAREHOUSE_SCHEMA"):
        build_definitions(settings)
    assert not duckdb_file.exists()


@pytest.mark.parametrize("var", ["TAXI_SOURCE_URL", "TAXI_ZONES_URL"])
@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://ftp.example.org/trip-data", "//no-scheme/x", "gs://bucket/x"])
def test_source_urls_must_be_http(var, url):
    with pytest.raises(ValueError, match=f"{var} .*only http:// and https://"):
        Settings.from_env({var: url})


def test_redirect_hosts_default_to_the_source_and_githubs_release_hosts_for_the_zoomcamp_mirror():
    assert Settings.from_env({}).redirect_hosts == ()
    assert Settings.from_env({"TAXI_SOURCE_FORMAT": "csv.gz"}).redirect_hosts == ZOOMCAMP_REDIRECT_HOSTS
    # compose passes the variable empty when .env leaves it empty: that is the default, not "none"
    empty = {"TAXI_SOURCE_FORMAT": "csv.gz", "TAXI_SOURCE_REDIRECT_HOSTS": "", "TAXI_DOWNLOAD_DEADLINE_SECONDS": ""}
    assert Settings.from_env(empty).redirect_hosts == ZOOMCAMP_REDIRECT_HOSTS
    assert Settings.from_env(empty).download_deadline_seconds == 3600
    given = Settings.from_env({"TAXI_SOURCE_REDIRECT_HOSTS": " Mirror.Example.org ,cdn.example.org"})
    assert given.redirect_hosts == ("mirror.example.org", "cdn.example.org")
    resources = build_definitions(given).resources
    assert resources["tlc"].redirect_hosts == ["mirror.example.org", "cdn.example.org"]


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_download_deadline_must_be_positive_seconds(value):
    with pytest.raises(ValueError, match="TAXI_DOWNLOAD_DEADLINE_SECONDS"):
        Settings.from_env({"TAXI_DOWNLOAD_DEADLINE_SECONDS": value})
