"""A month of many files, published at once by a manifest.

A month of the date-partitioned output is many files in many `pickup_date=` folders, which no store
can swap at once: the files go in under a fresh version, the manifest naming them is written last
(one atomic object), and only then are older versions removed. Readers that go through the manifest
only ever see complete months. On GCS the manifest is written with a generation precondition, so an
older run can never overwrite a newer one's manifest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from taxi_assets.storage.overlapped_writes import OverlappedWrites

def parquet_write_options(schema: pa.Schema) -> dict[str, object]:
    """How the lake writes parquet. zstd level 1: a tenth larger than level 3 and a third faster to
    write (the lake is written twice a month per service; reads decompress at the same speed). No
    dictionary for timestamp columns: a month's trip times (to the second) overflow it, so Arrow
    built one only to fall back to plain pages. Without it, a 2.8M-row yellow month wrote in 1.06
    against 1.87 s, read back in 0.59 against 0.72 s, 57 against 68 MB (2M fhvhv rows: 1.46 / 1.71 s,
    52 / 69 MB)."""
    return {
        "compression": "zstd",
        "compression_level": 1,
        "use_dictionary": [f.name for f in schema if not pa.types.is_timestamp(f.type)],
    }


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


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


#: Files a folder's rows are spread over, batch by batch in turn. The TLC publishes its months
#: roughly in pickup order, so consecutive batches fall on the same day: with one file a day its
#: slices were encoded one after the other on one thread while the other core waited (a 20M-row
#: fhvhv month's pass: 1.6 cores busy); with two, batch N+1's slice of the day is encoded beside
#: batch N's (1.9 cores, the pass 0.83-0.88x, alternated).
FILES_PER_FOLDER = 2


class Filtered(NamedTuple):
    """A batch and which of its rows to write (`keep`, no nulls): the rows are copied out by the
    thread that writes them, day by day, not by the thread that reads and cleans the month."""

    batch: pa.RecordBatch
    keep: pa.BooleanArray


def write_hive_folders(
    stage: Path, basename: str, batches: Iterable[pa.RecordBatch | Filtered], schema: pa.Schema, partition_column: str
) -> None:
    """Parquet writers per `{partition_column}=VALUE/` folder (`{basename}-K.parquet`, K below
    FILES_PER_FOLDER), fed slice by slice: a value's slices go to its files in turn.

    Each batch is sorted on the partition column and cut into one slice per value, so memory stays
    a few batches (FILES_PER_FOLDER being written, the next being sorted) plus the open writers.
    (pyarrow's write_dataset queues without bound and writes tiny row groups: a 20M-row month took
    2.4 GB and twice the CPU.) A batch already in order is cut as it is: the TLC publishes its months
    roughly in pickup order, so most batches are, and the sort's copy of every column was a
    seventh of a 20M-row fhvhv month's writing. A `Filtered` batch in order is cut by where its
    kept rows lie, and each slice filtered as it is written: the cleaner's copy of every kept row
    was a fifth of the reading thread's work, the thread a yellow month's pass waits on.

    A column may come as a dictionary of its declared type's values (text the source stored so):
    its codes are written as they are, and such files store no Arrow schema, so that they read
    back as `schema` says, not as dictionaries.
    """
    declared = schema.remove(schema.get_field_index(partition_column))
    writers: dict[tuple[object, int], pq.ParquetWriter] = {}
    slices_of: dict[object, int] = {}
    try:
        # A file gets a slice at most every FILES_PER_FOLDER batches (a value has one run a batch),
        # and that many batches are written at once: no two threads share a writer, and each file
        # receives its slices in order.
        with OverlappedWrites(depth=FILES_PER_FOLDER) as writes:
            for item in batches:
                batch, keep = (item.batch, item.keep) if isinstance(item, Filtered) else (item, None)
                values = batch.column(partition_column)
                if keep is not None:
                    values = values.filter(keep)
                if len(values) == 0:
                    continue
                if not _in_order(values):
                    if keep is not None:
                        batch, keep = batch.filter(keep), None
                    batch = batch.take(pc.sort_indices(batch.column(partition_column)))  # stable; nulls last
                    values = batch.column(partition_column)
                runs = pc.run_end_encode(values)
                ends = runs.run_ends.to_pylist()
                starts = [0, *ends[:-1]]
                if keep is not None:  # the runs' bounds among the kept rows, as rows of the batch
                    where = pc.indices_nonzero(keep)
                    starts = where.take(pa.array(starts)).to_pylist()
                    ends = [last + 1 for last in where.take(pa.array([end - 1 for end in ends])).to_pylist()]
                slices = []
                for start, end, value in zip(starts, ends, runs.values.to_pylist()):
                    turn = slices_of.get(value, 0)
                    slices_of[value] = turn + 1
                    key = (value, turn % FILES_PER_FOLDER)
                    writer = writers.get(key)
                    if writer is None:
                        folder = stage / f"{partition_column}={HIVE_NULL if value is None else value}"
                        folder.mkdir(parents=True, exist_ok=True)
                        path = folder / f"{basename}-{key[1]}.parquet"
                        written = _written_schema(declared, batch.schema.remove(batch.schema.get_field_index(partition_column)))
                        writer = writers[key] = pq.ParquetWriter(
                            path, written, store_schema=written.types == declared.types, **parquet_write_options(declared)
                        )
                    slices.append((writer, start, end))
                writes.next_batch()
                for writer, start, end in slices:
                    writes.submit(_write_slice, writer, batch, keep, start, end, partition_column)
    finally:
        for writer in writers.values():
            writer.close()


def _written_schema(declared: pa.Schema, given: pa.Schema) -> pa.Schema:
    """The declared schema for batches of its types; the batches' own where some columns come as
    dictionaries of their type and the declared types are parquet's own (read back the same with no
    Arrow schema stored)."""
    plain = [t.value_type if pa.types.is_dictionary(t) else t for t in given.types]
    if given.names != declared.names or plain != declared.types:
        raise ValueError(f"batches of ({given.to_string(show_schema_metadata=False)}) do not hold the declared "
                         f"columns ({declared.to_string(show_schema_metadata=False)})")
    if given.types == declared.types:
        return declared
    if not _reads_back_as_declared(declared):
        raise ValueError(f"dictionary-encoded batches for a schema parquet alone does not carry ({declared}): "
                         "decode them first")
    return given


@functools.cache
def _reads_back_as_declared(schema: pa.Schema) -> bool:
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink, store_schema=False)
    return pq.read_schema(pa.BufferReader(sink.getvalue())).remove_metadata() == schema.remove_metadata()


def _write_slice(
    writer: pq.ParquetWriter, batch: pa.RecordBatch, keep: pa.BooleanArray | None, start: int, end: int, drop: str
) -> None:
    rows = batch.slice(start, end - start)
    if keep is not None:
        rows = rows.filter(keep.slice(start, end - start))
    writer.write_batch(rows.drop_columns([drop]))


def _in_order(values: pa.Array) -> bool:
    """Ascending with any nulls at the end: what sort_indices would leave unchanged."""
    valid = len(values) - values.null_count
    if values.null_count and values.slice(valid).null_count != values.null_count:
        return False
    head = values.slice(0, valid)
    return valid < 2 or bool(pc.all(pc.less_equal(head.slice(0, valid - 1), head.slice(1))).as_py())


class ManifestMonths:
    """Months published by manifest; mixed into Lake (which gives the object operations)."""

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
            write_hive_folders(stage, basename, batches, schema, partition_column)
            return self._publish_staged(dataset, month, file_prefix, stage, version, expected_rows)

    def publish_staged_month(self, dataset: str, month: str, file_prefix: str, stage: Path, version: str, expected_rows: int | None = None) -> Manifest:
        """Publish hive folders already written under `stage` by `write_hive_folders` (files named
        `{file_prefix}_{month}_{version}-N.parquet`), as `publish_partitioned_month` does: a step that
        wrote them beside its other outputs publishes them only once the month passed its audit."""
        with self._month_lock(dataset, month):
            return self._publish_staged(dataset, month, file_prefix, stage, version, expected_rows)

    def _publish_staged(self, dataset: str, month: str, file_prefix: str, stage: Path, version: str, expected_rows: int | None) -> Manifest:
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
        emptied: set[str] = set()
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File or not info.base_name.startswith(marker):
                continue
            rel = info.path[len(base):] if info.path.startswith(base) else info.path
            version = info.base_name[len(marker):].rsplit("-", 1)[0]
            if rel not in wanted and version < keep.version:
                self.fs.delete_file(info.path)
                emptied.add(info.path.rsplit("/", 1)[0])
        if self.is_local:
            # Only the folders this sweep emptied: another month's publisher may have just made a
            # folder of its own and not yet renamed its file into it.
            for folder in emptied:
                with contextlib.suppress(OSError):
                    os.rmdir(folder)  # only succeeds when empty

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
