"""What a download reports: its failures, and what it found (the file, the source's version)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
