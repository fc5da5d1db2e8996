"""The lake on GCS, against a real-protocol emulator (fake-gcs-server): same layout as the local lake,
months published atomically, a write killed half-way leaves readers on the complete month and the
next publish leaves nothing behind. Everything is checked by listing and reading objects with the
google-cloud-storage client, not through the Lake."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_assets.storage import manifests as manifests_module
from taxi_assets.storage.lake import Lake, Manifest
from taxi_assets.defs.resources import LakeResource

SCHEMA = pa.schema([("trip", pa.int64()), ("pickup_date", pa.date32())])
DATASET = "trips/yellow"
VERSIONED = re.compile(r"^trips/yellow/pickup_date=\d{4}-\d{2}-\d{2}/yellow_\d{4}-\d{2}_\d{8}T\d+Z-[0-9a-f]{8}-\d+\.parquet$")


def month_batches(month: str, days: list[int], rows_per_day: int, offset: int):
    year, mon = map(int, month.split("-"))
    for day in days:
        start = offset + day * 1000
        yield pa.record_batch(
            [pa.array(range(start, start + rows_per_day), pa.int64()), pa.array([dt.date(year, mon, day)] * rows_per_day, pa.date32())],
            schema=SCHEMA,
        )


def publish(lake: Lake, month: str, days: list[int], rows: int, offset: int) -> list[int]:
    lake.publish_partitioned_month(DATASET, month, "yellow", month_batches(month, days, rows, offset), SCHEMA, "pickup_date")
    return sorted(offset + d * 1000 + i for d in days for i in range(rows))


class GcsReader:
    """A reader that goes through the manifest with the GCS client only."""

    def __init__(self, gcs, bucket: str, prefix: str):
        self.bucket = gcs.client().bucket(bucket)
        self.prefix = prefix

    def month(self, month: str) -> tuple[str, list[int]] | None:
        from google.api_core.exceptions import NotFound

        for _ in range(5):
            try:
                manifest = json.loads(self.bucket.blob(f"{self.prefix}/{DATASET}/_manifests/{month}.json").download_as_bytes())
            except NotFound:
                return None
            try:
                trips = []
                for entry in manifest["files"]:
                    data = self.bucket.blob(f"{self.prefix}/{DATASET}/{entry['path']}").download_as_bytes()
                    trips += pq.read_table(pa.BufferReader(data)).column("trip").to_pylist()
            except NotFound:
                continue  # republished between our two reads (old version removed): read the new manifest
            assert len(trips) == manifest["rows"]
            return manifest["version"], sorted(trips)
        raise AssertionError("the month kept changing under the reader")


@pytest.fixture
def gcs_lake(gcs_emulator):
    bucket = gcs_emulator.new_bucket()
    return Lake(f"gs://{bucket}/lake", gcs_emulator_host=gcs_emulator.url), bucket


def test_lake_resource_talks_to_the_emulator(gcs_emulator):
    import pyarrow.fs as pafs

    bucket = gcs_emulator.new_bucket()
    lake = LakeResource(uri=f"gs://{bucket}/lake", gcs_emulator_host=gcs_emulator.url).lake
    assert isinstance(lake.fs, pafs.GcsFileSystem) and lake.is_gcs and not lake.is_local
    assert lake.display("raw/x.csv") == f"gs://{bucket}/lake/raw/x.csv"


def test_single_objects_and_layout_match_the_local_lake(gcs_emulator, gcs_lake, tmp_path):
    lake, bucket = gcs_lake
    local = Lake(str(tmp_path / "local"))
    for target in (lake, local):
        with target.staging_dir() as stage:
            raw = stage / "yellow_tripdata_2024-01.parquet"
            pq.write_table(pa.table({"a": [1, 2, 3]}), raw)
            target.put_file(raw, "raw/yellow/2024-01/yellow_tripdata_2024-01.parquet")
            cleaned = stage / "c.parquet"
            pq.write_table(pa.table({"a": [1, 2]}), cleaned)
            target.put_file(cleaned, "cleaned/yellow/yellow_2024-01.parquet")
        expected = publish(target, "2024-01", [1, 2, 31], 3, 0)

    objects = gcs_emulator.list(bucket)
    local_files = {p.relative_to(tmp_path / "local").as_posix() for p in (tmp_path / "local").rglob("*") if p.is_file()}
    local_files = {f for f in local_files if not f.startswith(("_locks/", "_staging/"))}
    strip = lambda names: {re.sub(r"_\d{8}T\d+Z-[0-9a-f]{8}-", "_V-", n) for n in names}  # noqa: E731
    assert strip(n.removeprefix("lake/") for n in objects) == strip(local_files)
    assert all(n.startswith("lake/") for n in objects)  # nothing outside the prefix, no folder markers
    assert not any(n.endswith("/") for n in objects)
    reader = GcsReader(gcs_emulator, bucket, "lake")
    assert reader.month("2024-01")[1] == expected
    assert pq.read_table(pa.BufferReader(gcs_emulator.client().bucket(bucket).blob("lake/raw/yellow/2024-01/yellow_tripdata_2024-01.parquet").download_as_bytes())).num_rows == 3


def test_two_months_then_rewrite_one(gcs_emulator, gcs_lake):
    lake, bucket = gcs_lake
    reader = GcsReader(gcs_emulator, bucket, "lake")
    jan_v1 = publish(lake, "2024-01", [1, 2, 3], 4, 0)
    feb = publish(lake, "2024-02", [1, 29], 5, 500)
    v1 = reader.month("2024-01")[0]
    assert reader.month("2024-01")[1] == jan_v1 and reader.month("2024-02")[1] == feb

    jan_v2 = publish(lake, "2024-01", [2, 4], 2, 100)  # fewer days, other rows
    version, trips = reader.month("2024-01")
    assert version > v1 and trips == jan_v2
    assert reader.month("2024-02")[1] == feb  # the other month is untouched

    objects = gcs_emulator.list(bucket, "lake/")
    named = {f"lake/{DATASET}/{e.path}" for m in ("2024-01", "2024-02") for e in lake.read_manifest(DATASET, m).files}
    manifests = {f"lake/{DATASET}/_manifests/2024-01.json", f"lake/{DATASET}/_manifests/2024-02.json"}
    assert set(objects) == named | manifests  # the old version of January is gone, nothing else is there
    assert all(VERSIONED.match(n.removeprefix("lake/")) for n in named)


KILLED_PUBLISH = textwrap.dedent(
    """
    import datetime as dt, os, signal, sys
    import pyarrow as pa
    from taxi_assets.storage.lake import Lake
    schema = pa.schema([("trip", pa.int64()), ("pickup_date", pa.date32())])
    uploads = 0
    original = Lake.put_file
    def put_file(self, local_file, key):
        global uploads
        original(self, local_file, key)
        uploads += 1
        if uploads == 3:
            print("killing", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # half-way: 3 of 20 files uploaded, no manifest yet
    Lake.put_file = put_file
    def batches():
        for day in range(1, 21):
            yield pa.record_batch([pa.array([900000 + day * 10 + i for i in range(3)], pa.int64()), pa.array([dt.date(2024, 1, day)] * 3, pa.date32())], schema=schema)
    Lake(sys.argv[1], gcs_emulator_host=os.environ["STORAGE_EMULATOR_HOST"]).publish_partitioned_month("trips/yellow", "2024-01", "yellow", batches(), schema, "pickup_date")
    print("published", flush=True)
    """
)


def test_killed_write_is_never_seen_and_next_publish_leaves_nothing_behind(gcs_emulator, gcs_lake):
    lake, bucket = gcs_lake
    complete = {}
    v1_trips = publish(lake, "2024-01", [1, 2, 3, 4], 5, 0)
    reader = GcsReader(gcs_emulator, bucket, "lake")
    v1, seen = reader.month("2024-01")
    assert seen == v1_trips
    complete[v1] = v1_trips

    observed: list[tuple[str, list[int]]] = []
    stop = threading.Event()

    def keep_reading():
        mine = GcsReader(gcs_emulator, bucket, "lake")
        while not stop.is_set():
            observed.append(mine.month("2024-01"))

    thread = threading.Thread(target=keep_reading, daemon=True)
    thread.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", KILLED_PUBLISH, f"gs://{bucket}/lake"], capture_output=True, text=True, timeout=120,
            env={**os.environ},
        )
        assert proc.returncode == -9 and "killing" in proc.stdout and "published" not in proc.stdout, proc.stderr[-2000:]

        # the killed run's files are there, unnamed by any manifest; readers still get version 1
        objects = gcs_emulator.list(bucket, "lake/")
        named = {f"lake/{DATASET}/{e.path}" for e in lake.read_manifest(DATASET, "2024-01").files}
        orphans = set(objects) - named - {f"lake/{DATASET}/_manifests/2024-01.json"}
        assert len(orphans) == 3
        assert reader.month("2024-01") == (v1, v1_trips)

        v3_trips = publish(lake, "2024-01", [7, 8], 6, 300)  # the next publish of the month
        v3, seen = reader.month("2024-01")
        assert seen == v3_trips
        complete[v3] = v3_trips
    finally:
        stop.set()
        thread.join(timeout=30)

    assert len(observed) >= 5
    for version, trips in observed:
        assert complete.get(version) == trips, f"a reader saw an incomplete month: version {version}, {len(trips)} trips"
    objects = gcs_emulator.list(bucket, "lake/")
    named = {f"lake/{DATASET}/{e.path}" for e in lake.read_manifest(DATASET, "2024-01").files}
    assert set(objects) == named | {f"lake/{DATASET}/_manifests/2024-01.json"}  # nothing left behind


def test_a_stale_publisher_withdraws_its_files(gcs_emulator, gcs_lake, monkeypatch):
    lake, bucket = gcs_lake
    trips = publish(lake, "2024-01", [1, 2], 3, 0)
    before = gcs_emulator.list(bucket)
    monkeypatch.setattr(manifests_module, "new_version", lambda: "20000101T000000000000Z-00000000")
    result = lake.publish_partitioned_month(DATASET, "2024-01", "yellow", month_batches("2024-01", [5], 3, 70), SCHEMA, "pickup_date")
    assert result.version > "2000"
    assert gcs_emulator.list(bucket) == before  # its files were withdrawn, the month is as it was
    assert GcsReader(gcs_emulator, bucket, "lake").month("2024-01")[1] == trips


def test_manifest_write_is_a_compare_and_swap(gcs_emulator, gcs_lake):
    """Between our read of the manifest and our write, another publisher writes a newer one: our
    write carries ifGenerationMatch of what we read, GCS refuses it, and we keep theirs."""
    lake, bucket = gcs_lake
    ours = Manifest(DATASET, "2024-01", "20240101T000000000001Z-aaaaaaaa", 0, ())
    theirs = Manifest(DATASET, "2024-01", "20240101T000000000002Z-bbbbbbbb", 0, ())
    first = Manifest(DATASET, "2024-01", "20240101T000000000000Z-00000000", 0, ())
    assert lake._write_manifest(first) is first

    client = lake.storage_client()
    real_bucket = client.bucket

    class RacingBucket:
        def __init__(self, name):
            self._b = real_bucket(name)
            self.raced = False

        def get_blob(self, name):
            return self._b.get_blob(name)

        def blob(self, name):
            if not self.raced:  # the other publisher writes after our read, before our write
                self.raced = True
                gcs_emulator.client().bucket(bucket).blob(name).upload_from_string(theirs.to_json())
            return self._b.blob(name)

    racing = RacingBucket(bucket)
    client.bucket = lambda name: racing
    try:
        result = lake._write_manifest(ours)
    finally:
        del client.bucket
    assert racing.raced
    assert result.version == theirs.version  # the newer one stays published
    assert lake.read_manifest(DATASET, "2024-01").version == theirs.version
