"""The lake's atomic writes: single objects by rename, date-partitioned months by manifest; a process
killed half-way leaves the published month intact and the next publish cleans up after it."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from taxi_assets.storage.lake import Lake
from taxi_assets.storage.manifests import Filtered, _in_order, new_version, parquet_write_options, write_hive_folders

SCHEMA = pa.schema([("trip", pa.int64()), ("pickup_date", pa.date32())])


def month_batches(days: list[int], rows_per_day: int, offset: int = 0):
    for day in days:
        yield pa.record_batch(
            [pa.array(range(offset + day * 1000, offset + day * 1000 + rows_per_day), pa.int64()), pa.array([dt.date(2024, 1, day)] * rows_per_day, pa.date32())],
            schema=SCHEMA,
        )


def read_month(lake: Lake) -> list[int]:
    dataset = lake.read_partitioned_month("trips/yellow", "2024-01", "pickup_date")
    return sorted(dataset.to_table().column("trip").to_pylist()) if dataset else []


@pytest.mark.parametrize(
    "days",
    [
        [1, 1, 2, 2, 3],  # in order (a TLC file's batch): cut as it is
        [2, 1, 3, 1, 2],  # out of order: sorted first
        [1, 2, None, None],  # in order, unknown dates last
        [None, 2, 1, None, 2],  # out of order with unknown dates
    ],
)
def test_each_day_file_holds_its_rows_in_the_batch_order(tmp_path, days):
    """Whether a batch is sorted or cut as it is, every day's file holds that day's rows in the
    order they came (what a stable sort gives), and rows without a date go to the hive null folder."""
    lake = Lake(str(tmp_path / "lake"))
    batch = pa.record_batch([pa.array(range(len(days)), pa.int64()), pa.array([None if d is None else dt.date(2024, 1, d) for d in days], pa.date32())], schema=SCHEMA)
    manifest = lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", iter([batch]), SCHEMA, "pickup_date")
    got = {e.path.split("/")[0]: pq.read_table(tmp_path / "lake/trips/yellow" / e.path).column("trip").to_pylist() for e in manifest.files}
    want: dict[str, list[int]] = {}
    for trip, day in enumerate(days):
        want.setdefault(f"pickup_date={'__HIVE_DEFAULT_PARTITION__' if day is None else dt.date(2024, 1, day)}", []).append(trip)
    assert got == want


def dictionary_encoded(path) -> dict[str, bool]:
    """Per column of a parquet file's first row group: dictionary-encoded or not."""
    meta = pq.ParquetFile(path).metadata
    row_group = meta.row_group(0)
    return {
        row_group.column(i).path_in_schema: any("DICTIONARY" in e for e in row_group.column(i).encodings)
        for i in range(meta.num_columns)
    }


def test_day_files_keep_trip_times_out_of_the_dictionary_and_read_back_equal(tmp_path):
    """A month's trip times overflow a parquet dictionary (Arrow then falls back to plain pages
    after building it): timestamps are written plain, every other column dictionary-encoded."""
    schema = pa.schema([("pickup_datetime", pa.timestamp("us")), ("zone", pa.string()), ("pickup_date", pa.date32())])
    start = dt.datetime(2024, 1, 1)
    rows = 5000
    times = [start + dt.timedelta(seconds=17 * i) for i in range(rows)]
    batch = pa.record_batch(
        [pa.array(times, pa.timestamp("us")), pa.array([f"zone {i % 7}" for i in range(rows)]), pa.array([t.date() for t in times], pa.date32())],
        schema=schema,
    )
    lake = Lake(str(tmp_path / "lake"))
    manifest = lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", iter([batch]), schema, "pickup_date")
    files = [tmp_path / "lake/trips/yellow" / e.path for e in manifest.files]
    assert len(files) == 1 and all(dictionary_encoded(f) == {"pickup_datetime": False, "zone": True} for f in files)
    back = pa.concat_tables(pq.read_table(f) for f in files)
    assert back.column("pickup_datetime").to_pylist() == times and back.column("zone").to_pylist() == batch.column(1).to_pylist()
    assert parquet_write_options(schema)["use_dictionary"] == ["zone", "pickup_date"]


def test_text_given_as_dictionaries_is_written_as_its_codes_and_reads_back_as_the_declared_text(tmp_path):
    """Batches may carry a declared text column as a dictionary (each batch its own, as a reader
    meets a file's row groups): the files store its codes as a parquet dictionary and no Arrow
    schema, so they read back exactly as declared. Anything else that differs is refused."""
    schema = pa.schema([("trip", pa.int64()), ("base", pa.string()), ("pickup_date", pa.date32())])
    day = dt.date(2024, 1, 2)

    def encoded(trips, bases):
        return pa.record_batch(
            [pa.array(trips, pa.int64()), pa.array(bases).dictionary_encode(), pa.array([day] * len(trips), pa.date32())],
            names=schema.names,
        )

    batches = [encoded([1, 2, 3], ["B02764", None, "B02510"]), encoded([4, 5], ["B02887", "B02887"])]
    assert batches[0].column(1).dictionary != batches[1].column(1).dictionary
    lake = Lake(str(tmp_path / "lake"))
    manifest = lake.publish_partitioned_month("trips/fhvhv", "2024-01", "fhvhv", iter(batches), schema, "pickup_date")
    files = sorted(tmp_path / "lake/trips/fhvhv" / e.path for e in manifest.files)  # the day's two batches, a file each
    assert len(files) == 2 and all(dictionary_encoded(f)["base"] for f in files)
    back = [pq.read_table(f) for f in files]
    assert all(t.schema.remove_metadata().equals(schema.remove(2)) for t in back)
    assert pa.concat_tables(back).to_pydict() == {"trip": [1, 2, 3, 4, 5], "base": ["B02764", None, "B02510", "B02887", "B02887"]}

    described = schema.with_metadata({"about": "trips"})  # batches of the declared types: files as before, the schema stored
    write_hive_folders(tmp_path / "plain", "fhvhv_2024-01_v", iter([batches[1].cast(schema)]), described, "pickup_date")
    plain = pq.ParquetFile(next((tmp_path / "plain").rglob("*.parquet")))
    assert b"ARROW:schema" in plain.metadata.metadata and plain.schema_arrow.metadata[b"about"] == b"trips"

    ints = pa.record_batch([pa.array([1], pa.int64()).dictionary_encode(), pa.array(["x"]), pa.array([day], pa.date32())], names=schema.names)
    with pytest.raises(ValueError, match="do not hold the declared columns"):
        write_hive_folders(tmp_path / "ints", "fhvhv_2024-01_v", iter([ints]), pa.schema([("trip", pa.string()), *list(schema)[1:]]), "pickup_date")
    wide = pa.schema([("trip", pa.int64()), ("base", pa.large_string()), ("pickup_date", pa.date32())])
    wide_batch = pa.record_batch([pa.array([1], pa.int64()), pa.array(["x"], pa.large_string()).dictionary_encode(), pa.array([day], pa.date32())], names=schema.names)
    with pytest.raises(ValueError, match="decode them first"):  # large_string would read back as string
        write_hive_folders(tmp_path / "wide", "fhvhv_2024-01_v", iter([wide_batch]), wide, "pickup_date")


@pytest.mark.parametrize(
    "values",
    [[], [None], [3], [1, 1, 2], [2, 1], [1, None], [None, 1], [1, None, 2], [None, None], [1, 2, 2, None, None]],
)
def test_a_batch_is_left_unsorted_only_when_sorting_would_not_move_a_row(values):
    """The date-folder writer skips the sort of a batch `_in_order` accepts; that must be exactly the
    batches the stable sort leaves as they are (each writer is then fed one slice per batch)."""
    array = pa.array([None if v is None else dt.date(2024, 1, v) for v in values], pa.date32())
    unmoved = pc.sort_indices(array).to_pylist() == list(range(len(values)))
    assert _in_order(array) == unmoved


def test_put_file_replaces_atomically_and_leaves_no_temp(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    src = tmp_path / "a.bin"
    src.write_bytes(b"first")
    lake.put_file(src, "raw/yellow/x.bin")
    assert not src.exists()  # consumed: renamed into place
    src.write_bytes(b"second!")
    lake.put_file(src, "raw/yellow/x.bin")
    assert lake.read_bytes("raw/yellow/x.bin") == b"second!"
    assert [p.name for p in (tmp_path / "lake/raw/yellow").iterdir()] == ["x.bin"]


def test_republishing_a_month_replaces_it_and_removes_old_files(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    first = lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([1, 2, 3], 10), SCHEMA, "pickup_date")
    assert first.rows == 30 and len(first.files) == 3
    assert read_month(lake) == sorted(list(range(1000, 1010)) + list(range(2000, 2010)) + list(range(3000, 3010)))

    second = lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([2, 4], 5), SCHEMA, "pickup_date")
    assert second.version > first.version
    assert read_month(lake) == list(range(2000, 2005)) + list(range(4000, 4005))
    on_disk = sorted(p.relative_to(tmp_path / "lake/trips/yellow").as_posix() for p in (tmp_path / "lake/trips/yellow").rglob("*.parquet"))
    assert on_disk == sorted(e.path for e in second.files)
    assert not (tmp_path / "lake/trips/yellow/pickup_date=2024-01-01").exists()  # emptied folders go


def test_other_months_are_untouched(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.publish_partitioned_month("trips/yellow", "2023-12", "yellow", month_batches([31], 7), SCHEMA, "pickup_date")
    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([1], 3), SCHEMA, "pickup_date")
    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([1], 4), SCHEMA, "pickup_date")
    december = lake.read_partitioned_month("trips/yellow", "2023-12", "pickup_date").to_table()
    assert december.num_rows == 7



def test_a_months_sweep_leaves_a_folder_another_month_is_publishing_into(tmp_path):
    """Concurrent months: December's publisher has made its (still empty) date folder and not yet
    renamed its file in when January's republication sweeps. January removes only what it emptied."""
    lake = Lake(str(tmp_path / "lake"))
    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([1, 2], 3), SCHEMA, "pickup_date")
    december_folder = tmp_path / "lake/trips/yellow/pickup_date=2023-12-31"
    december_folder.mkdir()
    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([2], 3), SCHEMA, "pickup_date")
    assert december_folder.is_dir()
    assert not (tmp_path / "lake/trips/yellow/pickup_date=2024-01-01").exists()


def test_put_file_makes_the_folder_again_when_another_publisher_removed_it(tmp_path, monkeypatch):
    """The other half of that race: the folder goes between our mkdir and our rename."""
    lake = Lake(str(tmp_path / "lake"))
    staged = tmp_path / "staged.bin"
    staged.write_bytes(b"day file")
    rename, raced = os.replace, []

    def replace_after_a_sweep(src, dst):
        if not raced:
            raced.append(dst)
            os.rmdir(os.path.dirname(dst))
        return rename(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_a_sweep)
    lake.put_file(staged, "trips/yellow/pickup_date=2024-01-02/day.parquet")
    assert raced and (tmp_path / "lake/trips/yellow/pickup_date=2024-01-02/day.parquet").read_bytes() == b"day file"
    assert not staged.exists()


SLOW_PUBLISH = textwrap.dedent(
    """
    import datetime as dt, sys, time
    import pyarrow as pa
    from taxi_assets.storage.lake import Lake
    schema = pa.schema([("trip", pa.int64()), ("pickup_date", pa.date32())])
    def batches():
        for day in range(1, 29):
            yield pa.record_batch([pa.array([900000 + day], pa.int64()), pa.array([dt.date(2024, 1, day)], pa.date32())], schema=schema)
            if day == 3:
                print("writing", flush=True)
            time.sleep(0.2)
    Lake(sys.argv[1]).publish_partitioned_month("trips/yellow", "2024-01", "yellow", batches(), schema, "pickup_date")
    """
)


def test_killed_publish_leaves_month_intact_and_next_publish_cleans_up(tmp_path):
    root = tmp_path / "lake"
    lake = Lake(str(root))
    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([1, 2], 10), SCHEMA, "pickup_date")
    before = read_month(lake)

    proc = subprocess.Popen([sys.executable, "-c", SLOW_PUBLISH, str(root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_month(lake) == before  # readers through the manifest never saw the half-written month

    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([5], 2), SCHEMA, "pickup_date")
    assert read_month(lake) == [5000, 5001]
    assert len(list((root / "trips/yellow").rglob("*.parquet"))) == 1


def test_abandoned_staging_of_a_dead_process_is_swept(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    abandoned = tmp_path / "lake/_staging" / f"stage-{dead}-abc"
    abandoned.mkdir(parents=True)
    (abandoned / "big.parquet").write_bytes(b"x")
    old = time.time() - 7200
    os.utime(abandoned, (old, old))
    live = tmp_path / "lake/_staging" / f"stage-{os.getpid()}-def"
    live.mkdir()
    os.utime(live, (old, old))
    with lake.staging_dir():
        pass
    assert not abandoned.exists()
    assert live.exists()  # its process is alive: maybe a long run


def test_missing_month_reads_as_none(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    assert lake.read_partitioned_month("trips/yellow", "2024-01", "pickup_date") is None
    with pytest.raises(FileNotFoundError):
        lake.read_bytes("nope")


def test_null_partition_value_gets_the_hive_default_folder(tmp_path):
    """With pickup_required switched off a row may have no pickup date: it is kept, not lost."""
    lake = Lake(str(tmp_path / "lake"))
    batch = pa.record_batch([pa.array([1, 2, 3], pa.int64()), pa.array([dt.date(2024, 1, 2), None, dt.date(2024, 1, 2)], pa.date32())], schema=SCHEMA)
    manifest = lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", [batch], SCHEMA, "pickup_date")
    assert sorted(e.path.split("/")[0] for e in manifest.files) == ["pickup_date=2024-01-02", "pickup_date=__HIVE_DEFAULT_PARTITION__"]
    table = lake.read_partitioned_month("trips/yellow", "2024-01", "pickup_date").to_table()
    assert sorted(zip(table.column("trip").to_pylist(), table.column("pickup_date").to_pylist())) == [
        (1, dt.date(2024, 1, 2)), (2, None), (3, dt.date(2024, 1, 2))
    ]


def test_a_published_month_streams_back_in_time_order_one_day_at_a_time(tmp_path, monkeypatch):
    """What the warehouse load reads: every row once, days in date order, each day sorted on the
    time, in batches of at most BATCH_ROWS; an empty month is empty, a missing one says so."""
    import numpy as np
    import pyarrow.compute as pc

    from taxi_assets.storage import handles
    from taxi_assets.storage.handles import LakeMonthDataset

    monkeypatch.setattr(handles, "BATCH_ROWS", 1000)
    rng = np.random.default_rng(7)
    n = 20_000
    seconds = rng.integers(0, 31 * 86_400, n)  # shuffled pickups over January
    pickups = (np.datetime64("2024-01-01T00:00:00") + seconds.astype("timedelta64[s]")).astype("datetime64[us]")
    schema = pa.schema([("trip", pa.int64()), ("pickup_datetime", pa.timestamp("us"))])
    rows = pa.table({"trip": pa.array(np.arange(n)), "pickup_datetime": pa.array(pickups)}, schema=schema)
    lake = Lake(str(tmp_path / "lake"))
    lake.publish_partitioned_month(
        "trips/yellow", "2024-01", "yellow",
        (b.append_column("pickup_date", pc.cast(b.column("pickup_datetime"), pa.date32())) for b in rows.to_batches(4096)),
        schema.append(pa.field("pickup_date", pa.date32())), "pickup_date",
    )
    source = LakeMonthDataset(lake, "trips/yellow", "2024-01", "pickup_date").table_source(schema, "pickup_datetime")
    # an engine that reads parquet itself is given the published day files, in date order, and the count to take
    manifest = lake.read_manifest("trips/yellow", "2024-01")
    assert source.local_parquet == [lake.local_path(f"trips/yellow/{e.path}") for e in sorted(manifest.files, key=lambda e: e.path)]
    assert source.expected_rows == manifest.rows == n and source.uris == []
    # every day's rows came in several batches, so each folder holds two files, taken in turn; the
    # day is sorted across both (the time order below)
    folders = [path.parent.name for path in source.local_parquet]
    assert len(set(folders)) == 31 and all(folders.count(f) == 2 for f in folders)
    batches = list(source.open())
    assert max(b.num_rows for b in batches) <= 1000
    back = pa.Table.from_batches(batches)
    assert back.schema == schema
    assert back.column("pickup_datetime").to_pylist() == sorted(rows.column("pickup_datetime").to_pylist())
    assert sorted(back.column("trip").to_pylist()) == list(range(n))

    lake.publish_partitioned_month("trips/yellow", "2024-02", "yellow", iter([]), schema.append(pa.field("pickup_date", pa.date32())), "pickup_date")
    assert LakeMonthDataset(lake, "trips/yellow", "2024-02", "pickup_date").table_source(schema, "pickup_datetime").open().read_all().num_rows == 0
    with pytest.raises(FileNotFoundError, match="trips/yellow 2024-03 is not in the lake"):
        LakeMonthDataset(lake, "trips/yellow", "2024-03", "pickup_date").table_source(schema, "pickup_datetime")


def test_a_load_reads_its_version_whole_while_another_run_republishes_the_month(tmp_path):
    """Two runs of one month: the second publishes (and sweeps the first's files) while the first's
    warehouse load is still to read them. The load reads the version it started with, entirely."""
    from taxi_assets.storage.handles import LakeMonthDataset

    lake = Lake(str(tmp_path / "lake"))
    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([1, 2, 3], 10), SCHEMA, "pickup_date")
    schema = pa.schema([("trip", pa.int64())])
    source = LakeMonthDataset(lake, "trips/yellow", "2024-01", "pickup_date").table_source(schema, "trip")

    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([4], 7, offset=50_000), SCHEMA, "pickup_date")
    assert read_month(lake) == list(range(54_000, 54_007))  # the first version's files are gone from the lake

    loaded = source.open().read_all().column("trip").to_pylist()
    assert loaded == list(range(1000, 1010)) + list(range(2000, 2010)) + list(range(3000, 3010))


def test_a_month_whose_rows_differ_from_the_expected_count_is_not_published(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([1], 10), SCHEMA, "pickup_date")
    with pytest.raises(ValueError, match="20 rows written but the month has 25"):
        lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([2, 3], 10), SCHEMA, "pickup_date", expected_rows=25)
    assert read_month(lake) == list(range(1000, 1010))
    assert len(list((tmp_path / "lake/trips/yellow").rglob("*.parquet"))) == 1


def test_folders_staged_beside_other_outputs_publish_only_when_asked(tmp_path):
    """The ingest writes a month's date folders in its pass over the raw file, before its audit: they
    stay in staging, invisible, until published as they are; a wrong count is refused there too."""
    lake = Lake(str(tmp_path / "lake"))
    lake.publish_partitioned_month("trips/yellow", "2024-01", "yellow", month_batches([1], 10), SCHEMA, "pickup_date")
    with lake.staging_dir() as stage:
        version = new_version()
        write_hive_folders(stage / "days", f"yellow_2024-01_{version}", month_batches([2, 3], 10), SCHEMA, "pickup_date")
        assert read_month(lake) == list(range(1000, 1010))  # written, not published
        with pytest.raises(ValueError, match="20 rows written but the month has 21"):
            lake.publish_staged_month("trips/yellow", "2024-01", "yellow", stage / "days", version, expected_rows=21)
        assert read_month(lake) == list(range(1000, 1010))
        manifest = lake.publish_staged_month("trips/yellow", "2024-01", "yellow", stage / "days", version, expected_rows=20)
    assert manifest.version == version and manifest.rows == 20
    assert read_month(lake) == list(range(2000, 2010)) + list(range(3000, 3010))
    assert len(list((tmp_path / "lake/trips/yellow").rglob("*.parquet"))) == 2  # the older version swept


def test_a_day_in_several_batches_is_spread_over_its_files_in_turn_each_in_order(tmp_path):
    """Consecutive batches of one day (the TLC's months come in pickup order) go to the day's files
    in turn, so two threads encode the day at once; every row lands once, each file in order."""
    batches = [
        pa.record_batch([pa.array(range(k * 10, k * 10 + 10), pa.int64()), pa.array([dt.date(2024, 1, 1)] * 10, pa.date32())], schema=SCHEMA)
        for k in range(7)
    ] + list(month_batches([2], 5))
    write_hive_folders(tmp_path, "yellow_2024-01_v", iter(batches), SCHEMA, "pickup_date")
    first = tmp_path / "pickup_date=2024-01-01"
    assert sorted(p.name for p in first.iterdir()) == ["yellow_2024-01_v-0.parquet", "yellow_2024-01_v-1.parquet"]
    assert pq.read_table(first / "yellow_2024-01_v-0.parquet").column("trip").to_pylist() == [
        n for k in (0, 2, 4, 6) for n in range(k * 10, k * 10 + 10)
    ]
    assert pq.read_table(first / "yellow_2024-01_v-1.parquet").column("trip").to_pylist() == [
        n for k in (1, 3, 5) for n in range(k * 10, k * 10 + 10)
    ]
    # a day met in one batch keeps one file
    assert [p.name for p in (tmp_path / "pickup_date=2024-01-02").iterdir()] == ["yellow_2024-01_v-0.parquet"]
    assert pq.read_table(tmp_path / "pickup_date=2024-01-02").column("trip").to_pylist() == list(range(2000, 2005))


def test_a_filtered_batch_writes_only_its_kept_rows_each_day_in_order(tmp_path):
    """The ingest hands each cleaned batch whole with the rows to keep: the dropped rows (here a
    null date and a date of another month among them) never reach a file, in order or not."""
    days = [dt.date(2024, 1, d) for d in (1, 1, 1, 2, 2, 3)]
    in_order = pa.record_batch([
        pa.array(range(10, 18), pa.int64()),
        pa.array([days[0], None, days[1], days[2], dt.date(2023, 12, 31), days[3], days[4], days[5]], pa.date32()),
    ], schema=SCHEMA)
    keep_in_order = pa.array([True, False, True, True, False, True, True, True])
    shuffled = pa.record_batch([pa.array([20, 21, 22, 23], pa.int64()), pa.array([dt.date(2024, 1, d) for d in (3, 1, 2, 1)], pa.date32())], schema=SCHEMA)
    keep_shuffled = pa.array([True, True, False, True])
    empty = Filtered(shuffled, pa.array([False] * 4))
    write_hive_folders(tmp_path, "yellow_2024-01_v", iter([Filtered(in_order, keep_in_order), empty, Filtered(shuffled, keep_shuffled)]), SCHEMA, "pickup_date")
    written = {
        folder.name: [pq.read_table(f).column("trip").to_pylist() for f in sorted(folder.iterdir())]
        for folder in sorted(tmp_path.iterdir())
    }
    assert written == {
        "pickup_date=2024-01-01": [[10, 12, 13], [21, 23]],  # a day's second batch goes to its second file
        "pickup_date=2024-01-02": [[15, 16]],
        "pickup_date=2024-01-03": [[17], [20]],
    }
