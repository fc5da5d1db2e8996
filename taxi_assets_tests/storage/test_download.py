"""download_file / probe against the local mirror: every failure leaves dest_dir empty,
every success leaves exactly one validated file with the source's bytes."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_assets.storage.http import (
    DownloadError,
    InvalidSourceFile,
    SourceNotPublished,
    download_file,
    probe,
    validate_local_file,
)
from devtools.mirror import Body, Delay, MirrorServer, Status, Truncate

PARQUET = "/trip-data/yellow_tripdata_2024-01.parquet"
CSV_GZ = "/trip-data/green_tripdata_2019-01.csv.gz"
MISSING = "/trip-data/yellow_tripdata_2031-05.parquet"
FAST = {"backoff_seconds": 0.01, "timeout": 5}


def write_parquet(path: Path, rows: int = 3, blob_bytes: int = 0) -> None:
    """A tiny TLC-like parquet; blob_bytes of incompressible data make it big enough for progress logs."""
    columns = {"VendorID": pa.array([1 + i % 2 for i in range(rows)], pa.int32()),
               "fare_amount": pa.array([float(i) for i in range(rows)])}
    if blob_bytes:
        columns["blob"] = pa.array([os.urandom(blob_bytes // rows) for _ in range(rows)], pa.binary())
    pq.write_table(pa.table(columns), path, compression="none")


def csv_gz_bytes(rows: int) -> bytes:
    lines = ["VendorID,lpep_pickup_datetime,fare_amount"]
    lines += [f"{1 + i % 2},2019-01-01 00:{i % 60:02d}:00,{i * 0.5:.2f}" for i in range(rows)]
    return gzip.compress(("\n".join(lines) + "\n").encode())


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "trip-data").mkdir(parents=True)
    write_parquet(root / PARQUET.lstrip("/"), rows=3)
    (root / CSV_GZ.lstrip("/")).write_bytes(csv_gz_bytes(2000))
    return root


@pytest.fixture
def server(site: Path):
    with MirrorServer(site) as server:
        yield server


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_empty(dest: Path) -> None:
    assert not dest.exists() or list(dest.iterdir()) == [], "a failed download left files behind"


def assert_one_file(dest: Path, result, source: Path) -> None:
    assert list(dest.iterdir()) == [result.path]
    assert result.bytes == source.stat().st_size == result.path.stat().st_size
    assert result.sha256 == sha256(source) == sha256(result.path)


# --- success ---------------------------------------------------------------------------------


def test_parquet_success(server: MirrorServer, site: Path, dest: Path) -> None:
    result = download_file(server.url + PARQUET, dest, label="yellow 2024-01", fmt="parquet", **FAST)
    assert_one_file(dest, result, site / PARQUET.lstrip("/"))
    assert result.row_count == 3
    assert result.attempts == 1
    assert result.url == server.url + PARQUET
    assert result.etag and result.etag.startswith('"')
    assert result.last_modified and result.last_modified.endswith("GMT")
    assert result.content_type == "application/octet-stream"
    assert server.hits[PARQUET] == 1


def test_csv_gz_success_counts_rows(server: MirrorServer, site: Path, dest: Path) -> None:
    result = download_file(server.url + CSV_GZ, dest, label="green 2019-01", fmt="csv.gz", **FAST)
    assert_one_file(dest, result, site / CSV_GZ.lstrip("/"))
    assert result.row_count == 2000
    assert result.content_type == "application/gzip"


# --- not published ---------------------------------------------------------------------------


def test_404_is_not_published_without_retry(server: MirrorServer, dest: Path) -> None:
    url = server.url + MISSING
    with pytest.raises(SourceNotPublished) as err:
        download_file(url, dest, label="yellow 2031-05", fmt="parquet", **FAST)
    assert str(err.value) == f"yellow 2031-05 is not published yet: 404 from {url}"
    assert server.hits[MISSING] == 1
    assert_empty(dest)


def test_403_is_not_published_without_retry(site: Path, dest: Path) -> None:
    with MirrorServer(site, missing_status=403) as server:  # CloudFront's answer for a missing object
        url = server.url + MISSING
        with pytest.raises(SourceNotPublished) as err:
            download_file(url, dest, label="yellow 2031-05", fmt="parquet", **FAST)
        assert str(err.value) == f"yellow 2031-05 is not published yet: 403 from {url}"
        assert err.value.status == 403
        assert server.hits[MISSING] == 1
    assert_empty(dest)


# --- retried failures ------------------------------------------------------------------------


def test_500_500_then_success(server: MirrorServer, site: Path, dest: Path) -> None:
    server.inject(PARQUET, Status(500), Status(500))
    messages: list[str] = []
    result = download_file(
        server.url + PARQUET, dest, label="yellow 2024-01", fmt="parquet", log=messages.append, **FAST
    )
    assert result.attempts == 3
    assert server.hits[PARQUET] == 3
    assert_one_file(dest, result, site / PARQUET.lstrip("/"))
    assert sum("retrying" in m for m in messages) == 2


def test_429_is_retried(server: MirrorServer, site: Path, dest: Path) -> None:
    server.inject(PARQUET, Status(429))
    result = download_file(server.url + PARQUET, dest, label="yellow 2024-01", fmt="parquet", **FAST)
    assert result.attempts == 2
    assert_one_file(dest, result, site / PARQUET.lstrip("/"))


def test_truncated_then_success(server: MirrorServer, site: Path, dest: Path) -> None:
    server.inject(CSV_GZ, Truncate(200))
    result = download_file(server.url + CSV_GZ, dest, label="green 2019-01", fmt="csv.gz", **FAST)
    assert result.attempts == 2
    assert server.hits[CSV_GZ] == 2
    assert result.row_count == 2000
    assert_one_file(dest, result, site / CSV_GZ.lstrip("/"))


def test_truncated_every_time_gives_up_cleanly(server: MirrorServer, dest: Path) -> None:
    server.inject(PARQUET, Truncate(10), Truncate(10), Truncate(10))
    url = server.url + PARQUET
    with pytest.raises(DownloadError) as err:
        download_file(url, dest, label="yellow 2024-01", fmt="parquet", max_attempts=3, **FAST)
    assert type(err.value) is DownloadError
    message = str(err.value)
    assert "yellow 2024-01" in message and url in message and "3 attempts" in message
    assert "IncompleteRead(10 bytes read" in message  # the last reason: how much arrived
    assert err.value.attempts == 3
    assert server.hits[PARQUET] == 3
    assert_empty(dest)


def test_timeout_then_success(server: MirrorServer, site: Path, dest: Path) -> None:
    server.inject(PARQUET, Delay(1.5))
    result = download_file(
        server.url + PARQUET, dest, label="yellow 2024-01", fmt="parquet", timeout=0.5, backoff_seconds=0.01
    )
    assert result.attempts == 2
    assert_one_file(dest, result, site / PARQUET.lstrip("/"))


def test_connection_refused_is_retried_then_download_error(dest: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    url = f"http://127.0.0.1:{port}{PARQUET}"
    with pytest.raises(DownloadError, match=r"after 2 attempts") as err:
        download_file(url, dest, label="yellow 2024-01", fmt="parquet", max_attempts=2, **FAST)
    assert "ConnectionError" in err.value.reason
    assert_empty(dest)


# --- failures that are not retried -----------------------------------------------------------


def test_other_4xx_fails_at_once(server: MirrorServer, dest: Path) -> None:
    server.inject(PARQUET, Status(400))
    with pytest.raises(DownloadError, match="HTTP 400") as err:
        download_file(server.url + PARQUET, dest, label="yellow 2024-01", fmt="parquet", **FAST)
    assert not isinstance(err.value, (SourceNotPublished, InvalidSourceFile))
    assert server.hits[PARQUET] == 1
    assert_empty(dest)


@pytest.mark.parametrize(
    "fault",
    [
        Status(200, b"<!DOCTYPE html><html><body>Service maintenance</body></html>", "text/html; charset=utf-8"),
        Body(b"\n<html><head><title>Error</title></head></html>", "application/octet-stream"),  # sniffed
    ],
    ids=["content-type", "sniffed"],
)
def test_html_200_is_invalid(server: MirrorServer, dest: Path, fault) -> None:
    server.inject(CSV_GZ, fault)
    url = server.url + CSV_GZ
    with pytest.raises(InvalidSourceFile, match="HTML") as err:
        download_file(url, dest, label="green 2019-01", fmt="csv.gz", **FAST)
    assert "green 2019-01" in str(err.value) and url in str(err.value)
    assert server.hits[CSV_GZ] == 1
    assert_empty(dest)


def test_parquet_with_bad_magic_is_invalid(server: MirrorServer, site: Path, dest: Path) -> None:
    good = (site / PARQUET.lstrip("/")).read_bytes()
    server.inject(PARQUET, Body(b"PAR0" + good[4:]))
    with pytest.raises(InvalidSourceFile, match="magic"):
        download_file(server.url + PARQUET, dest, label="yellow 2024-01", fmt="parquet", **FAST)
    assert server.hits[PARQUET] == 1
    assert_empty(dest)


def test_parquet_with_broken_footer_is_invalid(server: MirrorServer, site: Path, dest: Path) -> None:
    good = (site / PARQUET.lstrip("/")).read_bytes()
    broken = good[:-8] + b"\xff\xff\xff\x7f" + good[-4:]  # footer length points outside the file
    server.inject(PARQUET, Body(broken))
    with pytest.raises(InvalidSourceFile, match="footer"):
        download_file(server.url + PARQUET, dest, label="yellow 2024-01", fmt="parquet", **FAST)
    assert_empty(dest)


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip_crc(data: bytes) -> bytes:
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]  # the member's CRC32 no longer matches


def _flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x55]) + data[middle + 1 :]


@pytest.mark.parametrize("corrupt", [_cut, _flip_crc, _flip_middle], ids=["cut", "crc", "flipped-middle"])
def test_corrupt_gzip_is_invalid(server: MirrorServer, site: Path, dest: Path, corrupt) -> None:
    server.inject(CSV_GZ, Body(corrupt((site / CSV_GZ.lstrip("/")).read_bytes()), "application/gzip"))
    with pytest.raises(InvalidSourceFile, match="gzip"):
        download_file(server.url + CSV_GZ, dest, label="green 2019-01", fmt="csv.gz", **FAST)
    assert server.hits[CSV_GZ] == 1
    assert_empty(dest)


def test_crc_failure_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.csv.gz"
    path.write_bytes(_flip_crc(csv_gz_bytes(10)))
    with pytest.raises(InvalidSourceFile, match="incorrect data check"):
        validate_local_file(path, "csv.gz")


# --- probe -----------------------------------------------------------------------------------


def test_probe_returns_version_and_etag_changes_on_rewrite(server: MirrorServer, site: Path) -> None:
    url = server.url + PARQUET
    first = probe(url, **FAST)
    assert first is not None
    assert first.url == url
    assert first.etag and first.last_modified
    assert first.content_length == (site / PARQUET.lstrip("/")).stat().st_size
    assert first.token == probe(url, **FAST).token  # stable while the file is unchanged

    write_parquet(site / PARQUET.lstrip("/"), rows=5)  # the TLC re-publishes the month
    second = probe(url, **FAST)
    assert second is not None
    assert second.etag != first.etag
    assert second.token != first.token


@pytest.mark.parametrize("missing_status", [404, 403])
def test_probe_missing_is_none(site: Path, missing_status: int) -> None:
    with MirrorServer(site, missing_status=missing_status) as server:
        assert probe(server.url + MISSING, **FAST) is None
        assert server.hits[MISSING] == 1


def test_probe_retries_5xx_then_raises(server: MirrorServer) -> None:
    server.inject(PARQUET, Status(503))
    assert probe(server.url + PARQUET, **FAST) is not None
    server.inject(PARQUET, Status(500), Status(500))
    with pytest.raises(DownloadError, match="2 attempts"):
        probe(server.url + PARQUET, max_attempts=2, **FAST)


def test_token_without_etag_uses_last_modified_and_length() -> None:
    from taxi_assets.storage.http import SourceVersion

    version = SourceVersion("u", None, "Mon, 01 Jan 2024 00:00:00 GMT", 42)
    assert version.token == "Mon, 01 Jan 2024 00:00:00 GMT|42"
    assert SourceVersion("u", 'W/"abc"', None, None).token == "abc"


# --- progress --------------------------------------------------------------------------------


def test_progress_is_logged(server: MirrorServer, site: Path, dest: Path) -> None:
    big = site / "trip-data" / "fhvhv_tripdata_2024-01.parquet"
    write_parquet(big, rows=30, blob_bytes=3 * 1024 * 1024)  # ~3 MiB: several 1 MiB chunks
    messages: list[str] = []
    result = download_file(
        server.url + "/trip-data/fhvhv_tripdata_2024-01.parquet", dest,
        label="fhvhv 2024-01", fmt="parquet", log=messages.append, progress_seconds=0, **FAST,
    )
    assert_one_file(dest, result, big)
    progress = [m for m in messages if re.fullmatch(r"fhvhv 2024-01: \d+\.\d / 3\.0 MiB \(\d+%\)", m)]
    assert len(progress) >= 3, messages
    assert progress[-1].endswith("(100%)")
    assert any("downloaded" in m for m in messages)


def test_a_fast_download_logs_its_summary_not_every_tenth(server: MirrorServer, site: Path, dest: Path) -> None:
    """Each line is an event a run stores: a file that arrives within the interval gets one line."""
    big = site / "trip-data" / "fhvhv_tripdata_2024-01.parquet"
    write_parquet(big, rows=30, blob_bytes=3 * 1024 * 1024)
    messages: list[str] = []
    download_file(
        server.url + "/trip-data/fhvhv_tripdata_2024-01.parquet", dest,
        label="fhvhv 2024-01", fmt="parquet", log=messages.append, progress_seconds=60, **FAST,
    )
    assert len(messages) == 1 and messages[0].startswith("fhvhv 2024-01: downloaded 3.0 MiB in "), messages


# --- validate_local_file ---------------------------------------------------------------------


def test_validate_local_parquet(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    write_parquet(path, rows=7)
    assert validate_local_file(path, "parquet") == 7
    path.write_bytes(path.read_bytes()[:-10])  # truncated: end magic missing
    with pytest.raises(InvalidSourceFile, match="end with parquet magic"):
        validate_local_file(path, "parquet")


def test_validate_local_gzip_members_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n") + gzip.compress(b"3,4\n5,6"))  # two members, no final newline
    assert validate_local_file(path, "csv.gz") == 3
    path.write_bytes(gzip.compress(b"a,b\n1,2\n") + b"garbage")
    with pytest.raises(InvalidSourceFile, match="gzip"):
        validate_local_file(path, "csv.gz")
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(InvalidSourceFile, match="empty"):
        validate_local_file(path, "csv.gz")


def test_validate_local_csv(tmp_path: Path) -> None:
    path = tmp_path / "taxi_zone_lookup.csv"
    path.write_text(
        '"LocationID","Borough","Zone","service_zone"\n'
        '1,"EWR","Newark Airport","EWR"\n'
        '2,"Queens","Jamaica Bay","Boro Zone"\n'
    )
    assert validate_local_file(path, "csv") == 2
    path.write_text("\n1,2\n")
    with pytest.raises(InvalidSourceFile, match="header"):
        validate_local_file(path, "csv")
    path.write_bytes(b"")
    with pytest.raises(InvalidSourceFile, match="empty"):
        validate_local_file(path, "csv")
    with pytest.raises(ValueError):
        validate_local_file(path, "xlsx")  # type: ignore[arg-type]


# -- the whole-transfer deadline, schemes and redirects ---------------------------------------
class _Trickle:
    """A server that announces a large body and then sends a few bytes every `every` seconds, or
    that redirects to `redirect_to` (counting what reached it)."""

    def __init__(self, every: float = 0.2, redirect_to: str | None = None, header_delay: float = 0.0):
        import http.server
        import threading

        outer = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                outer.requests.append(self.path)
                if redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                import time

                time.sleep(header_delay)
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 20))
                self.end_headers()
                try:
                    self.wfile.write(b"PAR1")
                    while not outer.stop.is_set():
                        self.wfile.write(b"x" * 1024)
                        self.wfile.flush()
                        outer.stop.wait(every)
                except OSError:
                    pass

        self.stop = threading.Event()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_trickling_server_meets_the_whole_transfer_deadline(tmp_path):
    """1 KiB every 0.2 s never trips the 5 s read timeout; the 2 s deadline ends it, unretried."""
    import time

    from taxi_assets.storage.http import DeadlineExceeded

    with _Trickle(every=0.2) as base:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as err:
            download_file(f"{base}/yellow_tripdata_2024-01.parquet", tmp_path, label="yellow 2024-01", fmt="parquet",
                          deadline_seconds=2, **FAST)
        took = time.monotonic() - started
    assert 1.9 < took < 4.5
    assert "yellow 2024-01" in str(err.value) and "deadline" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_late_headers_meet_the_deadline_across_retries(tmp_path):
    import time

    with _Trickle(header_delay=30) as base:
        started = time.monotonic()
        with pytest.raises(DownloadError) as err:
            download_file(f"{base}/yellow_tripdata_2024-01.parquet", tmp_path, label="yellow 2024-01", fmt="parquet",
                          deadline_seconds=2, max_attempts=5, backoff_seconds=0.01, timeout=60)
        took = time.monotonic() - started
    assert took < 4.5, took
    assert "deadline" in str(err.value)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x.parquet", "gopher://h/x", "http:///nohost.parquet"])
def test_only_http_urls_with_a_host_are_fetched(tmp_path, url):
    with pytest.raises(ValueError, match="only http:// and https://"):
        download_file(url, tmp_path, label="yellow 2024-01", fmt="parquet", **FAST)


def test_a_redirect_to_another_host_is_refused_before_it_is_contacted(tmp_path):
    """A redirect to an internal address (here: another loopback name standing for a metadata
    endpoint) is refused unless that host is allowed by name."""
    internal = _Trickle()
    with internal as target, _Trickle(redirect_to=f"{target.replace('127.0.0.1', 'localhost')}/latest/meta-data") as source:
        with pytest.raises(DownloadError, match="redirect to 'localhost' refused") as err:
            download_file(f"{source}/yellow_tripdata_2024-01.parquet", tmp_path, label="yellow 2024-01", fmt="parquet", **FAST)
        assert "yellow 2024-01" in str(err.value)
        with pytest.raises(DownloadError, match="refused"):
            probe(f"{source}/yellow_tripdata_2024-01.parquet", max_attempts=1)
    assert internal.requests == []  # never contacted
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_to_an_allowed_host_is_followed(server, tmp_path):
    import http.server
    import threading

    target = server.url_for(PARQUET).replace("127.0.0.1", "localhost")

    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/yellow_tripdata_2024-01.parquet"
        result = download_file(url, tmp_path, label="yellow 2024-01", fmt="parquet", redirect_hosts=["localhost"], **FAST)
        assert result.row_count == 3
    finally:
        httpd.shutdown()
        httpd.server_close()
