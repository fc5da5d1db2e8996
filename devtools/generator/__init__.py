"""Offline stand-ins for the TLC's monthly trip files, shaped like the real ones, era by era.

Why: the pipeline has to survive what the TLC actually publishes (renamed columns, types that change
between months, all-null columns typed `null` or int32, dirty rows), and tests and demos must run
without the network. So this module writes files whose *raw* schema is the one the TLC published for
that service and month -- not the canonical schema of `taxi_assets.tlc.services`, which is what the
normaliser turns them into.

Decisions the real data leaves open (documented here so readers of the tests know they are choices):

* Parquet timestamps are `timestamp[us]` in every era: the canonical schema is microseconds and
  REFERENCE §1 records no unit drift. Readers must cast whatever unit they meet anyway.
* All-null columns: before 2019 the yellow `congestion_surcharge` / `airport_fee` and the green
  `congestion_surcharge` are typed `null`; in 2019-2021 yellow `airport_fee` is an all-null `int32`;
  green `ehail_fee` is always typed `null`; fhv `SR_Flag` is `int32` up to 2019-01 (shared rides still
  went through fhv bases) and typed `null` from 2019-02 (they moved to fhvhv).
* The 2023-02 drift (int64 -> int32 ids, double -> int64 codes, `airport_fee` -> `Airport_fee`) is
  applied to green as well as yellow; fhvhv keeps int64 ids.
* csv.gz files use the original TLC CSV header of the era (`heads/headers_by_month.txt`), CRLF line
  ends, empty fields for nulls, integer codes as "1" and money/distances as "12.5" / "7.0". They exist
  only for months that have zone ids and that the CSV mirror covered (up to 2021-07). fhv 2019+ CSVs
  have the 6-column header of the real files (no Affiliated_base_number; only the parquet has it).

Everything is generated with Arrow compute kernels from `pc.random` streams seeded from
(seed, service, month, batch), so the same arguments give byte-identical files and a month of any size
is written batch by batch without ever being held in memory whole.
"""

from devtools.generator.common import FORMATS, GENERATOR_VERSION, GeneratedFile
from devtools.generator.files import (
    DEFAULT_ROWS,
    MonthsOnRequest,
    build_mirror,
    generate_month,
    main,
    mirror_path,
)
from devtools.generator.schemas import csv_era, is_published, parquet_columns
from devtools.generator.zones import AIRPORT_IDS, generate_zone_lookup, zones

__all__ = [
    "AIRPORT_IDS",
    "DEFAULT_ROWS",
    "FORMATS",
    "GENERATOR_VERSION",
    "GeneratedFile",
    "MonthsOnRequest",
    "build_mirror",
    "csv_era",
    "generate_month",
    "generate_zone_lookup",
    "is_published",
    "main",
    "mirror_path",
    "parquet_columns",
    "zones",
]
