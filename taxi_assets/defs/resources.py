"""Resources the assets use: where the TLC files come from, and the lake."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from taxi_assets.storage.http import DEADLINE_SECONDS, DownloadError, DownloadResult, download_file
from taxi_assets.storage.lake import Lake
from taxi_assets.tlc.services import SOURCE_FORMATS, Service
from taxi_assets.settings import TLC_PARQUET_URL, TLC_ZONES_URL


class TlcSource(dg.ConfigurableResource):
    """The TLC's monthly trip files: the real site, the zoomcamp's csv.gz mirror, or an offline mirror."""

    #: Base address; `{service}` in it is replaced by the service (the zoomcamp mirror has one
    #: release per service), and the TLC file name is appended.
    base_url: str = TLC_PARQUET_URL
    format: str = "parquet"
    zones_url: str = TLC_ZONES_URL
    #: Longest wait for the connection, the headers or one read.
    timeout_seconds: float = 120.0
    max_attempts: int = 5
    backoff_seconds: float = 2.0
    #: The whole transfer, retries included.
    deadline_seconds: float = DEADLINE_SECONDS
    #: Hosts a redirect may lead to besides the URL's own (the zoomcamp's GitHub releases redirect).
    redirect_hosts: list[str] = []

    def url_for(self, service: Service, month: dt.date) -> str:
        if self.format not in SOURCE_FORMATS:
            raise ValueError(f"source format {self.format!r}: expected one of {', '.join(SOURCE_FORMATS)}")
        base = self.base_url.rstrip("/").replace("{service}", service.name)
        return f"{base}/{service.file_name(month, self.format)}"


    def fetch(self, url: str, dest_dir: Path, label: str, fmt: str, log: Callable[[str], None]) -> DownloadResult:
        """Download and validate one file; a failure becomes a step failure that says what and why."""
        try:
            return download_file(
                url,
                dest_dir,
                label=label,
                fmt=fmt,
                timeout=self.timeout_seconds,
                max_attempts=self.max_attempts,
                backoff_seconds=self.backoff_seconds,
                log=log,
                deadline_seconds=self.deadline_seconds,
                redirect_hosts=self.redirect_hosts,
            )
        except DownloadError as exc:
            description = str(exc)
            if exc.unreachable:
                description += (
                    f". The source did not answer: is TAXI_SOURCE_URL ({self.base_url}) right? With no internet, "
                    "`make dev-offline` serves every month from a local mirror"
                )
            raise dg.Failure(description=description, metadata={"url": url, "reason": exc.reason}) from exc


class LakeResource(dg.ConfigurableResource):
    """The lake: a local folder (default `data/lake`) or a `gs://bucket/prefix`.

    On GCS, credentials are Application Default Credentials unless `gcp_keyfile` names a
    service-account key file; pass it as `dg.EnvVar("TAXI_GCP_KEYFILE")` so the path stays out of
    run config and the UI. With `STORAGE_EMULATOR_HOST` set, the lake talks to that emulator.
    """

    uri: str = "data/lake"
    gcp_keyfile: str | None = None
    _lake: Lake | None = PrivateAttr(default=None)

    @property
    def lake(self) -> Lake:
        if self._lake is None:
            self._lake = Lake(self.uri, gcp_keyfile=self.gcp_keyfile)
        return self._lake

    @contextlib.contextmanager
    def staging_dir(self) -> Iterator[Path]:
        with self.lake.staging_dir() as path:
            yield path
