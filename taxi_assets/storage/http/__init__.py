"""HTTP: download one published file safely (streamed, hashed, validated, deadline-bound) and probe
a file's version with HEAD. See transfer.py for why this is more than `requests.get`."""

from taxi_assets.storage.http.checks import FORMATS, Format, validate_local_file
from taxi_assets.storage.http.errors import (
    DeadlineExceeded,
    DownloadError,
    DownloadResult,
    InvalidSourceFile,
    SourceNotPublished,
    SourceVersion,
)
from taxi_assets.storage.http.transfer import DEADLINE_SECONDS, check_source_url, download_file, make_session, probe

__all__ = [
    "DEADLINE_SECONDS",
    "FORMATS",
    "DeadlineExceeded",
    "DownloadError",
    "DownloadResult",
    "Format",
    "InvalidSourceFile",
    "SourceNotPublished",
    "SourceVersion",
    "check_source_url",
    "download_file",
    "make_session",
    "probe",
    "validate_local_file",
]
