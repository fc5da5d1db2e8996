"""Download one TLC file safely: stream it, hash it, validate it, and only then hand it over.

Why this is more than `requests.get(url).content`:
- fhvhv months are 400-500 MB, so the body is streamed to a temp file in 1 MiB chunks and never
  held in memory; sha256, the byte count and (for csv.gz) the row count are computed in that pass.
- CloudFront answers 403 (not 404) for a month that is not published yet; that is an expected
  state, reported as `SourceNotPublished` without retries. 5xx, 429, dropped connections, timeouts
  and truncated bodies are transient and retried with exponential backoff.
- A 200 can still be wrong: an HTML error page, a truncated parquet, a gzip cut short. Such a
  file is rejected (`InvalidSourceFile`) before anything is kept, so the lake never stores it.
- On any failure nothing is left in dest_dir. On success the caller gets the temp file (same
  directory as its final home) and moves it into place with one atomic rename.
- The whole transfer, retries included, has a deadline: a server trickling bytes (each read within
  the read timeout) cannot hold a download slot for ever.
- Only http and https are fetched, and a redirect is followed only to the URL's own host or to a
  host allowed by name: a redirect to an internal address (a cloud metadata endpoint) is refused.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import time
import urllib.parse
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, TypeVar

import requests
import urllib3

Format = Literal["parquet", "csv.gz", "csv"]
FORMATS: tuple[str, ...] = ("parquet", "csv.gz", "csv")

USER_AGENT = "taxi_assets/0.1"
CHUNK = 1 << 20  # 1 MiB: read size for the network, the disk and the gzip check
MiB = 1 << 20
MAX_BACKOFF_SECONDS = 30.0
MAX_REDIRECTS = 5
#: The whole transfer of one file, retries included (a 500 MB fhvhv month at 1 MiB/s takes ~500 s).
DEADLINE_SECONDS = 3600.0
SCHEMES = ("http", "https")
#: Progress interval when the server sends no Content-Length.
PROGRESS_BYTES_UNKNOWN_SIZE = 64 * MiB

_PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 512
# Ask for the bytes as stored: a Content-Encoding would make Content-Length describe other bytes.
_HEADERS = {"Accept-Encoding": "identity"}

T = TypeVar("T")


# --- errors ----------------------------------------------------------------------------------


class DownloadError(Exception):
    """The file could not be fetched (after retries, or a non-retryable HTTP status)."""

    def __init__(self, message: str, *, label: str, url: str, reason: str, attempts: int = 1, unreachable: bool = False):
        super().__init__(message)
        self.label = label
        self.url = url
        self.reason = reason
        self.attempts = attempts
        #: No answer at all (name resolution, refused connection, timeout): the address may be wrong.
        self.unreachable = unreachable


class SourceNotPublished(DownloadError):
    """403/404: the TLC has not published this month (CloudFront says 403 for a missing object)."""

    def __init__(self, *, label: str, url: str, status: int):
        super().__init__(
            f"{label} is not published yet: {status} from {url}", label=label, url=url, reason=str(status)
        )
        self.status = status


class InvalidSourceFile(DownloadError):
    """The bytes arrived but are not a valid file of the expected format; retrying will not help."""

    def __init__(self, *, label: str, url: str, reason: str, fmt: str):
        super().__init__(f"{label}: {url} is not a valid {fmt} file: {reason}", label=label, url=url, reason=reason)
        self.fmt = fmt


class DeadlineExceeded(DownloadError):
    """The whole transfer, retries included, took longer than its deadline; not retried."""


class _Retry(Exception):
    """Internal: this attempt failed in a way that another attempt may fix."""

    def __init__(self, reason: str, retry_after: float | None = None, unreachable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.unreachable = unreachable


class _Invalid(Exception):
    """Internal: validation failed; turned into InvalidSourceFile by whoever knows the label/URL."""


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadResult:
    #: The validated temp file inside dest_dir; the caller moves it into the lake (os.replace).
    path: Path
    url: str
    bytes: int
    sha256: str
    etag: str | None
    last_modified: str | None
    content_type: str | None
    #: parquet: from the footer; csv.gz / csv: newlines counted, minus the header.
    row_count: int | None
    attempts: int


@dataclass(frozen=True)
class SourceVersion:
    """What a HEAD request says about a published file: enough to tell a re-publication apart."""

    url: str
    etag: str | None
    last_modified: str | None
    content_length: int | None

    @property
    def token(self) -> str:
        """A stable version string for a sensor's run_key: the ETag, else Last-Modified + length."""
        if self.etag:
            return self.etag.removeprefix("W/").strip('"')
        length = "no-length" if self.content_length is None else self.content_length
        return f"{self.last_modified or 'no-last-modified'}|{length}"


# --- public API ------------------------------------------------------------------------------


def check_source_url(url: str, what: str = "source URL") -> str:
    """Refuse anything but an absolute http(s) URL with a host, before any connection is made."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise ValueError(f"{what} {url!r}: only http:// and https:// URLs with a host are fetched")
    return url


def _host(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def _send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    label: str,
    redirect_hosts: Collection[str],
    timeout: float | tuple[float, float],
    stream: bool = False,
) -> requests.Response:
    """One request, following redirects only to `url`'s own host and to `redirect_hosts`."""
    allowed = {_host(url), *(h.lower() for h in redirect_hosts)}
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            resp = session.request(method, current, timeout=timeout, headers=_HEADERS, stream=stream, allow_redirects=False)
        except requests.RequestException as exc:
            unreachable = isinstance(exc, (requests.ConnectionError, requests.Timeout))
            raise _Retry(_describe(exc), unreachable=unreachable) from exc
        if not resp.is_redirect:
            return resp
        target = urllib.parse.urljoin(current, resp.headers.get("Location", ""))
        resp.close()
        if urllib.parse.urlsplit(target).scheme.lower() not in SCHEMES or _host(target) not in allowed:
            reason = f"redirect to {_host(target) or target!r} refused (allowed hosts: {', '.join(sorted(allowed))})"
            raise DownloadError(f"{label}: {reason}, from {url}", label=label, url=url, reason=reason)
        current = target
    reason = f"more than {MAX_REDIRECTS} redirects"
    raise DownloadError(f"{label}: {reason} from {url}", label=label, url=url, reason=reason)


def make_session() -> requests.Session:
    """A requests session that identifies the pipeline to the TLC's servers."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def download_file(
    url: str,
    dest_dir: Path,
    *,
    label: str,
    fmt: Format,
    session: requests.Session | None = None,
    timeout: float = 60,
    max_attempts: int = 5,
    backoff_seconds: float = 1.0,
    log: Callable[[str], None] | None = None,
    progress_every: float = 0.1,
    deadline_seconds: float = DEADLINE_SECONDS,
    redirect_hosts: Collection[str] = (),
) -> DownloadResult:
    """Fetch `url` into a temp file in `dest_dir`, validated as `fmt`; see the module docstring.

    `label` (e.g. "yellow 2024-01") names the file in messages and errors. Raises
    SourceNotPublished (403/404), InvalidSourceFile (bad content), DeadlineExceeded (the whole
    transfer took longer than `deadline_seconds`), DownloadError (anything else).
    """
    _check_format(fmt)
    check_source_url(url)
    deadline = time.monotonic() + deadline_seconds
    if not 0 < progress_every <= 1:
        raise ValueError(f"progress_every must be in (0, 1], not {progress_every}")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    say = log or _no_log
    own_session = session is None
    http = session or make_session()
    try:
        return _retrying(
            lambda attempt: _fetch_once(
                http, url, dest_dir, label=label, fmt=fmt, timeout=timeout, log=say,
                progress_every=progress_every, attempt=attempt, deadline=deadline, redirect_hosts=redirect_hosts,
            ),
            label=label, url=url, max_attempts=max_attempts, backoff_seconds=backoff_seconds, log=say,
            deadline=deadline,
        )
    finally:
        if own_session:
            http.close()


def probe(
    url: str,
    *,
    session: requests.Session | None = None,
    timeout: float = 30,
    max_attempts: int = 5,
    backoff_seconds: float = 1.0,
    redirect_hosts: Collection[str] = (),
) -> SourceVersion | None:
    """HEAD `url`: its version if published, None on 403/404 (not published yet).

    Cheap enough for a sensor to call every tick; other statuses are retried like downloads and
    then raise DownloadError.
    """
    check_source_url(url)
    label = _file_name(url)
    own_session = session is None
    http = session or make_session()

    def once(attempt: int) -> SourceVersion | None:
        resp = _send(http, "HEAD", url, label=label, redirect_hosts=redirect_hosts, timeout=timeout)
        with resp:
            try:
                _check_status(resp, label=label, url=url)
            except SourceNotPublished:
                return None
            return SourceVersion(
                url=url,
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
                content_length=_content_length(resp),
            )

    try:
        return _retrying(
            once, label=label, url=url, max_attempts=max_attempts, backoff_seconds=backoff_seconds, log=_no_log
        )
    finally:
        if own_session:
            http.close()


def validate_local_file(path: Path, fmt: Format) -> int | None:
    """Apply the download checks to a file already on disk; returns its row count.

    Raises InvalidSourceFile. Used by tests, by the sample-data generator, and to re-check the lake.
    """
    _check_format(fmt)
    path = Path(path)
    validator = _Validator(fmt)
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                validator.feed(chunk)
        return validator.finish(path)
    except _Invalid as exc:
        raise InvalidSourceFile(label=path.name, url=path.resolve().as_uri(), reason=str(exc), fmt=fmt) from None


# --- one attempt -----------------------------------------------------------------------------


def _fetch_once(
    session: requests.Session,
    url: str,
    dest_dir: Path,
    *,
    label: str,
    fmt: str,
    timeout: float,
    log: Callable[[str], None],
    progress_every: float,
    attempt: int,
    deadline: float,
    redirect_hosts: Collection[str],
) -> DownloadResult:
    # No single wait may pass the deadline: not the connection, nor the headers, nor one read.
    wait = max(min(timeout, deadline - time.monotonic()), 0.001)
    resp = _send(session, "GET", url, label=label, redirect_hosts=redirect_hosts, timeout=wait, stream=True)

    def invalid(reason: str) -> InvalidSourceFile:
        return InvalidSourceFile(label=label, url=url, reason=reason, fmt=fmt)

    with resp:
        _check_status(resp, label=label, url=url)
        content_type = resp.headers.get("Content-Type")
        if content_type and content_type.split(";")[0].strip().lower() == "text/html":
            raise invalid(f"the server sent an HTML page (Content-Type {content_type})")
        expected = _content_length(resp)

        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{_file_name(url)}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            validator = _Validator(fmt)
            digest = hashlib.sha256()
            received = 0
            progress = _Progress(label, expected, progress_every, log)
            started = time.monotonic()
            with os.fdopen(fd, "wb") as out:
                try:
                    for chunk in _body(resp):
                        out.write(chunk)
                        digest.update(chunk)
                        validator.feed(chunk)
                        received += len(chunk)
                        progress.update(received)
                        if time.monotonic() > deadline:
                            of = f" of {expected:,}" if expected is not None else ""
                            raise _deadline_error(label, url, f"{received:,}{of} bytes received")
                except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                    of = f" of {expected}" if expected is not None else ""
                    raise _Retry(f"body cut short ({received}{of} bytes saved): {_describe(exc)}") from exc
                if expected is not None and received != expected:
                    raise _Retry(f"truncated body: {received} of {expected} bytes (Content-Length)")
                out.flush()
                os.fsync(out.fileno())  # the caller renames it into the lake; make the rename durable
            row_count = validator.finish(tmp)
        except _Invalid as exc:
            tmp.unlink(missing_ok=True)
            raise invalid(str(exc)) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    seconds = max(time.monotonic() - started, 1e-9)
    log(f"{label}: downloaded {received / MiB:.1f} MiB in {seconds:.1f} s ({received / MiB / seconds:.1f} MiB/s)")
    return DownloadResult(
        path=tmp,
        url=url,
        bytes=received,
        sha256=digest.hexdigest(),
        etag=resp.headers.get("ETag"),
        last_modified=resp.headers.get("Last-Modified"),
        content_type=content_type,
        row_count=row_count,
        attempts=attempt,
    )


def _body(resp: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, one socket read at a time (at most CHUNK bytes).

    Not `iter_content`: its reads wait for a whole chunk, so a server trickling a few bytes within
    each read timeout would keep one read going far past the deadline.
    """
    raw = resp.raw
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.read_chunked(CHUNK, decode_content=False)
        return
    while chunk := raw.read1(CHUNK, decode_content=False):
        yield chunk


def _deadline_error(label: str, url: str, progress: str) -> DeadlineExceeded:
    reason = f"the download took longer than its deadline ({progress})"
    return DeadlineExceeded(f"{label}: {reason} from {url}; not retried", label=label, url=url, reason=reason)


def _check_status(resp: requests.Response, *, label: str, url: str) -> None:
    """Sort a status into fine / not published / transient / fatal."""
    code = resp.status_code
    if code == 200:
        return
    if code in (403, 404):
        raise SourceNotPublished(label=label, url=url, status=code)
    status = f"HTTP {code} {resp.reason}" if resp.reason else f"HTTP {code}"
    if code == 429 or code >= 500:
        raise _Retry(status, _retry_after(resp))
    raise DownloadError(f"{label}: {status} from {url} (not retried)", label=label, url=url, reason=status)


def _retrying(
    fn: Callable[[int], T],
    *,
    label: str,
    url: str,
    max_attempts: int,
    backoff_seconds: float,
    log: Callable[[str], None],
    deadline: float | None = None,
) -> T:
    """Call fn(attempt) until it stops raising _Retry; sleep backoff * 2**n (capped, jittered) between.

    With a `deadline` (a time.monotonic() value), no attempt starts, and no backoff sleeps, past it.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, not {max_attempts}")
    reason, unreachable = "", False
    for attempt in range(1, max_attempts + 1):
        try:
            return fn(attempt)
        except _Retry as exc:
            reason, unreachable = exc.reason, exc.unreachable
            if deadline is not None and time.monotonic() >= deadline:
                raise _deadline_error(label, url, f"attempt {attempt}: {reason}") from None
            if attempt == max_attempts:
                break
            delay = min(backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            if exc.retry_after is not None:
                delay = min(max(delay, exc.retry_after), MAX_BACKOFF_SECONDS)
            delay += random.uniform(0, 0.1 * delay)  # jitter: parallel partitions do not retry in lockstep
            if deadline is not None:
                delay = min(delay, max(deadline - time.monotonic(), 0))
            log(f"{label}: attempt {attempt}/{max_attempts} failed ({reason}); retrying in {delay:.2f} s")
            time.sleep(delay)
    raise DownloadError(
        f"{label}: download failed after {max_attempts} attempts from {url}: {reason}",
        label=label, url=url, reason=reason, attempts=max_attempts, unreachable=unreachable,
    )


class _Progress:
    """Logs 'yellow 2024-01: 12.0 / 48.2 MiB (25%)' each time another `every` of the file arrives."""

    def __init__(self, label: str, total: int | None, every: float, log: Callable[[str], None]):
        self.label, self.total, self.log = label, total, log
        self.step = max(1, int(total * every)) if total else PROGRESS_BYTES_UNKNOWN_SIZE
        self.next_mark = self.step

    def update(self, done: int) -> None:
        if done < self.next_mark:
            return
        self.next_mark = (done // self.step + 1) * self.step
        if self.total:
            pct = 100 * done / self.total
            self.log(f"{self.label}: {done / MiB:.1f} / {self.total / MiB:.1f} MiB ({pct:.0f}%)")
        else:
            self.log(f"{self.label}: {done / MiB:.1f} MiB")


# --- validation ------------------------------------------------------------------------------


class _Validator:
    """Checks a file's bytes as they stream past, so a download is read exactly once."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.size = 0
        self.head = b""
        self.tail = b""
        self._gzip = _GzipLines() if fmt == "csv.gz" else None
        self._lines = _Lines() if fmt == "csv" else None

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < _SNIFF_BYTES:
            self.head += chunk[: _SNIFF_BYTES - len(self.head)]
        self.tail = (self.tail + chunk[-4:])[-4:]
        self.size += len(chunk)
        try:
            if self._gzip is not None:
                self._gzip.feed(chunk)
            elif self._lines is not None:
                self._lines.feed(chunk)
        except _Invalid:
            self._refuse_html()  # "an HTML page" says more than "incorrect header check"
            raise

    def finish(self, path: Path) -> int | None:
        if self.size == 0:
            raise _Invalid("empty body")
        self._refuse_html()
        if self._gzip is not None:
            return self._gzip.finish()
        if self._lines is not None:
            return self._lines.finish()
        return self._finish_parquet(path)

    def _refuse_html(self) -> None:
        start = self.head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if start.startswith((b"<!doctype", b"<html")):
            raise _Invalid("the body is an HTML page")

    def _finish_parquet(self, path: Path) -> int:
        import pyarrow.parquet as pq  # only parquet needs it; keeps `import download` light

        if self.size < 12:
            raise _Invalid(f"only {self.size} bytes, too small for parquet")
        if self.head[:4] != _PARQUET_MAGIC:
            raise _Invalid(f"does not start with parquet magic PAR1 (starts with {self.head[:4]!r})")
        if self.tail != _PARQUET_MAGIC:
            raise _Invalid(f"does not end with parquet magic PAR1 (ends with {self.tail!r}); truncated?")
        try:
            return pq.read_metadata(str(path)).num_rows
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a broken footer
            raise _Invalid(f"parquet footer does not parse: {exc}") from None


class _Lines:
    """Counts newlines and checks there is a header line; rows = lines - 1.

    Counts raw newlines, so a quoted field containing a newline would count twice (TLC files have none).
    """

    _MAX_HEADER = 1 << 20

    def __init__(self) -> None:
        self.newlines = 0
        self.size = 0
        self.last = b""
        self.header = b""
        self.header_done = False

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.newlines += data.count(b"\n")
        self.size += len(data)
        self.last = data[-1:]
        if not self.header_done:
            end = data.find(b"\n")
            self.header += data if end < 0 else data[:end]
            self.header_done = end >= 0 or len(self.header) > self._MAX_HEADER

    def finish(self) -> int:
        if self.size == 0:
            raise _Invalid("no data: the CSV is empty")
        if not self.header.strip():
            raise _Invalid("no header line: the first line is blank")
        lines = self.newlines + (self.last != b"\n")  # a last line without a newline still counts
        return lines - 1


class _GzipLines:
    """Decompresses a (multi-member) gzip stream to its end, counting CSV lines on the way.

    zlib with wbits=31 checks each member's CRC32 and ISIZE; output is bounded per call, so a
    highly compressed file never expands in memory. After a member ends, only another gzip member
    may follow: anything else is trailing garbage.
    """

    _MAX_OUT = 4 * CHUNK

    def __init__(self) -> None:
        self._d = zlib.decompressobj(31)
        self.lines = _Lines()
        self.members = 1

    def feed(self, data: bytes) -> None:
        try:
            while True:
                if self._d.eof:
                    if not data:
                        return
                    self._d = zlib.decompressobj(31)  # a further member (or garbage: zlib will say)
                    self.members += 1
                out = self._d.decompress(data, self._MAX_OUT)
                self.lines.feed(out)
                if self._d.eof:
                    data = self._d.unused_data
                elif self._d.unconsumed_tail or len(out) == self._MAX_OUT:
                    data = self._d.unconsumed_tail  # output was capped: keep draining
                else:
                    return
        except zlib.error as exc:
            where = f"member {self.members}, after {self.lines.size} decompressed bytes"
            raise _Invalid(f"corrupt gzip ({where}): {exc}") from None

    def finish(self) -> int:
        if not self._d.eof:
            raise _Invalid(
                f"gzip stream ends early (member {self.members} has no end-of-stream marker, "
                f"{self.lines.size} bytes decompressed): truncated?"
            )
        return self.lines.finish()


# --- small helpers ---------------------------------------------------------------------------


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def _no_log(message: str) -> None:
    pass


def _file_name(url: str) -> str:
    return Path(urllib.parse.urlsplit(url).path).name or "download"


def _content_length(resp: requests.Response) -> int | None:
    value = resp.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(resp: requests.Response) -> float | None:
    """Retry-After in seconds (429/503), when given as a number."""
    try:
        return float(resp.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _describe(exc: BaseException) -> str:
    """A one-line reason; requests nests urllib3 errors in args, so take the innermost message."""
    inner: object = exc
    while isinstance(inner, BaseException) and inner.args:
        inner = inner.args[0]
    text = str(inner) if isinstance(inner, str) else str(exc)
    kind = "timeout" if isinstance(exc, requests.Timeout) else exc.__class__.__name__
    return f"{kind}: {text}"
