"""Which allocator Arrow's buffers come from in a process that loads months.

pyarrow's default pool on Linux is mimalloc. A month's step reads, cleans and writes the month in
256k-row batches, each batch a few fresh column buffers freed soon after; from mimalloc the first
passes of a new process over such batches ran 3-4x slower than the later ones (the cleaning rules
of a 3M-row yellow month: 1.25 s the first time, 0.26 s after), and every run is a new process.
From jemalloc the same first pass took 0.39 s. The yellow ingest chain at 3M rows on DuckDB,
alternated in fresh processes (benchmarks/JOURNAL.md, eighth pass):

| pool | chain s | peak RSS | fhvhv 20M job s | peak RSS |
|---|---:|---:|---:|---:|
| mimalloc (pyarrow's default) | 3.69-4.26 | 621-659 MB | 39.1-39.5 | 658-667 MB |
| jemalloc from the start (ARROW_DEFAULT_MEMORY_POOL, as make and the image set it) | 3.46-3.76 | 570-583 MB | 37.4-38.4 | 625-641 MB |
| jemalloc set here when the code location loads | 3.47-3.92 | 656-679 MB | 38.5 | 707-711 MB |

pyarrow reads that variable once, when it starts, for the pool its C++ side uses on its own; set
here, the pool pyarrow's Python calls use (reads, compute, writes) moves to jemalloc and the rest
stays on mimalloc: most of the speed, with two allocators' retained memory.
"""

from __future__ import annotations

import pyarrow as pa

#: Arrow's own variable for its default pool: when it is set, that choice stands.
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


def use_memory_pool(chosen: str | None) -> str:
    """Make jemalloc Arrow's default pool unless `chosen` (ARROW_DEFAULT_MEMORY_POOL) names one;
    returns the name of the pool in use."""
    if not chosen:
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        except NotImplementedError:  # a pyarrow built without jemalloc (its Windows wheels): keep Arrow's
            pass
    return pa.default_memory_pool().backend_name
