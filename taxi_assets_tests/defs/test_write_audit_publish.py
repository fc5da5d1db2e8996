"""Write–audit–publish: a landed month is only ever replaced by a version that passed its audit.

A good month lands; then the mirror re-serves the same month as a bad file (each fault a TLC
re-publication could bring). Every store — lake files by checksum, warehouse rows by a row hash —
is snapshotted before and after: unchanged unless the new version passed its audit; the run fails
naming service, month, file and rule; the new version is kept under `_held/` with its audit.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from taxi_assets.defs.alerts import run_failure_alert
from taxi_assets.defs.assets.ingest import AUDIT_CHECK
from devtools.generator import build_mirror
from devtools.mirror import Body
from taxi_assets.tlc.months import parse_month

from taxi_assets_tests.conftest import Pipeline, make_pipeline
from taxi_assets_tests.e2e.test_pipeline_e2e import table_checksum

MONTH = "2023-01"
AUDIT = dg.AssetCheckKey(dg.AssetKey(["yellow", "trips_cleaned"]), AUDIT_CHECK)
FILE = f"yellow_tripdata_{MONTH}.parquet"
URL_PATH = f"/trip-data/{FILE}"
TABLES = ("trips", "rejects_summary", "daily_zone_mart")


def snapshot(pipeline: Pipeline, service: str = "yellow", month: str = MONTH) -> dict[str, object]:
    """Every published lake file by checksum, and every warehouse table's month by rows and row hash."""
    root = pipeline.lake.local_path("")
    # Never walked into: a step interrupted while its ingest generator was suspended inside a staging
    # folder removes that folder when the generator is garbage-collected, which can be mid-walk.
    published = [top for top in root.iterdir() if top.name not in ("_held", "_staging", "_locks")]
    files = {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in published
        for p in sorted([top, *top.rglob("*")] if top.is_dir() else [top])
        if p.is_file()
    }
    tables = {t: table_checksum(pipeline, f"{service}_{t}", month) for t in TABLES}
    return {"files": files, "tables": tables}


@pytest.fixture(scope="module")
def landed(tmp_path_factory, mirror, mirror_root):
    """A good yellow month in every store; tests re-serve it badly and compare snapshots."""
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path_factory.mktemp("wap"), mirror, instance)
        assert pipeline.run("zones").success
        assert pipeline.run("yellow", MONTH).success
        yield pipeline


@pytest.fixture(scope="module")
def good(mirror_root) -> pa.Table:
    return pq.read_table(mirror_root / "trip-data" / FILE)


def parquet_bytes(table: pa.Table, **options) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def corrupt_last_row_group(table: pa.Table) -> bytes:
    """Valid magic and footer, garbage inside the last row group's pages: only a full read finds it."""
    data = bytearray(parquet_bytes(table, row_group_size=1000, compression="snappy"))
    meta = pq.read_metadata(io.BytesIO(bytes(data)))
    last = meta.row_group(meta.num_row_groups - 1)
    for index in range(last.num_columns):
        column = last.column(index)
        start = column.data_page_offset + 24
        for offset in range(start, min(start + 64, column.data_page_offset + column.total_compressed_size)):
            data[offset] ^= 0x5A
    return bytes(data)


def faults(good: pa.Table) -> dict[str, tuple[bytes, str]]:
    """name -> (the re-published file, the audit rule or reason its failure must name)."""
    dropped = good.drop_columns(["fare_amount"])
    renamed = good.rename_columns(["pickup_time" if n == "tpep_pickup_datetime" else n for n in good.schema.names])
    wrong_type = good.set_column(
        good.schema.get_field_index("fare_amount"), "fare_amount", pa.array(["n/a"] * good.num_rows)
    )
    return {
        "zero_rows": (parquet_bytes(good.slice(0, 0)), "has_rows"),
        "one_percent": (parquet_bytes(good.slice(0, good.num_rows // 100)), "rows_near_previous"),
        "dropped_column": (parquet_bytes(dropped), "no_column_newly_null"),
        "corrupt_last_row_group": (corrupt_last_row_group(good), "parses_to_end"),
        "renamed_pickup": (parquet_bytes(renamed), "parses_to_end"),
        "missing_pickup": (parquet_bytes(good.drop_columns(["tpep_pickup_datetime"])), "parses_to_end"),
        "wrong_type": (parquet_bytes(wrong_type), "parses_to_end"),
        "mostly_rejected": (
            parquet_bytes(good.set_column(good.schema.get_field_index("passenger_count"), "passenger_count",
                                          pa.array([0] * good.num_rows, pa.int64()))),
            "reject_share_near_history",
        ),
    }


FAULTS = ["zero_rows", "one_percent", "dropped_column", "corrupt_last_row_group", "renamed_pickup",
          "missing_pickup", "wrong_type", "mostly_rejected"]


@pytest.mark.parametrize("fault", FAULTS)
def test_bad_republication_leaves_every_store_unchanged(landed: Pipeline, mirror, good, fault):
    body, rule = faults(good)[fault]
    before = snapshot(landed)
    mirror.inject(URL_PATH, Body(body))
    result = landed.run("yellow", MONTH, raise_on_error=False)
    mirror.clear_faults()

    assert not result.success
    assert snapshot(landed) == before

    message = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.message
    assert f"yellow {MONTH}" in message and FILE in message and rule in message, message
    assert "held back" in message
    audit = [c for c in result.get_asset_check_evaluations() if c.check_name == AUDIT_CHECK]
    assert len(audit) == 1 and not audit[0].passed
    assert audit[0].partition == MONTH and audit[0].metadata["month"].value == MONTH
    assert landed.check_status(AUDIT, MONTH) == "FAILED"  # on the stored version, still the month's latest
    held = Path(audit[0].metadata["held_back_at"].value)
    assert held.is_relative_to(landed.lake.local_path("_held/yellow") / MONTH)
    assert (held / FILE).read_bytes() == body  # the candidate, exactly as served
    report = json.loads((held / "audit.json").read_text())
    assert rule in report["failures"] and report["passed"] is False
    # the run-failure alert carries the cause: month, file, the rule
    alert = run_failure_alert(landed.instance, landed.instance.get_run_by_id(result.run_id), None)
    assert f"yellow {MONTH}" in alert.error and rule in alert.error and "held back" in alert.error


def test_a_run_that_dies_during_the_audit_changes_nothing(landed: Pipeline, mirror, good, monkeypatch):
    from taxi_assets.defs.assets import ingest

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed during the audit")

    before = snapshot(landed)
    monkeypatch.setattr(ingest, "audit_month", killed)
    mirror.inject(URL_PATH, Body(parquet_bytes(pa.concat_tables([good, good.slice(0, 40)]))))
    with pytest.raises(KeyboardInterrupt):
        landed.run("yellow", MONTH)
    mirror.clear_faults()
    assert snapshot(landed) == before


def test_good_republication_replaces_and_records_a_passed_audit(landed: Pipeline, mirror, good):
    grown = pa.concat_tables([good, good.slice(0, good.num_rows // 20)])  # the TLC added 5 % late rows
    mirror.inject(URL_PATH, Body(parquet_bytes(grown)))
    result = landed.run("yellow", MONTH)
    mirror.clear_faults()
    assert result.success
    audit = next(c for c in result.get_asset_check_evaluations() if c.check_name == AUDIT_CHECK)
    assert audit.passed and audit.metadata["verdict"].value == "passed, published"
    assert audit.metadata["rows_read"].value == grown.num_rows
    assert landed.check_status(AUDIT, MONTH) == "SUCCEEDED"  # about the version it published
    raw = landed.lake.local_path(f"raw/yellow/{MONTH}/{FILE}")
    assert pq.read_metadata(raw).num_rows == grown.num_rows
    days = landed.lake.read_manifest("trips/yellow", MONTH)  # the cleaned rows' date folders, as one version
    folders = landed.lake.local_path("trips/yellow")
    assert {p.relative_to(folders).as_posix() for p in folders.rglob("*.parquet")} == {e.path for e in days.files}
    kept = sum(pq.read_metadata(folders / e.path).num_rows for e in days.files)
    assert days.rows == kept == audit.metadata["rows_kept"].value
    assert landed.warehouse.count("yellow_trips", parse_month(MONTH)) == kept
    assert landed.run("yellow", MONTH).success  # the mirror's own file again: within the band, back as it was


def test_forced_republication_replaces_a_month_that_shrinks(tmp_path, mirror, good):
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance)
        assert pipeline.run("zones").success
        assert pipeline.run("yellow", MONTH).success
        small = good.slice(0, good.num_rows // 100)
        mirror.inject(URL_PATH, Body(parquet_bytes(small)))
        config = {"ops": {"yellow_ingest": {"config": {"force_publish": True}}}}
        result = pipeline.run("yellow", MONTH, run_config=config)
        mirror.clear_faults()
        assert result.success
        audit = next(c for c in result.get_asset_check_evaluations() if c.check_name == AUDIT_CHECK)
        assert not audit.passed and audit.metadata["verdict"].value == "failed, published by force_publish"
        raw = pipeline.lake.local_path(f"raw/yellow/{MONTH}/{FILE}")
        assert pq.read_table(raw).equals(small)
        kept = pipeline.lake.read_manifest("trips/yellow", MONTH).rows
        assert pipeline.warehouse.count("yellow_trips", parse_month(MONTH)) == kept < small.num_rows + 1


def test_forcing_never_publishes_a_file_that_does_not_parse(landed: Pipeline, mirror, good):
    before = snapshot(landed)
    mirror.inject(URL_PATH, Body(corrupt_last_row_group(good)))
    config = {"ops": {"yellow_ingest": {"config": {"force_publish": True}}}}
    result = landed.run("yellow", MONTH, run_config=config, raise_on_error=False)
    mirror.clear_faults()
    assert not result.success and snapshot(landed) == before


def test_first_load_far_below_its_neighbours_is_held_back(tmp_path, mirror, good):
    """No stored version of 2023-02 yet: its stored neighbour 2023-01 sets the band."""
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance)
        assert pipeline.run("zones").success
        assert pipeline.run("yellow", MONTH).success
        tiny = pq.read_table(pipeline.lake.local_path(f"raw/yellow/{MONTH}/{FILE}")).slice(0, 20)
        tiny = tiny.set_column(
            tiny.schema.get_field_index("tpep_pickup_datetime"), "tpep_pickup_datetime",
            pc.add(tiny.column("tpep_pickup_datetime"), pa.scalar(31 * 86400 * 10**6, pa.duration("us"))),
        )
        mirror.inject("/trip-data/yellow_tripdata_2023-02.parquet", Body(parquet_bytes(tiny)))
        result = pipeline.run("yellow", "2023-02", raise_on_error=False)
        mirror.clear_faults()
        assert not result.success
        message = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.message
        assert "rows_near_neighbours" in message and "2023-01" in message
        assert not pipeline.lake.local_path("raw/yellow/2023-02").exists()
        assert pipeline.lake.read_manifest("trips/yellow", "2023-02") is None


def test_a_run_that_dies_while_publishing_leaves_whole_files(landed: Pipeline, mirror, good, monkeypatch):
    """The process dies after the raw file was renamed in, before the cleaned month's files: each
    stored object is one whole version (the new raw file, the old cleaned month), never a partial file."""
    from taxi_assets.storage.lake import Lake

    before = snapshot(landed)
    grown = pa.concat_tables([good, good.slice(0, 40)])
    put = Lake.put_file

    def die_on_cleaned(self, local_file, key):
        if key.startswith("trips/"):
            raise KeyboardInterrupt("killed while publishing")
        return put(self, local_file, key)

    monkeypatch.setattr(Lake, "put_file", die_on_cleaned)
    mirror.inject(URL_PATH, Body(parquet_bytes(grown)))
    with pytest.raises(KeyboardInterrupt):
        landed.run("yellow", MONTH)
    mirror.clear_faults()
    monkeypatch.undo()
    after = snapshot(landed)
    changed = {k for k in after["files"] if after["files"][k] != before["files"].get(k)}
    assert changed == {f"raw/yellow/{MONTH}/{FILE}"}
    assert pq.read_table(landed.lake.local_path(f"raw/yellow/{MONTH}/{FILE}")).equals(grown)
    assert after["tables"] == before["tables"]
    assert landed.run("yellow", MONTH).success  # the next run publishes one version everywhere


def test_bad_csv_republications_leave_every_store_unchanged(tmp_path, mirror, mirror_root):
    """csv.gz (the zoomcamp mirror): a landed month re-served header-only, mis-headed, or with its
    last line cut (a valid gzip of a broken CSV) is held back, naming file and reason."""
    build_mirror(mirror_root, ["green"], ["2020-10"], "csv.gz", 4_000)
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance, TAXI_SOURCE_FORMAT="csv.gz", TAXI_SOURCE_URL=f"{mirror.url}/{{service}}")
        assert pipeline.run("zones").success
        assert pipeline.run("green", "2020-10").success
        good = gzip.decompress((mirror_root / "green" / "green_tripdata_2020-10.csv.gz").read_bytes())
        header = good.split(b"\n", 1)[0] + b"\n"
        cases = {
            "header_only": (gzip.compress(header), "has_rows"),
            "mis_headed": (gzip.compress(b"a,b,c\n1,2,3\n"), "parses_to_end"),
            "last_line_cut": (gzip.compress(good[: len(good) - 40]), "parses_to_end"),
        }
        before = snapshot(pipeline, "green", "2020-10")
        for name, (body, rule) in cases.items():
            mirror.inject("/green/green_tripdata_2020-10.csv.gz", Body(body, "application/gzip"))
            result = pipeline.run("green", "2020-10", raise_on_error=False)
            mirror.clear_faults()
            assert not result.success, name
            message = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.message
            assert "green 2020-10" in message and "green_tripdata_2020-10.csv.gz" in message and rule in message, message
            assert "StopIteration" not in message
            assert snapshot(pipeline, "green", "2020-10") == before, name
