"""The lake: a folder tree on the local disk or in a `gs://` bucket, with atomic writes.

One object (a raw file, a month's rejected rows) is published atomically by the store itself:
a rename on a local disk, a single object upload on GCS. A month of the date-partitioned output is
many files in many `pickup_date=` folders, which no store can swap at once, so it is published with
a manifest: the files go in under a fresh version, the manifest naming them is written last (one
atomic object), and only then are older versions removed. Readers that go through the manifest
only ever see complete months.

On GCS (`gs://bucket/prefix`, see `taxi_assets.storage.gcp` for credentials and the emulator) the
manifest is written with a generation precondition (`ifGenerationMatch`): a publisher replaces
exactly the manifest it read, or none at all, so an older run can never overwrite a newer one's
manifest, even without the local file lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from taxi_assets.storage import gcp
from taxi_assets.storage.manifests import HIVE_NULL, Manifest, ManifestMonths, new_version, parquet_write_options



def _sweep_abandoned(base: Path, min_age_seconds: float = 3600, prefix: str = "stage-") -> None:
    """Remove staging folders left by killed processes (their pid is gone and they are old)."""
    now = time.time()
    for folder in base.glob(f"{prefix}*-*"):
        try:
            pid = int(folder.name[len(prefix):].split("-")[0])
            if now - folder.stat().st_mtime < min_age_seconds:
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, OSError):
            continue


def _rename_into_folder(local_file: Path, dest: str, attempts: int = 5) -> None:
    """Rename into `dest`'s folder, making the folder first. A publisher of another month removes
    the empty date folders it leaves; if one removes ours between our mkdir and our rename (a folder
    two months share, e.g. the null date), make it again."""
    for attempt in range(attempts):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(local_file, dest)
            return
        except FileNotFoundError:
            if attempt == attempts - 1 or not Path(local_file).exists():
                raise


class Lake(ManifestMonths):
    """Keys are '/'-separated paths under the lake root, e.g. 'raw/yellow/yellow_tripdata_2024-01.parquet'."""

    def __init__(
        self, uri: str, filesystem: pafs.FileSystem | None = None, gcp_keyfile: str | None = None, gcs_emulator_host: str | None = None
    ):
        self.uri = uri.rstrip("/")
        self._gcs_emulator_host = gcs_emulator_host
        self.scheme = self.uri.split("://", 1)[0] if "://" in self.uri else "file"
        self._gcp_keyfile = gcp_keyfile  # a path, never logged; see taxi_assets.storage.gcp
        self._fs_expires: dt.datetime | None = None
        self._storage_client = None
        if filesystem is not None:
            self._fs, self.root = filesystem, self.uri.split("://", 1)[-1]
        elif self.scheme == "gs":
            self._fs, self._fs_expires = gcp.gcs_filesystem(gcp_keyfile, gcs_emulator_host)
            self.root = self.uri[len("gs://"):]
        elif "://" in self.uri:
            self._fs, self.root = pafs.FileSystem.from_uri(self.uri)
        else:
            self._fs, self.root = pafs.LocalFileSystem(), str(Path(self.uri).resolve())
        self.root = self.root.rstrip("/")
        self.is_local = isinstance(self._fs, pafs.LocalFileSystem)
        self.is_gcs = self.scheme == "gs"

    @property
    def fs(self) -> pafs.FileSystem:
        """The filesystem; on GCS with a key file, rebuilt before its access token expires."""
        if self._fs_expires is not None and dt.datetime.now(dt.timezone.utc) > self._fs_expires - dt.timedelta(minutes=5):
            self._fs, self._fs_expires = gcp.gcs_filesystem(self._gcp_keyfile, self._gcs_emulator_host)
        return self._fs

    def storage_client(self):
        """A google-cloud-storage client for this lake's bucket (GCS only)."""
        if not self.is_gcs:
            raise TypeError(f"{self.uri} is not a gs:// lake")
        if self._storage_client is None:
            self._storage_client = gcp.storage_client(self._gcp_keyfile, self._gcs_emulator_host)
        return self._storage_client

    # -- addressing -------------------------------------------------------------------------
    def path(self, key: str) -> str:
        return f"{self.root}/{key.strip('/')}"

    def display(self, key: str) -> str:
        """Where a key lives, as a user would type it (a folder path or a gs:// URI)."""
        if self.is_local:
            return self.path(key)
        return f"{self.uri.split('://', 1)[0]}://{self.path(key)}"

    def local_path(self, key: str) -> Path | None:
        """The key as a local file path when the lake is on this disk (fast paths use it)."""
        return Path(self.path(key)) if self.is_local else None

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self.path(key)).type != pafs.FileType.NotFound

    def size(self, key: str) -> int:
        return self.fs.get_file_info(self.path(key)).size

    # -- staging ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def staging_dir(self) -> Iterator[Path]:
        """A private local folder for work in progress, removed afterwards whatever happens.

        On a local lake it sits inside the lake so that publishing is a rename on one filesystem.
        """
        if self.is_local:
            base = Path(self.path("_staging"))
            base.mkdir(parents=True, exist_ok=True)
            _sweep_abandoned(base)
            tmp = Path(tempfile.mkdtemp(prefix=f"stage-{os.getpid()}-", dir=base))
        else:
            _sweep_abandoned(Path(tempfile.gettempdir()), prefix="taxi-stage-")
            tmp = Path(tempfile.mkdtemp(prefix=f"taxi-stage-{os.getpid()}-"))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- single objects ---------------------------------------------------------------------
    def put_file(self, local_file: Path, key: str) -> None:
        """Publish a finished local file at `key` atomically, replacing what was there.

        The file is consumed: on a local lake it is renamed into place.
        """
        dest = self.path(key)
        if self.is_local:
            try:
                _rename_into_folder(local_file, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # A rename is atomic only within one filesystem: copy next to the destination,
                # then rename that.
                tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
                shutil.copyfile(local_file, tmp)
                os.replace(tmp, dest)
                os.unlink(local_file)
        else:
            # One object upload is atomic on GCS: readers see the old object until it completes.
            # GCS has no folders: creating one would only leave a marker object behind.
            if not self.is_gcs:
                self.fs.create_dir(str(Path(dest).parent), recursive=True)
            pafs.copy_files(str(local_file), dest, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)

    def put_bytes(self, data: bytes, key: str) -> None:
        dest = self.path(key)
        if self.is_local:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        else:
            with self.fs.open_output_stream(dest) as out:
                out.write(data)

    def read_bytes(self, key: str) -> bytes:
        with self.fs.open_input_stream(self.path(key)) as fh:
            return fh.read()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(key))

    def parquet_file(self, key: str) -> pq.ParquetFile:
        # pre_buffer=False: Arrow's pre-buffering keeps every row group it read in memory until the
        # file closes, so memory would grow with the month instead of staying one batch.
        return pq.ParquetFile(self.fs.open_input_file(self.path(key)), pre_buffer=False)

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """The object as a local file: the file itself on a local lake, a temporary download otherwise."""
        local = self.local_path(key)
        if local is not None:
            yield local
            return
        with self.staging_dir() as tmp:
            target = tmp / key.rsplit("/", 1)[-1]
            pafs.copy_files(self.path(key), str(target), source_filesystem=self.fs, destination_filesystem=pafs.LocalFileSystem())
            yield target


__all__ = ["HIVE_NULL", "Lake", "Manifest", "new_version", "parquet_write_options"]
