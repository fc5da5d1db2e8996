"""The local TLC stand-in: it must behave like the real site (headers, 403/404) and fail on request."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devtools.mirror import Body, Delay, MirrorServer, Status, Truncate

PATH = "/trip-data/yellow_tripdata_2024-01.parquet"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "trip-data").mkdir(parents=True)
    (root / "trip-data" / "yellow_tripdata_2024-01.parquet").write_bytes(b"PAR1" + b"x" * 1000 + b"PAR1")
    (root / "trip-data" / "green_tripdata_2019-01.csv.gz").write_bytes(b"\x1f\x8bgz")
    (root / "misc").mkdir()
    (root / "misc" / "taxi_zone_lookup.csv").write_text("LocationID,Borough\n1,EWR\n")
    return root


@pytest.fixture
def server(root: Path):
    with MirrorServer(root) as server:
        yield server


def test_get_serves_file_with_headers(server: MirrorServer, root: Path) -> None:
    resp = requests.get(server.url + PATH, timeout=5)
    assert resp.status_code == 200
    assert resp.content == (root / PATH.lstrip("/")).read_bytes()
    assert resp.headers["Content-Length"] == "1008"
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', resp.headers["ETag"])
    assert resp.headers["Last-Modified"].endswith("GMT")
    assert server.hits[PATH] == 1


def test_content_types_by_extension(server: MirrorServer) -> None:
    gz = requests.head(server.url_for("trip-data/green_tripdata_2019-01.csv.gz"), timeout=5)
    csv = requests.head(server.url_for("misc/taxi_zone_lookup.csv"), timeout=5)
    assert gz.headers["Content-Type"] == "application/gzip"
    assert csv.headers["Content-Type"] == "text/csv"


def test_head_has_headers_but_no_body(server: MirrorServer) -> None:
    resp = requests.head(server.url + PATH, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Length"] == "1008"
    assert resp.content == b""


def test_etag_changes_when_file_is_rewritten(server: MirrorServer, root: Path) -> None:
    before = requests.head(server.url + PATH, timeout=5).headers["ETag"]
    assert requests.head(server.url + PATH, timeout=5).headers["ETag"] == before  # stable while unchanged
    file = root / PATH.lstrip("/")
    file.write_bytes(b"PAR1" + b"y" * 1000 + b"PAR1")  # same size: only mtime_ns differs
    st = file.stat()
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert requests.head(server.url + PATH, timeout=5).headers["ETag"] != before


@pytest.mark.parametrize("missing_status", [404, 403])
def test_missing_files_and_directories(root: Path, missing_status: int) -> None:
    with MirrorServer(root, missing_status=missing_status) as server:
        for path in ("/trip-data/yellow_tripdata_2031-05.parquet", "/trip-data/", "/"):
            assert requests.get(server.url + path, timeout=5).status_code == missing_status, path
        assert requests.head(server.url + "/nope.parquet", timeout=5).status_code == missing_status


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/trip-data/../../secret.txt"])
def test_no_escape_from_root(server: MirrorServer, root: Path, path: str) -> None:
    (root.parent / "secret.txt").write_text("outside the served folder")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)  # sends the path verbatim
    try:
        conn.request("GET", path)
        assert conn.getresponse().status == 404
    finally:
        conn.close()


def test_missing_status_must_be_403_or_404(root: Path) -> None:
    with pytest.raises(ValueError):
        MirrorServer(root, missing_status=500)


def test_faults_are_one_shot_and_in_order(server: MirrorServer) -> None:
    server.inject(PATH, Status(500), Status(503, b"busy"), Body(b"hello", "text/plain"))
    url = server.url + PATH
    assert requests.get(url, timeout=5).status_code == 500
    second = requests.get(url, timeout=5)
    assert (second.status_code, second.content) == (503, b"busy")
    third = requests.get(url, timeout=5)
    assert (third.status_code, third.content, third.headers["Content-Length"]) == (200, b"hello", "5")
    assert requests.get(url, timeout=5).content.startswith(b"PAR1")  # normal service resumes
    assert server.hits[PATH] == 4
    assert server.hits["/other"] == 0


def test_status_fault_can_be_an_html_200(server: MirrorServer) -> None:
    server.inject(PATH, Status(200, b"<!DOCTYPE html><p>maintenance</p>", "text/html"))
    resp = requests.get(server.url + PATH, timeout=5)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/html"


def test_truncate_sends_full_length_but_fewer_bytes(server: MirrorServer) -> None:
    server.inject(PATH, Truncate(100))
    with requests.get(server.url + PATH, stream=True, timeout=5) as resp:
        assert resp.headers["Content-Length"] == "1008"
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            b"".join(resp.iter_content(1 << 20))
    assert len(requests.get(server.url + PATH, timeout=5).content) == 1008


def test_delay_holds_the_answer(server: MirrorServer) -> None:
    server.inject(PATH, Delay(0.3))
    started = time.monotonic()
    assert requests.get(server.url + PATH, timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3
    server.inject(PATH, Delay(1.0))
    with pytest.raises(requests.Timeout):
        requests.get(server.url + PATH, timeout=0.2)


def test_inject_rejects_non_faults(server: MirrorServer) -> None:
    with pytest.raises(TypeError):
        server.inject(PATH, 500)  # type: ignore[arg-type]


def test_start_stop_without_context_manager(root: Path) -> None:
    server = MirrorServer(root).start()
    url = server.url + PATH
    assert requests.get(url, timeout=5).status_code == 200
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
    server.stop()  # idempotent


def test_command_line_serves_until_interrupted(root: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.mirror", str(root), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)  # type: ignore[union-attr]
        assert requests.get(url + PATH, timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr.read() == ""  # type: ignore[union-attr]  # quiet: no request log, no traceback
    finally:
        if proc.poll() is None:
            proc.kill()


# -- any month on request (make dev-offline) --------------------------------------------------
def test_any_published_month_is_made_on_request_the_same_each_time(tmp_path: Path) -> None:
    import datetime as dt
    import threading

    import pyarrow.parquet as pq

    from devtools.generator import MonthsOnRequest, build_mirror
    from taxi_assets.tlc.services import YELLOW

    root = tmp_path / "mirror"
    made = MonthsOnRequest(root, rows=3_000, today=dt.date(2024, 6, 15))
    with MirrorServer(root, missing_status=403, on_missing=made) as server:
        url = server.url + "/trip-data/yellow_tripdata_2012-03.parquet"
        head = requests.head(url, timeout=30)  # a sensor's HEAD makes it too
        assert head.status_code == 200
        replies: list[bytes] = []
        threads = [threading.Thread(target=lambda: replies.append(requests.get(url, timeout=60).content)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(replies)) == 1 and int(head.headers["Content-Length"]) == len(replies[0])
        table = pq.read_table(root / "trip-data" / "yellow_tripdata_2012-03.parquet")
        assert table.num_rows == 3_000 and "tpep_pickup_datetime" in table.schema.names

        # the zoomcamp's csv.gz layout, in that month's CSV era; the zone lookup
        assert requests.get(server.url + "/green/green_tripdata_2019-05.csv.gz", timeout=60).content[:2] == b"\x1f\x8b"
        assert requests.get(server.url + "/misc/taxi_zone_lookup.csv", timeout=30).text.startswith('"LocationID"')

        # what the TLC never published: before a service's first month, after the last complete
        # month, CSVs after the mirror stopped, unknown services and paths
        for missing in ("/trip-data/fhvhv_tripdata_2018-12.parquet", "/trip-data/yellow_tripdata_2024-06.parquet",
                        "/green/green_tripdata_2022-01.csv.gz", "/trip-data/blue_tripdata_2020-01.parquet",
                        "/trip-data/yellow_tripdata_2020-13.parquet", "/green/yellow_tripdata_2019-05.csv.gz",
                        "/trip-data/../secret.parquet"):
            assert requests.get(server.url + missing, timeout=30).status_code == 403, missing

    # the same bytes build_mirror (and so the demo) makes for that month
    again = tmp_path / "again"
    build_mirror(again, ["yellow"], ["2012-03"], "parquet", 3_000)
    assert (again / "trip-data" / "yellow_tripdata_2012-03.parquet").read_bytes() == replies[0]
    assert YELLOW.first_month == "2011-01"


def test_mirror_command_generates_on_request(tmp_path: Path) -> None:
    """`python -m devtools.mirror ROOT --generate` (what make dev-offline starts) serves a month it never had."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.mirror", str(tmp_path / "new-root"), "--generate", "--rows", "500", "--port", "0",
         "--missing-status", "403"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"at (http://\S+)", line).group(1)
        assert "made on request" in line
        resp = requests.get(url + "/trip-data/fhv_tripdata_2016-02.parquet", timeout=60)
        assert resp.status_code == 200 and resp.content[:4] == b"PAR1"
        assert requests.get(url + "/trip-data/fhv_tripdata_2014-12.parquet", timeout=30).status_code == 403
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def test_makefile_dev_offline_points_the_ui_at_the_generating_mirror() -> None:
    """The target's commands, as make would run them (make -n): the mirror with --generate on the
    port the source URLs name, and the UI on the demo's lake and warehouse."""
    repo = Path(__file__).resolve().parents[2]
    script = subprocess.run(["make", "-n", "-s", "dev-offline", "MIRROR_PORT=9911", "DATA_DIR=/tmp/d"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout
    assert "-m devtools.mirror /tmp/d/mirror/parquet --generate --missing-status 403 --port 9911" in script
    assert "TAXI_SOURCE_URL=http://127.0.0.1:9911/trip-data" in script
    assert "TAXI_ZONES_URL=http://127.0.0.1:9911/misc/taxi_zone_lookup.csv" in script
    assert "/tmp/d/lake" in script and "/tmp/d/warehouse.duckdb" in script and "bin/dg dev" in script


def test_a_month_nobody_built_lands_through_the_generating_mirror(tmp_path: Path) -> None:
    """What make dev-offline gives the UI: a month that exists nowhere yet is made, downloaded,
    audited and loaded like any TLC month."""
    import dagster as dg

    from devtools.generator import MonthsOnRequest

    from taxi_assets_tests.conftest import make_pipeline

    root = tmp_path / "mirror"
    with MirrorServer(root, missing_status=403, on_missing=MonthsOnRequest(root, rows=2_000)) as server, \
            dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, server, instance)
        assert pipeline.run("zones").success
        assert pipeline.run("green", "2017-04").success
        served = root / "trip-data" / "green_tripdata_2017-04.parquet"
        assert (pipeline.lake.local_path("raw/green/2017-04") / served.name).read_bytes() == served.read_bytes()
        kept = pipeline.warehouse.count("green_trips")
        assert 0 < kept <= 2_000
