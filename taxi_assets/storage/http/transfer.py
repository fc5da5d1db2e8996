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
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Callable, TypeVar

import requests
import urllib3

from taxi_assets.storage.http.checks import CHUNK, Format, MiB, _check_format, _Progress, _Validator
from taxi_assets.storage.http.errors import (
    DeadlineExceeded,
    DownloadError,
    DownloadResult,
    InvalidSourceFile,
    SourceNotPublished,
    SourceVersion,
    _Invalid,
    _Retry,
)

USER_AGENT = "taxi_assets/0.1"
MAX_BACKOFF_SECONDS = 30.0
MAX_REDIRECTS = 5
#: The whole transfer of one file, retries included (a 500 MB fhvhv month at 1 MiB/s takes ~500 s).
DEADLINE_SECONDS = 3600.0
SCHEMES = ("http", "https")

# Ask for the bytes as stored: a Content-Encoding would make Content-Length describe other bytes.
_HEADERS = {"Accept-Encoding": "identity"}

T = TypeVar("T")


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
    progress_seconds: float = 2.0,
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
                progress_every=progress_every, progress_seconds=progress_seconds, attempt=attempt, deadline=deadline,
                redirect_hosts=redirect_hosts,
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
    progress_seconds: float,
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
            progress = _Progress(label, expected, progress_every, log, progress_seconds)
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
