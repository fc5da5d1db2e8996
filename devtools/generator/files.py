"""Writing months (parquet, csv.gz) atomically, the mirror tree, months generated on request, the CLI."""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from devtools.generator.common import (
    FORMATS,
    GENERATOR_VERSION,
    NULL,
    STR,
    GeneratedFile,
    _atomic_write_bytes,
    _mix,
    _Rng,
    _sha256,
)
from devtools.generator.schemas import csv_era, is_published, parquet_columns
from devtools.generator.values import _values
from devtools.generator.zones import generate_zone_lookup
from taxi_assets.tlc.months import month_label, month_range, parse_month
from taxi_assets.tlc.services import SERVICES, get_service

# ------------------------------------------------------------------------------------------ writing


def _csv_text(arr: pa.Array) -> pa.Array:
    """How a float reads in the CSV: "12.5", "7.0"; ints stay "1"; times "YYYY-MM-DD HH:MM:SS"."""
    if pa.types.is_timestamp(arr.type):
        return pc.cast(arr, pa.timestamp("s"))
    if pa.types.is_floating(arr.type):
        text = pc.cast(arr, STR)
        return pc.if_else(pc.match_substring(text, "."), text, pc.binary_join_element_wise(text, ".0", ""))
    return arr


def _tables(service: str, month: dt.date, rows: int, seed: int, dirty: bool, batch_rows: int,
            shape: Callable[[dict[str, pa.Array], int], pa.Table]) -> Iterator[pa.Table]:
    """The month's batches, shaped for the file; batch i+1 is computed on a second thread while the
    caller writes batch i (Arrow kernels, the parquet writer and zlib all release the GIL)."""

    def make(index: int) -> pa.Table:
        n = min(batch_rows, rows - index * batch_rows)
        rng = _Rng(_mix(seed, service, month_label(month), index), n, first_row=index * batch_rows, rows=rows)
        return shape(_values(service, rng, month, dirty), n)

    count = -(-rows // batch_rows)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(make, 0) if count else None
        for index in range(1, count + 1):
            current = pending.result()
            pending = pool.submit(make, index) if index < count else None
            yield current


def _column(values: dict[str, pa.Array], key: str | None, typ: pa.DataType, n: int) -> pa.Array:
    if key is None or typ == NULL:
        return pa.nulls(n, typ)
    return pc.cast(values[key], typ)


def _write_parquet(path: Path, service: str, month: dt.date, rows: int, seed: int, dirty: bool,
                   batch_rows: int) -> None:
    columns = parquet_columns(service, month)
    schema = pa.schema([pa.field(name, typ) for name, _, typ in columns])

    def shape(values: dict[str, pa.Array], n: int) -> pa.Table:
        return pa.Table.from_arrays([_column(values, key, typ, n) for _, key, typ in columns], schema=schema)

    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for table in _tables(service, month, rows, seed, dirty, batch_rows, shape):
            writer.write_table(table, row_group_size=batch_rows)
        if rows == 0:
            writer.write_table(schema.empty_table())


def _write_csv_gz(path: Path, service: str, month: dt.date, rows: int, seed: int, dirty: bool,
                  batch_rows: int) -> None:
    header, keys = csv_era(service, month)
    quoted = header.startswith('"')  # the 2017-07..2018-12 fhv files quote their text fields too
    options = pcsv.WriteOptions(include_header=False, eol="\r\n", quoting_style="needed" if quoted else "none")
    names = [f"c{i}" for i in range(len(keys))]

    def shape(values: dict[str, pa.Array], n: int) -> pa.Table:
        return pa.Table.from_arrays([_csv_text(values[k]) if k else pa.nulls(n, STR) for k in keys], names=names)

    # mtime=0 and no file name in the gzip header: same inputs, same bytes.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6,
                                                mtime=0) as gz:
        gz.write(header.encode() + b"\r\n")
        for table in _tables(service, month, rows, seed, dirty, batch_rows, shape):
            pcsv.write_csv(table, gz, options)


def generate_month(service: str, month: str, fmt: str, rows: int, out_path: Path, *, seed: int = 0,
                   dirty: bool = True, batch_rows: int = 500_000) -> GeneratedFile:
    """Write one month of one service in the raw shape the TLC published, `rows` rows exactly.

    The file appears atomically (written under a temporary name, then renamed), so a reader or a rerun
    never sees half a file. Same arguments (batch_rows included) give the same bytes.
    """
    m = parse_month(month)
    get_service(service)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if m < get_service(service).first_month_date:
        raise ValueError(f"the TLC has no {service} file with zone ids for {month}")
    if rows < 0 or batch_rows < 1:
        raise ValueError("rows must be >= 0 and batch_rows >= 1")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    write = _write_parquet if fmt == "parquet" else _write_csv_gz
    try:
        write(tmp, service, m, rows, seed, dirty, batch_rows)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return GeneratedFile(out_path, rows, _sha256(out_path))


# ------------------------------------------------------------------------------------------- mirror


def mirror_path(root: Path, service: str, month: str, fmt: str) -> Path:
    """Where the real source keeps the file, relative to its base URL."""
    name = f"{service}_tripdata_{month_label(parse_month(month))}.{fmt}"
    return Path(root) / ("trip-data" if fmt == "parquet" else service) / name


def build_mirror(root: Path, services: list[str], months: list[str], fmt: str, rows: int, *, seed: int = 0,
                 dirty: bool = True) -> list[GeneratedFile]:
    """Lay out a local copy of the TLC (parquet) or the CSV mirror (csv.gz) that base URL + file name reads.

    Months a service never had (fhvhv before 2019-02, CSVs after 2021-07, ...) are left out, as the real
    source would answer 403/404 for them. A file already generated with the same parameters (recorded in
    its `.generated.json` sidecar, checked against the file's sha256) is kept, so reruns are cheap.
    The zone lookup comes last in the returned list.
    """
    root = Path(root)
    out: list[GeneratedFile] = []
    for service in services:
        for month in months:
            if not is_published(service, month, fmt):
                continue
            path = mirror_path(root, service, month, fmt)
            sidecar = path.with_name(path.name + ".generated.json")
            params = {"generator_version": GENERATOR_VERSION, "service": service,
                      "month": month_label(parse_month(month)), "fmt": fmt, "rows": rows, "seed": seed,
                      "dirty": dirty}
            recorded = json.loads(sidecar.read_text()) if sidecar.exists() else {}
            if path.exists() and {k: recorded.get(k) for k in params} == params \
                    and recorded.get("sha256") == _sha256(path):
                out.append(GeneratedFile(path, rows, recorded["sha256"], reused=True))
                continue
            made = generate_month(service, month, fmt, rows, path, seed=_mix(seed, service, params["month"]),
                                  dirty=dirty)
            _atomic_write_bytes(sidecar, json.dumps({**params, "sha256": made.sha256}, indent=2).encode())
            out.append(made)
    out.append(generate_zone_lookup(root / "misc" / "taxi_zone_lookup.csv"))
    return out


#: Rows a generated month has unless told otherwise: small enough to make in a second or two.
DEFAULT_ROWS = {"yellow": 60_000, "green": 12_000, "fhv": 40_000, "fhvhv": 80_000}
_ON_REQUEST = re.compile(
    r"/(?:trip-data|(?P<folder>[a-z]+))/(?P<service>[a-z]+)_tripdata_(?P<month>\d{4}-\d{2})\.(?P<fmt>parquet|csv\.gz)\Z"
)


class MonthsOnRequest:
    """A mirror's `on_missing`: makes the file a URL path names, if the real source has it.

    Any month of any service the TLC publishes (parquet under `trip-data/`) or the zoomcamp mirror
    has (csv.gz under `<service>/`), up to the last complete month, in that month's schema era;
    the same bytes every time (`build_mirror`'s parameters and cache), one file made at a time.
    """

    def __init__(self, root: Path, rows: int | None = None, seed: int = 0, today: dt.date | None = None):
        self.root, self.rows, self.seed = Path(root), rows, seed
        self._today = today
        self._lock = threading.Lock()

    def __call__(self, url_path: str) -> Path | None:
        if url_path == "/misc/taxi_zone_lookup.csv":
            with self._lock:
                return generate_zone_lookup(self.root / "misc" / "taxi_zone_lookup.csv").path
        match = _ON_REQUEST.match(url_path)
        if match is None or match["service"] not in SERVICES:
            return None
        service, month, fmt = match["service"], match["month"], match["fmt"]
        if match["folder"] != (None if fmt == "parquet" else service):  # trip-data/*.parquet, <service>/*.csv.gz
            return None
        today = self._today or dt.date.today()
        try:
            if parse_month(month) >= dt.date(today.year, today.month, 1) or not is_published(service, month, fmt):
                return None
        except ValueError:
            return None
        with self._lock:
            rows = self.rows if self.rows is not None else DEFAULT_ROWS[service]
            build_mirror(self.root, [service], [month], fmt, rows, seed=self.seed)
        path = mirror_path(self.root, service, month, fmt)
        return path if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.generator", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="mirror root directory")
    parser.add_argument("--services", default="yellow", help="comma-separated: yellow,green,fhv,fhvhv")
    parser.add_argument("--months", required=True, help="YYYY-MM..YYYY-MM and/or comma-separated months")
    parser.add_argument("--format", default="parquet", choices=FORMATS)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean", action="store_true", help="no dirty rows")
    args = parser.parse_args(argv)
    services, months = [s.strip() for s in args.services.split(",") if s.strip()], month_range(args.months)
    for service in services:
        missing = [m for m in months if not is_published(service, m, args.format)]
        if missing:
            print(f"skipped {service} {', '.join(missing)}: the source never published them as {args.format}")
    files = build_mirror(args.out, services, months, args.format, args.rows, seed=args.seed, dirty=not args.clean)
    for f in files:
        print(f"{'kept' if f.reused else 'wrote'} {f.path} rows={f.rows} sha256={f.sha256[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
