"""A local HTTP server that serves a folder the way the TLC's CloudFront site does.

Why: the pipeline and its tests must run without the internet, yet still go through real HTTP
(status codes, Content-Length, ETag, a connection that drops mid-body). Pointing the downloader at
`MirrorServer(root).url` instead of https://d37ci6vzurychx.cloudfront.net exercises exactly the
code that runs in production, and `inject()` reproduces the failures seen there (5xx, 403 for
missing objects, truncated bodies, slow answers, HTML error pages) on demand.

    python -m devtools.mirror ROOT --port 8765              # serves ROOT until Ctrl-C
    python -m devtools.mirror ROOT --port 8765 --generate   # and makes any month on request (make dev-offline)
"""

from __future__ import annotations

import argparse
import collections
import email.utils
import logging
import os
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from pathlib import Path

_log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_CONTENT_TYPES = {".parquet": "application/octet-stream", ".gz": "application/gzip", ".csv": "text/csv"}


# --- faults: each one replaces the normal answer to exactly one request ----------------------


@dataclass(frozen=True)
class Status:
    """Answer with this status (and body) instead of the file: 500, 503, 429, 403, an HTML 200."""

    code: int
    body: bytes = b""
    content_type: str | None = None


@dataclass(frozen=True)
class Truncate:
    """Announce the file's real Content-Length, send only `n_bytes` of it, then drop the connection."""

    n_bytes: int


@dataclass(frozen=True)
class Delay:
    """Sleep this long before answering normally (to trip the client's read timeout)."""

    seconds: float


@dataclass(frozen=True)
class Body:
    """Serve these bytes (with a correct Content-Length) instead of the file, e.g. a corrupt gzip."""

    body: bytes
    content_type: str = "application/octet-stream"


Fault = Status | Truncate | Delay | Body


def _norm(path: str) -> str:
    """One spelling per URL path, so inject('a/b') and a request for /a%2Fb... agree."""
    return "/" + urllib.parse.unquote(urllib.parse.urlsplit(path).path).lstrip("/")


class MirrorServer:
    """Serves files under `root` over HTTP on a daemon thread, with one-shot fault injection.

    GET and HEAD only; no directory listings; missing files answer `missing_status` (404, or 403
    like CloudFront). ETag is strong and derived from size + mtime_ns, so rewriting a file changes
    it, which is what a sensor keyed on the ETag needs to see.
    """

    def __init__(self, root: Path | str, host: str = "127.0.0.1", port: int = 0, *, missing_status: int = 404,
                 on_missing: Callable[[str], Path | None] | None = None):
        if missing_status not in (403, 404):
            raise ValueError(f"missing_status must be 403 or 404, not {missing_status}")
        self.root = Path(root).resolve()
        #: Called with a URL path no file answers; may make the file (and return it) or return None.
        self.on_missing = on_missing
        self.host = host
        self.missing_status = missing_status
        #: Requests seen per URL path (GET and HEAD), faulted or not.
        self.hits: collections.Counter[str] = collections.Counter()
        self._requested_port = port
        self._faults: dict[str, collections.deque[Fault]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> MirrorServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server((self.host, self._requested_port), _Handler)
        self._httpd.mirror = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"mirror:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a Delay
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("MirrorServer is not running")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        """Full URL of a file under root, e.g. url_for('trip-data/yellow_tripdata_2024-01.parquet')."""
        return self.url + urllib.parse.quote(_norm(path))

    # -- fault injection --

    def inject(self, path: str, *faults: Fault) -> None:
        """Queue one-shot faults for a URL path; each request takes the next one, then service is normal."""
        for fault in faults:
            if not isinstance(fault, (Status, Truncate, Delay, Body)):
                raise TypeError(f"not a fault: {fault!r}")
        with self._lock:
            self._faults[_norm(path)].extend(faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, path: str) -> Fault | None:
        """Count the request and pop its fault, atomically, so concurrent requests see faults in order."""
        with self._lock:
            self.hits[path] += 1
            queue = self._faults.get(path)
            return queue.popleft() if queue else None

    def _resolve(self, path: str) -> Path | None:
        """The file a URL path names, or None if it is missing, a directory, or outside root."""
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            return None
        return candidate if candidate.is_file() else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mirror: MirrorServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up (timeouts, truncation tests) are normal here: no tracebacks on stderr."""
        _log.debug("mirror: error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive and Content-Length, like CloudFront
    server_version = "taxi-assets-mirror/0.1"

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        _log.info("mirror: %s - %s", self.address_string(), format % args)

    def _serve(self, head: bool) -> None:
        mirror = self.server.mirror
        path = _norm(self.path)
        fault = mirror._take(path)
        try:
            if isinstance(fault, Delay):
                if mirror._stopping.wait(fault.seconds):
                    self.close_connection = True
                    return
                fault = None
            if isinstance(fault, Status):
                self._send_bytes(fault.code, fault.body, fault.content_type or "text/plain", head)
            elif isinstance(fault, Body):
                self._send_bytes(200, fault.body, fault.content_type, head)
            else:
                file = mirror._resolve(path)
                if file is None and mirror.on_missing is not None:
                    made = mirror.on_missing(path)
                    file = mirror._resolve(path) if made is not None else None
                if file is None:
                    code = mirror.missing_status
                    self._send_bytes(code, f"{code} {HTTPStatus(code).phrase}\n".encode(), "text/plain", head)
                else:
                    self._send_file(file, head, fault.n_bytes if isinstance(fault, Truncate) else None)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired during a Delay)

    def _send_bytes(self, code: int, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_file(self, file: Path, head: bool, truncate_at: int | None) -> None:
        with file.open("rb") as f:
            st = os.fstat(f.fileno())  # the open file's own size/mtime, even if it is replaced meanwhile
            self.send_response(200)
            self.send_header("Content-Type", _CONTENT_TYPES.get(file.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
            self.end_headers()
            if head:
                return
            remaining = st.st_size if truncate_at is None else min(truncate_at, st.st_size)
            while remaining > 0:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
        if truncate_at is not None:
            self.wfile.flush()
            self.close_connection = True  # the client now sees EOF before Content-Length bytes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.mirror", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to serve, e.g. one holding trip-data/*.parquet")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--missing-status", type=int, choices=(403, 404), default=404, help="403 mimics CloudFront")
    parser.add_argument("--generate", action="store_true",
                        help="make any published month of any service on request (generated, cached in ROOT)")
    parser.add_argument("--rows", type=int, default=None, help="with --generate: rows a month (default per service)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    if args.generate:
        from devtools.generator import MonthsOnRequest

        args.root.mkdir(parents=True, exist_ok=True)
        on_missing = MonthsOnRequest(args.root, rows=args.rows)
    elif not args.root.is_dir():
        parser.error(f"not a directory: {args.root}")
    else:
        on_missing = None
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with MirrorServer(args.root, args.host, args.port, missing_status=args.missing_status, on_missing=on_missing) as server:
        made = " (any month made on request)" if on_missing else ""
        print(f"serving {server.root} at {server.url}{made} (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
