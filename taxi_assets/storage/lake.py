"""The lake: a folder tree on the local disk or in a `gs://` bucket, with atomic writes.

One object (a raw file, a month's cleaned parquet) is published atomically by the store itself:
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
import fcntl
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from taxi_assets.storage import gcp
from taxi_assets.storage.overlapped_writes import OverlappedWrites

#: zstd level 1: a tenth larger than level 3 and a third faster to write (the lake is written
#: twice a month per service; reads decompress at the same speed).
PARQUET_WRITE_OPTIONS = dict(compression="zstd", compression_level=1)


def new_version() -> str:
    """A sortable, unique version tag: UTC time first, so later versions sort after earlier ones."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # relative to the dataset root, e.g. "pickup_date=2024-01-01/yellow_2024-01_v.parquet"
    rows: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """What one published month of a date-partitioned dataset consists of."""

    dataset: str
    month: str
    version: str
    rows: int
    files: tuple[ManifestEntry, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "dataset": self.dataset,
                "month": self.month,
                "version": self.version,
                "rows": self.rows,
                "files": [e.__dict__ for e in self.files],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(
            dataset=data["dataset"],
            month=data["month"],
            version=data["version"],
            rows=data["rows"],
            files=tuple(ManifestEntry(**e) for e in data["files"]),
        )


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


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def _write_hive_folders(
    stage: Path, basename: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema, partition_column: str
) -> None:
    """One parquet writer per `{partition_column}=VALUE/` folder, fed slice by slice.

    Each batch is sorted on the partition column and cut into one slice per value, so memory stays
    two batches (one being written, the next being sorted) plus the open writers. (pyarrow's
    write_dataset queues without bound and writes tiny row groups: a 20M-row month took 2.4 GB
    and twice the CPU.)
    """
    file_schema = schema.remove(schema.get_field_index(partition_column))
    writers: dict[object, pq.ParquetWriter] = {}
    try:
        with OverlappedWrites() as writes:  # this batch's slices are written while the next is sorted
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                batch = batch.take(pc.sort_indices(batch.column(partition_column)))  # nulls sort last
                runs = pc.run_end_encode(batch.column(partition_column))
                slices, start = [], 0
                for end, value in zip(runs.run_ends.to_pylist(), runs.values.to_pylist()):
                    writer = writers.get(value)
                    if writer is None:
                        folder = stage / f"{partition_column}={HIVE_NULL if value is None else value}"
                        folder.mkdir(parents=True, exist_ok=True)
                        writer = pq.ParquetWriter(folder / f"{basename}-0.parquet", file_schema, **PARQUET_WRITE_OPTIONS)
                        writers[value] = writer
                    slices.append((writer, batch.slice(start, end - start).drop_columns([partition_column])))
                    start = end
                writes.next_batch()
                for writer, piece in slices:  # one slice per writer: no two threads share a writer
                    writes.submit(writer.write_batch, piece)
    finally:
        for writer in writers.values():
            writer.close()


class Lake:
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
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(local_file, dest)
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

    # -- date-partitioned months, published by manifest ------------------------------------
    def manifest_key(self, dataset: str, month: str) -> str:
        return f"{dataset}/_manifests/{month}.json"

    def read_manifest(self, dataset: str, month: str) -> Manifest | None:
        key = self.manifest_key(dataset, month)
        try:
            return Manifest.from_json(self.read_bytes(key).decode())
        except FileNotFoundError:
            return None

    def publish_partitioned_month(
        self,
        dataset: str,
        month: str,
        file_prefix: str,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        partition_column: str,
        expected_rows: int | None = None,
    ) -> Manifest:
        """Write one month as hive folders `{partition_column}=VALUE/`, publish it, drop older versions.

        `batches` must already carry `partition_column`; it becomes the folder name (as in a hive
        layout, it is not repeated inside the files). With `expected_rows`, a month whose files
        hold another number of rows is refused before any of them is published.
        """
        version = new_version()
        basename = f"{file_prefix}_{month}_{version}"
        with self._month_lock(dataset, month), self.staging_dir() as stage:
            _write_hive_folders(stage, basename, batches, schema, partition_column)
            staged = sorted(stage.rglob("*.parquet"))
            entries = [
                ManifestEntry(file.relative_to(stage).as_posix(), pq.read_metadata(file).num_rows, file.stat().st_size)
                for file in staged
            ]
            manifest = Manifest(dataset, month, version, sum(e.rows for e in entries), tuple(entries))
            if expected_rows is not None and manifest.rows != expected_rows:
                raise ValueError(
                    f"{dataset} {month}: {manifest.rows:,} rows written but the month has {expected_rows:,}; "
                    "not published, the stored month was left as it was"
                )
            for file, entry in zip(staged, entries):
                self.put_file(file, f"{dataset}/{entry.path}")
            current = self._write_manifest(manifest)
            if current is not manifest:
                # A newer run published this month while we worked: ours is stale, withdraw it.
                for entry in entries:
                    self.delete(f"{dataset}/{entry.path}")
                return current
            self._remove_older_versions(dataset, file_prefix, month, manifest)
        return manifest

    def _write_manifest(self, manifest: Manifest) -> Manifest:
        """Make `manifest` the month's published one unless a newer version already is; returns
        the manifest in force afterwards (`manifest` itself when it was written)."""
        key = self.manifest_key(manifest.dataset, manifest.month)
        if not self.is_gcs:
            current = self.read_manifest(manifest.dataset, manifest.month)
            if current is not None and current.version > manifest.version:
                return current
            self.put_bytes(manifest.to_json().encode(), key)
            return manifest
        # GCS: compare-and-swap on the manifest object's generation (0 = "must not exist yet").
        from google.api_core.exceptions import NotFound, PreconditionFailed

        bucket_name, _, name = self.path(key).partition("/")
        bucket = self.storage_client().bucket(bucket_name)
        for _ in range(20):
            generation = 0
            blob = bucket.get_blob(name)
            if blob is not None:
                try:
                    current = Manifest.from_json(blob.download_as_bytes(if_generation_match=blob.generation).decode())
                except (NotFound, PreconditionFailed):
                    continue  # replaced between the two calls: read again
                if current.version > manifest.version:
                    return current
                generation = blob.generation
            try:
                bucket.blob(name).upload_from_string(
                    manifest.to_json().encode(), content_type="application/json", if_generation_match=generation
                )
                return manifest
            except PreconditionFailed:
                continue  # another publisher wrote it since we read it: decide again
        raise RuntimeError(f"{self.display(key)}: the manifest kept changing under us; not published")

    def month_files(self, dataset: str, month: str) -> list[str]:
        """Keys of the files the current manifest of a month names (the published month)."""
        manifest = self.read_manifest(dataset, month)
        return [f"{dataset}/{e.path}" for e in manifest.files] if manifest else []

    def read_partitioned_month(self, dataset: str, month: str, partition_column: str) -> ds.Dataset | None:
        """The published month as a dataset, the (date) partition column restored from the folder names."""
        manifest = self.read_manifest(dataset, month)
        if manifest is None:
            return None
        return ds.dataset(
            [self.path(f"{dataset}/{e.path}") for e in manifest.files],
            filesystem=self.fs,
            format="parquet",
            partitioning=ds.HivePartitioning(pa.schema([(partition_column, pa.date32())]), null_fallback=HIVE_NULL),
            partition_base_dir=self.path(dataset),
        )

    def _remove_older_versions(self, dataset: str, file_prefix: str, month: str, keep: Manifest) -> None:
        """Delete this month's files that the manifest does not name: older versions, and the
        leftovers of runs killed before they published. Newer versions are never touched."""
        wanted = {e.path for e in keep.files}
        marker = f"{file_prefix}_{month}_"
        selector = pafs.FileSelector(self.path(dataset), recursive=True, allow_not_found=True)
        base = self.path(dataset) + "/"
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File or not info.base_name.startswith(marker):
                continue
            rel = info.path[len(base):] if info.path.startswith(base) else info.path
            version = info.base_name[len(marker):].rsplit("-", 1)[0]
            if rel not in wanted and version < keep.version:
                self.fs.delete_file(info.path)
        if self.is_local:
            for folder in Path(self.path(dataset)).glob("*=*"):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only succeeds when empty

    @contextlib.contextmanager
    def _month_lock(self, dataset: str, month: str) -> Iterator[None]:
        """Serialise publishers of one month on a local lake (on GCS, Dagster's pools do this)."""
        if not self.is_local:
            yield
            return
        lock_dir = Path(self.path("_locks"))
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{dataset.replace('/', '_')}_{month}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
