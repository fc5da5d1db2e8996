"""Writes overlapped with the next batch: every row lands once and in order, and a failed write
stops the step instead of vanishing in a thread."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_assets.storage.overlapped_writes import OverlappedWrites


def test_batches_land_in_order_in_every_file(tmp_path):
    schema = pa.schema([("n", pa.int64())])
    paths = [tmp_path / f"part-{k}.parquet" for k in range(3)]
    writers = [pq.ParquetWriter(p, schema) for p in paths]
    with OverlappedWrites(threads=2) as writes:
        for batch_no in range(20):
            writes.next_batch()
            for k, writer in enumerate(writers):
                start = batch_no * 1000
                writes.submit(writer.write_batch, pa.record_batch([pa.array(range(start + k, start + 1000, 3))], schema=schema))
    for writer in writers:
        writer.close()
    for k, path in enumerate(paths):
        expected = [n for batch_no in range(20) for n in range(batch_no * 1000 + k, batch_no * 1000 + 1000, 3)]
        assert pq.read_table(path).column("n").to_pylist() == expected


def test_the_next_batch_waits_for_the_writes_of_this_one():
    done: list[int] = []

    def slow(n: int) -> None:
        time.sleep(0.05)
        done.append(n)

    with OverlappedWrites(threads=2) as writes:
        writes.submit(slow, 1)
        writes.submit(slow, 2)
        writes.next_batch()
        assert sorted(done) == [1, 2]
        writes.submit(slow, 3)
    assert sorted(done) == [1, 2, 3]  # leaving the block waits too


def test_a_failed_write_is_raised_by_the_next_batch():
    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with OverlappedWrites(threads=2) as writes:
            writes.submit(fail)
            writes.next_batch()
            pytest.fail("the failure should have been raised by next_batch")


def test_a_failed_write_is_raised_when_leaving_the_block():
    with pytest.raises(OSError, match="disk full"):
        with OverlappedWrites(threads=2) as writes:
            writes.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))


def test_an_error_in_the_caller_waits_for_writes_in_flight_and_keeps_its_own_error():
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def write() -> None:
        started.set()
        release.wait(5)
        finished.append(True)

    with pytest.raises(ValueError, match="bad batch"):
        with OverlappedWrites(threads=2) as writes:
            writes.submit(write)
            started.wait(5)
            threading.Timer(0.05, release.set).start()
            raise ValueError("bad batch")
    assert finished == [True]  # the writer was not closed under a running write


def test_with_depth_two_the_next_batch_waits_for_the_batch_before_the_last():
    started = {n: threading.Event() for n in (1, 2)}
    release = {n: threading.Event() for n in (1, 2)}
    done: list[int] = []

    def write(n: int) -> None:
        started[n].set()
        release[n].wait(5)
        done.append(n)

    with OverlappedWrites(threads=2, depth=2) as writes:
        writes.submit(write, 1)
        writes.next_batch()  # batch 1 in flight: the caller goes on
        assert started[1].wait(5) and done == []
        writes.submit(write, 2)
        threading.Timer(0.1, release[1].set).start()
        writes.next_batch()  # two in flight: waits for batch 1, not batch 2
        assert done == [1] and started[2].wait(5)
        release[2].set()
    assert done == [1, 2]


def test_with_depth_two_a_failed_write_is_raised_a_batch_later():
    went_on: list[bool] = []
    with pytest.raises(OSError, match="disk full"):
        with OverlappedWrites(threads=2, depth=2) as writes:
            writes.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
            writes.next_batch()  # its batch still in flight: not waited for yet
            went_on.append(True)
            writes.submit(lambda: None)
            writes.next_batch()
            pytest.fail("the failure should have been raised by the second next_batch")
    assert went_on == [True]


def test_a_depth_below_one_is_refused():
    with pytest.raises(ValueError, match="depth must be at least 1"):
        OverlappedWrites(depth=0)
