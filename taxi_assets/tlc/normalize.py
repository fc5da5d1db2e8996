"""Map any year's TLC file onto the one canonical schema of its service (see services.py).

The TLC renamed, re-cased and re-typed columns many times (REFERENCE §1). Everything here is decided once per
file from its header/schema (`plan_normalization`), then applied batch by batch with Arrow compute only
(`NormalizationPlan.apply`). A file we cannot map faithfully is refused with a `SchemaError` that names the file,
the partition and the reason: a wrong-but-plausible table (e.g. a renamed column turned all-null) is worse than
a failed run.
"""

from __future__ import annotations

import datetime as dt
import functools
import dataclasses
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from taxi_assets.tlc.services import SOURCE_MONTH, Service
from taxi_assets.tlc.months import month_label

__all__ = [
    "ALIASES",
    "KNOWN_IGNORED",
    "LATLON_COLUMNS",
    "NormalizationPlan",
    "SECONDARY_ALIASES",
    "SchemaError",
    "canonical_name",
    "csv_read_options",
    "holds_canonical",
    "plan_normalization",
]


class SchemaError(ValueError):
    """A source file that cannot be mapped onto its service's canonical schema without losing meaning."""


def _names(*names: str) -> dict[str, str]:
    return {name: name for name in names}


#: Normalised source name (lower case, no spaces/quotes) -> canonical column. Covers every CSV header 2009-2020
#: (shared/data/tlc/heads/headers_by_month.txt) and the TLC parquet names. One table for all services: a target
#: that is not in a service's schema is simply not used for that service.
ALIASES: dict[str, str] = {
    **_names(
        "vendor_id", "pickup_datetime", "dropoff_datetime", "passenger_count", "trip_distance", "ratecode_id",
        "store_and_fwd_flag", "pickup_location_id", "dropoff_location_id", "payment_type", "fare_amount", "extra",
        "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge", "total_amount", "congestion_surcharge",
        "airport_fee", "cbd_congestion_fee", "ehail_fee", "trip_type", "dispatching_base_num", "sr_flag",
        "affiliated_base_number", "hvfhs_license_num", "originating_base_num", "request_datetime",
        "on_scene_datetime", "trip_miles", "trip_time", "base_passenger_fare", "tolls", "bcf", "sales_tax", "tips",
        "driver_pay", "shared_request_flag", "shared_match_flag", "access_a_ride_flag", "wav_request_flag",
        "wav_match_flag",
    ),
    # yellow/green 2013+ and parquet
    "vendorid": "vendor_id",
    "tpep_pickup_datetime": "pickup_datetime",
    "tpep_dropoff_datetime": "dropoff_datetime",
    "lpep_pickup_datetime": "pickup_datetime",
    "lpep_dropoff_datetime": "dropoff_datetime",  # also Lpep_dropoff_datetime (green 2013-2016H1)
    "ratecodeid": "ratecode_id",  # RatecodeID, RateCodeID
    "pulocationid": "pickup_location_id",  # PULocationID, PUlocationID (fhv)
    "dolocationid": "dropoff_location_id",
    # yellow 2009-2014
    "rate_code": "ratecode_id",
    "surcharge": "extra",
    "trip_pickup_datetime": "pickup_datetime",
    "trip_dropoff_datetime": "dropoff_datetime",
    "store_and_forward": "store_and_fwd_flag",
    "fare_amt": "fare_amount",
    "tip_amt": "tip_amount",
    "tolls_amt": "tolls_amount",
    "total_amt": "total_amount",
    # fhv: 2015-2016 has one location column, the pickup zone; later years vary the case (DropOff_datetime, ...)
    "pickup_date": "pickup_datetime",
    "locationid": "pickup_location_id",
    "affiliated_base_num": "affiliated_base_number",
}

#: A second name for a canonical column. fhv 2018 carries both Dispatching_base_number and
#: Dispatching_base_num, with the base in the first and the second empty: when both are present the
#: canonical column takes the preferred one's value, else the secondary's (coalesce), so no base is lost.
SECONDARY_ALIASES: dict[str, str] = {"dispatching_base_number": "dispatching_base_num"}

#: Coordinates of the pre-2016H2 CSVs: their presence without zone ids marks the lat/lon era.
LATLON_COLUMNS = frozenset({
    "pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude",
    "start_lon", "start_lat", "end_lon", "end_lat",
})

#: Source columns we know and deliberately drop (anything else unmapped is "unknown", see plan_normalization).
KNOWN_IGNORED = LATLON_COLUMNS | {
    "__index_level_0__", "", "unnamed: 0",  # a pandas index saved into parquet / CSV by pandas pipelines
    "vendor_name",  # yellow 2009: "VTS"/"CMT" names, not the integer VendorID (and 2009 is out of scope)
}


def canonical_name(source_name: str) -> str | None:
    """The canonical column a source column feeds (primary aliases only), or None."""
    return ALIASES.get(_key(source_name))


def _key(name: str) -> str:
    return name.strip().strip("\ufeff").strip().strip("\"'").strip().lower()


def _where(service: Service, month: dt.date, source_name: str) -> str:
    return f"{service.name} {month_label(month)} ({source_name})"


def _required(service: Service) -> list[str]:
    """Columns without which every row would be rejected (or meaningless): refuse the file instead."""
    cols = ["pickup_datetime", "pickup_location_id"]
    if not service.dropoff_nullable:
        cols.append("dropoff_datetime")
    if not service.locations_nullable:
        cols.append("dropoff_location_id")
    return cols


@functools.cache
def _cast_options(target: pa.DataType) -> pc.CastOptions:
    # Safe casts (no overflow, no float truncation); only sub-microsecond digits may be dropped.
    return pc.CastOptions(target, allow_time_truncate=True)


def _is_text(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def _encoded_text(typ: pa.DataType, canonical: pa.DataType) -> bool:
    """Whether a column of `typ` holds a canonical text column's values as a dictionary of them."""
    return pa.types.is_dictionary(typ) and _is_text(canonical) and typ.value_type == canonical


def holds_canonical(schema: pa.Schema, service: Service) -> bool:
    """Whether batches of `schema` are the service's canonical ones (its text possibly dictionary-encoded)."""
    canonical = service.schema
    return schema.names == canonical.names and all(
        t == c or _encoded_text(t, c) for t, c in zip(schema.types, canonical.types)
    )


def _cast(arr: pa.Array, target: pa.DataType, column: str, source: str, where: str) -> pa.Array:
    """Cast one column to its declared type without losing information, or raise SchemaError."""
    if arr.type == target:
        return arr
    if arr.null_count == len(arr):  # null-typed or all-null int32 columns: nothing to convert
        return pa.nulls(len(arr), target)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_timestamp(arr.type) and arr.type.tz is not None:
        raise SchemaError(f"{where}: column {column} (source {source!r}) is timezone-aware ({arr.type}); "
                          "TLC times are naive local times and a conversion would be a guess")
    if _is_text(arr.type) and not _is_text(target):
        arr = pc.utf8_trim_whitespace(arr)
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
        if pa.types.is_integer(target):  # "1.0" is a lossless integer too
            arr = _try_cast(arr, pa.float64(), column, source, where)
    return _try_cast(arr, target, column, source, where)


def _try_cast(arr: pa.Array, target: pa.DataType, column: str, source: str, where: str) -> pa.Array:
    try:
        return pc.cast(arr, options=_cast_options(target))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"{where}: column {column} (source {source!r}, {arr.type}) cannot be cast losslessly "
                          f"to {target}: {exc}") from None


@dataclass(frozen=True)
class NormalizationPlan:
    """How one file's columns become the service's canonical columns; computed once, applied per batch."""

    service: Service
    month: dt.date
    source_name: str
    #: canonical column -> source column name, for every canonical column the file provides
    sources: dict[str, str]
    #: canonical columns the file lacks: filled with typed nulls
    absent: tuple[str, ...]
    #: source columns not used (lat/lon, pandas index, unknown extras)
    ignored: tuple[str, ...]
    #: canonical column -> a second source column that fills its nulls (fhv 2018's two base columns)
    fallbacks: dict[str, str] = dataclasses.field(default_factory=dict)
    #: canonical text column -> its dictionary type, for text the reader hands over dictionary-encoded
    #: (raw_reader asks for it where the file stores a dictionary): kept so, the same values
    encoded: dict[str, pa.DataType] = dataclasses.field(default_factory=dict)

    @property
    def where(self) -> str:
        return _where(self.service, self.month, self.source_name)

    @functools.cached_property
    def schema(self) -> pa.Schema:
        """What `apply` yields: the service's schema, its `encoded` text columns as dictionaries."""
        return pa.schema([pa.field(f.name, self.encoded.get(f.name, f.type)) for f in self.service.schema])

    @property
    def source_columns(self) -> list[str]:
        """The source columns to read (e.g. parquet projection)."""
        return list(self.sources.values()) + list(self.fallbacks.values())

    def describe(self) -> str:
        renamed = {c: s for c, s in self.sources.items() if s != c}
        return (f"{self.where}: {len(self.sources)} columns mapped (renamed: {renamed or 'none'}); "
                f"absent, filled with nulls: {list(self.absent) or 'none'}; ignored: {list(self.ignored) or 'none'}")

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """One source batch -> exactly `self.schema` (the service's names, order and types; text the
        file dictionary-encodes stays so), source_month set.

        Expanding a dictionary-encoded text column into strings was most of reading a 20M-row fhvhv
        month's eight text columns, and the lake's writer then hashed every string back into a
        dictionary: kept as codes, that month's ingest took 0.86-0.95x the time, a sixth less CPU
        and ~100 MB less memory.
        """
        n = batch.num_rows
        names = set(batch.schema.names)
        missing = [s for s in self.source_columns if s not in names]
        if missing:
            raise SchemaError(f"{self.where}: batch lacks planned source columns {missing}")
        arrays = []
        for field in self.service.schema:
            if field.name == SOURCE_MONTH:
                arrays.append(pa.repeat(pa.scalar(self.month, pa.date32()), n))
            elif field.name in self.sources:
                source = self.sources[field.name]
                values = batch.column(source)
                if field.name not in self.encoded:
                    values = _cast(values, field.type, field.name, source, self.where)
                fallback = self.fallbacks.get(field.name)
                if fallback is not None and values.null_count:
                    values = pc.coalesce(values, _cast(batch.column(fallback), field.type, field.name, fallback,
                                                       self.where))
                arrays.append(values)
            else:
                arrays.append(pa.nulls(n, field.type))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def plan_normalization(source_schema: pa.Schema, service: Service, month: dt.date,
                       source_name: str) -> NormalizationPlan:
    """Decide, from a file's schema alone, which source column feeds which canonical column.

    Refuses (SchemaError) months before the service's first month, lat/lon-era files (no zone ids), files
    missing a required column, two source columns claiming one canonical column, and unknown columns when a
    canonical column is absent (the signature of a rename that would otherwise become an all-null column).
    """
    where = _where(service, month, source_name)
    if month < service.first_month_date:
        raise SchemaError(f"{where}: out of scope: {service.name} starts at {service.first_month} "
                          "(earlier files have lat/lon instead of zone ids)")
    wanted = set(service.schema.names) - {SOURCE_MONTH}
    claims: dict[str, list[str]] = {}
    secondary: dict[str, str] = {}
    ignored: list[str] = []
    unknown: list[str] = []
    for name in source_schema.names:
        key = _key(name)
        target = ALIASES.get(key)
        if target in wanted:
            claims.setdefault(target, []).append(name)
        elif SECONDARY_ALIASES.get(key) in wanted and SECONDARY_ALIASES[key] not in secondary:
            secondary[SECONDARY_ALIASES[key]] = name
        else:
            ignored.append(name)
            if target is None and key not in KNOWN_IGNORED:
                unknown.append(name)
    clashes = {c: s for c, s in claims.items() if len(s) > 1}
    if clashes:
        raise SchemaError(f"{where}: several source columns map to the same canonical column: {clashes}")
    sources = {c: s[0] for c, s in claims.items()}
    fallbacks: dict[str, str] = {}
    for target, name in secondary.items():
        if target in sources:
            fallbacks[target] = name  # fhv 2018: Dispatching_base_number beside an empty Dispatching_base_num
        else:
            sources[target] = name
    ordered = {f.name: sources[f.name] for f in service.schema if f.name in sources}
    encoded = {
        target: source_schema.field(source).type
        for target, source in ordered.items()
        if target not in fallbacks and _encoded_text(source_schema.field(source).type, service.schema.field(target).type)
    }
    absent = tuple(f.name for f in service.schema if f.name in wanted and f.name not in sources)
    keys = {_key(n) for n in source_schema.names}
    if "pickup_location_id" not in ordered and keys & LATLON_COLUMNS:
        raise SchemaError(f"{where}: lat/lon-era file has no zone ids (pickup_location_id); "
                          "use the TLC parquet, which has them")
    missing = [c for c in _required(service) if c not in ordered]
    if missing:
        raise SchemaError(f"{where}: required column(s) {missing} not found in source columns "
                          f"{source_schema.names}")
    if unknown and absent:
        raise SchemaError(f"{where}: unknown source column(s) {unknown} while canonical column(s) {list(absent)} "
                          "are absent: probably a rename; add it to normalize.ALIASES (or KNOWN_IGNORED)")
    return NormalizationPlan(service, month, source_name, ordered, absent, tuple(ignored), fallbacks, encoded)


#: CSV timestamp formats: the TLC's own, then ISO-8601 (with 'T', fractions) as re-exported by others.
TIMESTAMP_PARSERS = ["%Y-%m-%d %H:%M:%S", pacsv.ISO8601]


def _csv_type(declared: pa.DataType) -> pa.DataType:
    # Integers are read as float64 so that "1.0" (pandas re-exports) is accepted and "1.5" reaches
    # NormalizationPlan.apply, which refuses it with the column's name instead of a bare parse error.
    if pa.types.is_integer(declared):
        return pa.float64()
    return declared


def csv_read_options(header: list[str], service: Service, month: dt.date, source_name: str, *,
                     block_size: int | None = None) -> tuple[pacsv.ReadOptions, pacsv.ConvertOptions]:
    """Explicit types for every column of a CSV, so streaming never infers a type from its first block.

    `header` is the file's first line split into names (quotes removed or not); the header line itself is
    skipped. Known columns get their declared type, unknown ones string; "" is null.
    """
    names = [name.strip().strip("\ufeff").strip().strip("\"'") for name in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaError(f"{_where(service, month, source_name)}: duplicate header names {dupes}")
    declared = {f.name: f.type for f in service.schema}
    types = {}
    for name in names:
        target = ALIASES.get(_key(name)) or SECONDARY_ALIASES.get(_key(name))
        types[name] = _csv_type(declared[target]) if target in declared else pa.string()
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, **({"block_size": block_size} if block_size else {}))
    convert = pacsv.ConvertOptions(column_types=types, timestamp_parsers=TIMESTAMP_PARSERS, null_values=[""],
                                   strings_can_be_null=True, quoted_strings_can_be_null=True)
    return read, convert

