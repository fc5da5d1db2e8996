"""How fast the machine is in a given minute: one fixed piece of work, timed before each child.

This VM shares its host. The same code's CPU-seconds moved by up to 2x within minutes while the load
average stayed under 2 (benchmarks/JOURNAL.md, thirty-second pass): the load average counts this
machine's runnable processes, not what other tenants take from the host. So before each child the
bench times the same work in its parent, with none of its own children running: parquet encoding of
the lake's kind and a Python loop, two kinds of work a month's run spends its CPU on. Its seconds,
kept per run in the JSON and summed up under the bar's lines, show how fast the machine was around
each run. A probe is one instant of the minute, not a factor to correct a run's seconds by: before
three runs of one chain it read 0.25 / 0.19 / 0.28 s, the runs took 3.98 / 3.77 / 3.42 s.

The work is fixed here, not taken from the lake's writer options, so that its seconds compare
across versions of the project.
"""

from __future__ import annotations

import io
import statistics
import time
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 1_000_000
LOOP = 3_000_000


@cache
def _table() -> pa.Table:
    rng = np.random.default_rng(13)
    start = np.datetime64("2021-01-01T00:00:00", "us").astype(np.int64)
    return pa.table({
        "location_id": pa.array(rng.integers(1, 266, ROWS, dtype=np.int32)),
        "amount": pa.array(np.round(rng.gamma(2.0, 8.0, ROWS), 2)),
        "pickup": pa.array(np.sort(start + rng.integers(0, 31 * 86_400 * 10**6, ROWS)), pa.timestamp("us")),
    })


def work() -> int:
    """The fixed work: the parquet file's size plus the loop's sum (the same number every call)."""
    out = io.BytesIO()
    pq.write_table(_table(), out, compression="zstd", compression_level=1, use_dictionary=["location_id", "amount"])
    total = 0
    for k in range(LOOP):
        total += k
    return out.tell() + total


def probe_seconds() -> float:
    """Wall seconds of `work()` now (its input is built once, before the clock starts)."""
    _table()
    started = time.perf_counter()
    work()
    return round(time.perf_counter() - started, 3)


def summary(seconds: list[float]) -> dict[str, float] | None:
    """The probes of a run: how many, the fastest, the median, the slowest, the first and the last."""
    if not seconds:
        return None
    return {"n": len(seconds), "min": min(seconds), "median": statistics.median(seconds), "max": max(seconds),
            "first": seconds[0], "last": seconds[-1]}
