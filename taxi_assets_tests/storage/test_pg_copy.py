"""The binary COPY encoder: byte-for-byte what a row-by-row encoder writes, accepted by a real
Postgres with every value intact, and reading back in blocks of whole rows."""

from __future__ import annotations

import datetime as dt
import struct
import time
import uuid

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from taxi_assets_tests.pg_reference import encode_reference
from taxi_assets.storage.warehouse.pg_copy import (
    PGCOPY_HEADER,
    PGCOPY_TRAILER,
    BinaryCopyEncoder,
    CopyEncodeError,
    copy_record_batches,
    pg_type_for,
)

UNUSUAL_STRINGS = ['say "hi"', "tab\there", "new\nline", "cr\r\nlf", "back\\slash", "comma,semi;", "", "ünïcødé ✓ 出租车", "'"]


def every_type_table(n: int = 600, seed: int = 1) -> pa.Table:
    """Every supported type, with NULLs scattered in every column and odd values at the edges."""
    rng = np.random.default_rng(seed)
    nulls = lambda p=0.2: rng.random(n) < p  # noqa: E731
    ts = rng.integers(-2_000_000_000_000_000, 4_000_000_000_000_000, n)  # 1906..2096, microseconds
    ts[:4] = [0, -1, 946_684_800_000_000, 946_684_799_999_999]  # the two epochs, and a microsecond either side
    days = rng.integers(-30_000, 60_000, n).astype(np.int32)
    days[:2] = [0, 10_957]
    i32 = rng.integers(-(2**31), 2**31, n, dtype=np.int64).astype(np.int32)
    i32[:2] = [-(2**31), 2**31 - 1]
    i64 = rng.integers(-(2**62), 2**62, n, dtype=np.int64)
    i64[:2] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max]
    money = np.round(rng.normal(0, 100, n), 2)
    money[:4] = [12.35, -7.5, 0.01, 99_999_999.99]
    strings = [UNUSUAL_STRINGS[i % len(UNUSUAL_STRINGS)] * (1 + i % 3) for i in range(n)]
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "i16": pa.array(rng.integers(-(2**15), 2**15, n).astype(np.int16), mask=nulls()),
            "i32": pa.array(i32, mask=nulls()),
            "i64": pa.array(i64, mask=nulls()),
            "f32": pa.array(rng.normal(size=n).astype(np.float32), mask=nulls()),
            "money": pa.array(money, mask=nulls()),
            "flag": pa.array(rng.random(n) < 0.5, mask=nulls()),
            "day": pa.array(days, pa.date32(), mask=nulls()),
            "at": pa.array(ts, pa.timestamp("us"), mask=nulls()),
            "at_utc": pa.array(ts, pa.timestamp("us", tz="UTC"), mask=nulls()),
            "text": pa.array(strings, mask=nulls()),
            "short": pa.array(np.where(rng.random(n) < 0.5, "Y", "N"), mask=nulls(0.05)),
            "nothing": pa.nulls(n, pa.float64()),
            "blob": pa.array([bytes([i % 256]) * (i % 4) for i in range(n)], pa.binary(), mask=nulls()),
        }
    )


def split_rows(stream: bytes, ncols: int) -> list[tuple]:
    """Parse binary COPY tuples (no header) into tuples of raw field bytes (None for NULL)."""
    rows, pos = [], 0
    while pos < len(stream):
        (count,) = struct.unpack_from(">h", stream, pos)
        assert count == ncols
        pos += 2
        row = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", stream, pos)
            pos += 4
            if length < 0:
                row.append(None)
            else:
                row.append(stream[pos : pos + length])
                pos += length
        rows.append(tuple(row))
    return rows


def types_of(table: pa.Table) -> list[str]:
    return [pg_type_for(f.type) for f in table.schema]


def taxi_like_table(n: int = 5000) -> pa.Table:
    """NULLs come in a few patterns (whole column groups), flags are one character: few row shapes."""
    full = every_type_table(n)
    group = np.random.default_rng(3).random(n) < 0.1
    return pa.table(
        {
            "id": full.column("id"),
            "i32": pa.array(np.arange(n, dtype=np.int32), mask=group),
            "money": pa.array(np.round(np.linspace(-50, 50, n), 2)),
            "tip": pa.array(np.round(np.linspace(0, 9, n), 2), mask=group),
            "at": pa.array(np.arange(n, dtype=np.int64) * 1_000_003, pa.timestamp("us")),
            "flag": pa.array(np.where(np.arange(n) % 7 == 0, "Y", "N"), mask=group),
            "day": pa.array(np.full(n, 19_723, np.int32), pa.date32()),
            "nothing": pa.nulls(n, pa.float64()),
        }
    )


@pytest.mark.parametrize(
    "make,path",
    [
        (every_type_table, "encode"),
        (every_type_table, "_encode_padded"),
        (every_type_table, "_encode_scattered"),
        (taxi_like_table, "encode"),
        (taxi_like_table, "_encode_grouped"),
        (taxi_like_table, "_encode_padded"),
        (taxi_like_table, "_encode_scattered"),
    ],
)
def test_every_layout_writes_what_the_row_by_row_encoder_writes(make, path):
    table = make()
    batch = table.combine_chunks().to_batches()[0]
    types = types_of(table)
    encoder = BinaryCopyEncoder(types)
    if path == "encode":
        out = b"".join(bytes(chunk) for chunk in encoder.encode(batch))
    else:
        cols = [encoder._prepare(batch.column(i), t, batch.schema.names[i]) for i, t in enumerate(types)]
        result = getattr(encoder, path)(batch.num_rows, cols)
        assert result is not None, f"{path} declined this batch"
        out = bytes(result)
    expected = encode_reference(batch, types)
    if path in ("_encode_padded", "_encode_scattered"):
        assert out == expected  # these keep the rows in order
    # rows of a table have no order: the grouped layout writes rows of one shape together
    assert sorted(split_rows(out, len(types)), key=repr) == sorted(split_rows(expected, len(types)), key=repr)


def test_grouping_gives_way_when_rows_have_too_many_shapes():
    table = every_type_table()  # NULLs independent in a dozen columns: thousands of shapes
    batch = table.combine_chunks().to_batches()[0]
    encoder = BinaryCopyEncoder(types_of(table))
    cols = [encoder._prepare(batch.column(i), t, batch.schema.names[i]) for i, t in enumerate(types_of(table))]
    assert encoder._encode_grouped(batch.num_rows, cols) is None


def test_grouping_gives_way_when_strings_have_too_many_lengths():
    n = 2000
    batch = pa.record_batch({"s": pa.array(["x" * (i % 700) for i in range(n)])})
    encoder = BinaryCopyEncoder(["text"])
    cols = [encoder._prepare(batch.column(0), "text", "s")]
    assert encoder._encode_grouped(n, cols) is None
    assert bytes(encoder.encode_chunk(batch)) == encode_reference(batch, ["text"])


def test_a_long_value_among_short_ones_is_not_padded_into_every_row():
    n = 5000
    values = ["a"] * n
    values[17] = "z" * 100_000
    values[18] = "zz"
    batch = pa.record_batch({"s": pa.array(values)})
    out = bytes(BinaryCopyEncoder(["text"]).encode_chunk(batch))
    assert len(out) < 2 * n + 4 * n + n + 100_100  # about the exact size, not n * 100_000
    assert sorted(split_rows(out, 1)) == sorted(split_rows(encode_reference(batch, ["text"]), 1))


def test_batches_are_cut_into_chunks_of_bounded_size():
    table = every_type_table(n=1000)
    encoder = BinaryCopyEncoder(types_of(table), chunk_rows=128)
    chunks = list(encoder.encode(table.combine_chunks().to_batches()[0]))
    assert len(chunks) == 8
    assert sum(len(split_rows(bytes(c), table.num_columns)) for c in chunks) == 1000


def test_values_are_cast_to_the_target_column_and_overflow_is_refused():
    batch = pa.record_batch({"n": pa.array([1, 2**31 - 1, None], pa.int64())})
    out = bytes(BinaryCopyEncoder(["integer"]).encode_chunk(batch))
    assert sorted(split_rows(out, 1), key=repr) == sorted([(struct.pack(">i", 1),), (struct.pack(">i", 2**31 - 1),), (None,)], key=repr)
    with pytest.raises(CopyEncodeError, match="cannot store int64 as Postgres integer"):
        BinaryCopyEncoder(["integer"]).encode_chunk(pa.record_batch({"n": pa.array([2**31], pa.int64())}))
    with pytest.raises(CopyEncodeError, match="no Postgres column type"):
        pg_type_for(pa.list_(pa.int32()))


def test_postgres_accepts_the_stream_and_keeps_every_value(postgres_url):
    table = every_type_table(n=3000, seed=7)
    types = types_of(table)
    name = f"copy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(t)) for f, t in zip(table.schema, types))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), columns))
        try:
            with conn.cursor() as cur:
                sent = copy_record_batches(cur, sql.Identifier(name), table.column_names, types, table.to_batches(max_chunksize=700), chunk_rows=256)
                assert sent == cur.rowcount == 3000
            rows = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(sql.Identifier(name))).fetchall()
        finally:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    expected = table.to_pylist()
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected):
        want = dict(want)
        if want["at_utc"] is not None:
            want["at_utc"] = want["at_utc"].astimezone(dt.timezone.utc)
        if want["f32"] is not None:
            assert got[4] == pytest.approx(want["f32"], rel=1e-6)
            want["f32"] = got[4]
        got_row = dict(zip(table.column_names, got))
        got_row["blob"] = None if got_row["blob"] is None else bytes(got_row["blob"])
        assert got_row == want


def test_a_malformed_stream_is_refused_by_the_server(postgres_url):
    """The encoder's output is what Postgres checks: a wrong field count must fail loudly."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE t (a integer, b integer)")
        with pytest.raises(psycopg.errors.BadCopyFileFormat), conn.cursor() as cur:
            with cur.copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(PGCOPY_HEADER)
                copy.write(bytes(BinaryCopyEncoder(["integer"]).encode_chunk(pa.record_batch({"a": pa.array([1], pa.int32())}))))
                copy.write(PGCOPY_TRAILER)


def test_encoding_is_vectorised_not_a_loop_over_rows():
    """200k yellow rows: a per-row Python encoder takes tens of seconds; numpy takes a fraction of one."""
    from benchmarks.postgres_copy import synthetic_yellow

    batches = list(synthetic_yellow(200_000, batch_rows=100_000))
    encoder = BinaryCopyEncoder([pg_type_for(f.type) for f in batches[0].schema])
    started = time.perf_counter()
    size = sum(len(chunk) for batch in batches for chunk in encoder.encode(batch))
    elapsed = time.perf_counter() - started
    assert size > 200_000 * 150
    assert elapsed < 4.0, f"{elapsed:.1f} s to encode 200k rows"
