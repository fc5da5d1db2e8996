"""Building on the platform: a user's assets receive the platform's data in the type they annotate,
for one month, a mapped range of months, or every landed month, with exactly the rows that landed;
their own outputs are stored atomically; an annotation we cannot serve fails with the list of those
we can. On the embedded default (local lake + DuckDB), Postgres, and the GCS + BigQuery emulators.
"""

import datetime as dt
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dagster_duckdb import DuckDBResource
from dagster_gcp import BigQueryResource, GCSResource

from devtools.generator import build_mirror
from devtools.mirror import MirrorServer
from examples.extending import USER_ASSETS
from taxi_assets.defs.resources import PostgresResource
from taxi_assets.storage.handles import WarehouseTable
from taxi_assets.tlc.months import parse_month
from taxi_assets.tlc.services import SERVICES

from taxi_assets_tests.conftest import Pipeline, make_pipeline

MONTHS = [f"2023-{m:02d}" for m in range(1, 13)]
ROWS = 800
LAKE_KINDS = {  # asset -> where its month's rows are, read straight from the lake
    "raw_file": "raw/yellow/{m}/yellow_tripdata_{m}.parquet",
    "trips_cleaned": "trips/yellow",  # a month of pickup_date= folders, read through its manifest
    "trips_rejected": "rejects/yellow/yellow_{m}.parquet",
}
WAREHOUSE_KINDS = {"trips_table": "yellow_trips", "daily_zone_mart": "yellow_daily_zone_mart", "rejects_summary": "yellow_rejects_summary"}
TYPES = [pd.DataFrame, pa.Table, pa.RecordBatchReader]
received: dict[str, pa.Table] = {}


@pytest.fixture(scope="module")
def year_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorServer]:
    root = tmp_path_factory.mktemp("year-mirror")
    build_mirror(root, ["yellow"], MONTHS, "parquet", ROWS)
    with MirrorServer(root, missing_status=403) as server:
        yield server


def as_arrow(value) -> pa.Table:
    """Whatever a user's asset was handed, as an Arrow table, to compare with what landed."""
    if isinstance(value, pd.DataFrame):
        return pa.Table.from_pandas(value, preserve_index=False)
    if isinstance(value, pa.RecordBatchReader):
        return value.read_all()
    if isinstance(value, ds.Dataset):
        return value.to_table()
    if isinstance(value, duckdb.DuckDBPyRelation):
        return value.to_arrow_table()
    if isinstance(value, WarehouseTable):
        return value.read()
    return value


def canonical(table: pa.Table) -> pd.DataFrame:
    """Rows in a fixed order and columns by name: the same rows compare equal whatever the path."""
    frame = table.select(sorted(table.column_names)).to_pandas()
    for column in frame.columns:  # timestamps as naive microseconds, whatever the engine's unit or zone
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].dt.tz_localize(None) if frame[column].dt.tz is not None else frame[column]
            frame[column] = frame[column].astype("datetime64[us]")
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def probe(name: str, upstream: str, annotation, partitions=None, mapping=None, store="lake_io_manager") -> dg.AssetsDefinition:
    """A user's asset that records what it was handed."""

    def record(context: dg.AssetExecutionContext, data) -> None:
        received[name] = as_arrow(data)

    record.__annotations__ = {"context": dg.AssetExecutionContext, "data": annotation, "return": None}
    return dg.asset(
        name=name,
        ins={"data": dg.AssetIn(["yellow", upstream], partition_mapping=mapping)},
        partitions_def=partitions,
        io_manager_key=store,
        group_name="probes",
    )(record)


def with_assets(pipeline: Pipeline, assets: list) -> dg.Definitions:
    return dg.Definitions.merge(pipeline.defs, dg.Definitions(assets=assets))


def materialize(defs: dg.Definitions, pipeline: Pipeline, key, partition: str | None = None, raise_on_error: bool = True):
    key = dg.AssetKey.from_coercible(key)
    job = dg.define_asset_job(f"probe_{'_'.join(key.path)}", selection=dg.AssetSelection.assets(key))
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    return defs.resolve_job_def(job.name).execute_in_process(partition_key=partition, instance=pipeline.instance, raise_on_error=raise_on_error)


def landed_month(lake, kind: str, month: str) -> pa.Table:
    if kind == "trips_cleaned":
        return lake.read_partitioned_month(LAKE_KINDS[kind], month, "pickup_date").to_table()
    with lake.local_copy(LAKE_KINDS[kind].format(m=month)) as path:
        return pq.read_table(path)


def landed_lake(pipeline: Pipeline, kind: str, months: list[str]) -> pa.Table:
    return pa.concat_tables([landed_month(pipeline.lake, kind, m) for m in months], promote_options="permissive")


def landed_warehouse(pipeline: Pipeline, kind: str, months: list[str] | None) -> pa.Table:
    wh = pipeline.warehouse
    return wh.query(wh.select_months(WAREHOUSE_KINDS[kind], [parse_month(m) for m in months] if months else None))


def error_text(result) -> str:
    """Every message of the failed steps' errors, causes included."""
    texts = []
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        while error is not None:
            texts.append(error.message)
            error = error.cause or error.context
    return "\n".join(texts)


def same_rows(got: pa.Table, want: pa.Table, what: str) -> None:
    assert got.num_rows == want.num_rows > 0, what
    pd.testing.assert_frame_equal(canonical(got), canonical(want), check_dtype=False, obj=what)


def same_count(got: pa.Table, want: pa.Table, what: str) -> None:
    assert got.num_rows == want.num_rows > 0, what
    assert {c.lower() for c in got.column_names} >= {c.lower() for c in want.column_names}, what


def load(pipeline: Pipeline, months: list[str]) -> None:
    assert pipeline.run("zones").success
    for month in months:
        assert pipeline.run("yellow", month).success, month


# -- the embedded default -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedded(tmp_path_factory, year_mirror) -> Iterator[Pipeline]:
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path_factory.mktemp("embedded"), year_mirror, instance)
        load(pipeline, MONTHS)
        yield pipeline


@pytest.mark.parametrize("annotation", [*TYPES, ds.Dataset, duckdb.DuckDBPyRelation])
@pytest.mark.parametrize("kind", sorted(LAKE_KINDS))
def test_lake_assets_reach_user_assets_as_annotated_one_month_a_year_and_every_month(embedded, kind, annotation):
    tag = f"{kind}_{annotation.__name__}"
    monthly = probe(f"m_{tag}", kind, annotation, partitions=dg.MonthlyPartitionsDefinition(start_date="2023-01-01"))
    yearly = probe(f"y_{tag}", kind, annotation, partitions=dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 1 1 *", fmt="%Y", start="2023"))
    every = probe(f"a_{tag}", kind, annotation)
    defs = with_assets(embedded, [monthly, yearly, every])
    assert materialize(defs, embedded, monthly.key, "2023-05-01").success
    same_rows(received[f"m_{tag}"], landed_lake(embedded, kind, ["2023-05"]), f"{tag} one month")
    # DuckDB's names are case-insensitive: the raw files' `airport_fee` (2023-01) and `Airport_fee`
    # (from 2023-02) come as two columns, the second renamed (docs/extending.md says so).
    compare = same_rows if not (kind == "raw_file" and annotation is duckdb.DuckDBPyRelation) else same_count
    assert materialize(defs, embedded, yearly.key, "2023").success
    compare(received[f"y_{tag}"], landed_lake(embedded, kind, MONTHS), f"{tag} a year")
    assert materialize(defs, embedded, every.key).success
    compare(received[f"a_{tag}"], landed_lake(embedded, kind, MONTHS), f"{tag} every month")


@pytest.mark.parametrize("annotation", [*TYPES, WarehouseTable, duckdb.DuckDBPyRelation])
@pytest.mark.parametrize("kind", sorted(WAREHOUSE_KINDS))
def test_warehouse_tables_reach_user_assets_as_annotated(embedded, kind, annotation):
    tag = f"{kind}_{annotation.__name__}"
    monthly = probe(f"m_{tag}", kind, annotation, partitions=dg.MonthlyPartitionsDefinition(start_date="2023-01-01"))
    quarter = dg.TimeWindowPartitionMapping(start_offset=-2)  # this month and the two before
    trailing = probe(f"q_{tag}", kind, annotation, partitions=dg.MonthlyPartitionsDefinition(start_date="2023-03-01"), mapping=quarter)
    every = probe(f"a_{tag}", kind, annotation)
    defs = with_assets(embedded, [monthly, trailing, every])
    assert materialize(defs, embedded, monthly.key, "2023-07-01").success
    same_rows(received[f"m_{tag}"], landed_warehouse(embedded, kind, ["2023-07"]), f"{tag} one month")
    assert materialize(defs, embedded, trailing.key, "2023-09-01").success
    same_rows(received[f"q_{tag}"], landed_warehouse(embedded, kind, ["2023-07", "2023-08", "2023-09"]), f"{tag} three months")
    assert materialize(defs, embedded, every.key).success
    same_rows(received[f"a_{tag}"], landed_warehouse(embedded, kind, None), f"{tag} every month")


def test_zones_reach_user_assets_from_the_lake_and_the_warehouse(embedded):
    def zones_probe(name, key, annotation):
        def record(data):
            received[name] = as_arrow(data)

        record.__annotations__ = {"data": annotation, "return": None}
        return dg.asset(name=name, ins={"data": dg.AssetIn(key)}, group_name="probes")(record)

    from_lake = zones_probe("zones_csv", "taxi_zone_lookup", pd.DataFrame)
    from_warehouse = zones_probe("zones_table", "taxi_zones", pa.Table)
    defs = with_assets(embedded, [from_lake, from_warehouse])
    assert materialize(defs, embedded, from_lake.key).success and materialize(defs, embedded, from_warehouse.key).success
    assert received["zones_csv"].num_rows == received["zones_table"].num_rows == 265
    same_rows(received["zones_table"], embedded.warehouse.query(f"SELECT * FROM {embedded.warehouse.table_ref('taxi_zones')}"), "zones")


def test_the_cleaned_trips_reach_user_assets_with_their_pickup_date(embedded):
    monthly = probe("m_by_date", "trips_cleaned", pa.Table, partitions=dg.MonthlyPartitionsDefinition(start_date="2023-01-01"))
    defs = with_assets(embedded, [monthly])
    assert materialize(defs, embedded, monthly.key, "2023-02-01").success
    got = received["m_by_date"]
    manifest = embedded.lake.read_manifest("trips/yellow", "2023-02")
    assert got.num_rows == manifest.rows == embedded.warehouse.count("yellow_trips", dt.date(2023, 2, 1)) > 0
    assert set(got.column_names) == set(SERVICES["yellow"].schema.names) | {"pickup_date"}
    canonical = SERVICES["yellow"].schema  # the types as declared: text as strings, though written from dictionaries
    assert {n: got.schema.field(n).type for n in canonical.names} == dict(zip(canonical.names, canonical.types))
    assert all(e.path.startswith("pickup_date=2023-02-") for e in manifest.files)
    dates = pa.compute.cast(got.column("pickup_datetime"), pa.date32())
    assert dates.equals(got.column("pickup_date"))


def test_a_users_lake_asset_feeds_the_next_one(embedded):
    months = dg.MonthlyPartitionsDefinition(start_date="2023-01-01")

    @dg.asset(io_manager_key="lake_io_manager", partitions_def=months, group_name="probes")
    def mine(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"partition": [context.partition_key], "n": [1]})

    @dg.asset(io_manager_key="lake_io_manager", partitions_def=months, group_name="probes")
    def handle_of_mine(mine) -> None:  # no annotation: the platform's handle on the stored file
        received["handle_of_mine"] = mine.parquet().read()

    @dg.asset(io_manager_key="lake_io_manager", group_name="probes")
    def all_of_mine(mine: pa.Table) -> None:
        received["all_of_mine"] = mine

    defs = with_assets(embedded, [mine, handle_of_mine, all_of_mine])
    for month in ("2023-01-01", "2023-02-01"):
        assert materialize(defs, embedded, mine.key, month).success
    assert embedded.lake.exists("assets/mine/2023-02.parquet")
    assert materialize(defs, embedded, handle_of_mine.key, "2023-02-01").success
    assert received["handle_of_mine"].column("partition").to_pylist() == ["2023-02-01"]
    assert materialize(defs, embedded, all_of_mine.key).success
    assert sorted(received["all_of_mine"].column("partition").to_pylist()) == ["2023-01-01", "2023-02-01"]


def test_an_annotation_we_cannot_serve_names_the_ones_we_can(embedded):
    bad = probe("bad_dict", "trips_table", dict, partitions=dg.MonthlyPartitionsDefinition(start_date="2023-01-01"))
    bad_lake = probe("bad_list", "trips_cleaned", list, partitions=dg.MonthlyPartitionsDefinition(start_date="2023-01-01"))
    defs = with_assets(embedded, [bad, bad_lake])
    result = materialize(defs, embedded, bad.key, "2023-01-01", raise_on_error=False)
    assert not result.success
    message = error_text(result)
    assert "cannot be loaded as dict" in message
    for name in ("pandas.DataFrame", "pyarrow.Table", "pyarrow.RecordBatchReader", "WarehouseTable", "duckdb.DuckDBPyRelation"):
        assert name in message, name
    result = materialize(defs, embedded, bad_lake.key, "2023-01-01", raise_on_error=False)
    message = error_text(result)
    assert "cannot be loaded as list" in message.lower() and "pyarrow.dataset.Dataset" in message


def test_the_example_assets_run_on_the_embedded_default(embedded):
    defs = with_assets(embedded, USER_ASSETS)
    wh = embedded.warehouse
    # a monthly pandas asset on trips_table: its month in the warehouse, with source_month added
    assert materialize(defs, embedded, ["yellow", "tip_share_by_zone"], "2023-04").success
    share = wh.read_month("yellow_tip_share_by_zone", dt.date(2023, 4, 1)).to_pandas()
    trips = wh.read_month("yellow_trips", dt.date(2023, 4, 1)).to_pandas()
    card = trips[trips["payment_type"] == 1]
    assert share["trips"].sum() == len(card) > 0
    assert share["tips"].sum() == pytest.approx(card["tip_amount"].sum())
    # a yearly Arrow asset over the 12 cleaned months, in the lake
    assert materialize(defs, embedded, ["yellow", "fares_by_month_of_year"], "2023").success
    year = pq.read_table(embedded.lake.local_path("assets/yellow/fares_by_month_of_year/2023.parquet"))
    assert year.column("month").to_pylist() == [parse_month(m) for m in MONTHS]
    assert year.column("trips").to_pylist() == [embedded.lake.read_manifest("trips/yellow", m).rows for m in MONTHS]
    # an unpartitioned summary over every month of the mart
    assert materialize(defs, embedded, ["yellow", "trips_per_month"]).success
    per_month = wh.query(f"SELECT * FROM {wh.table_ref('yellow_trips_per_month')} ORDER BY source_month").to_pylist()
    assert [r["trips"] for r in per_month] == [wh.count("yellow_trips", parse_month(m)) for m in MONTHS]
    # SQL pushed down into the warehouse, one month replaced
    assert materialize(defs, embedded, ["yellow", "airport_pickups"], "2023-06").success
    airport = wh.query(f"SELECT SUM(trips) AS n FROM {wh.table_ref('yellow_airport_pickups')}").column("n")[0].as_py()
    direct = wh.query(
        f"SELECT COUNT(*) AS n FROM {wh.table_ref('yellow_trips')} WHERE source_month = DATE '2023-06-01' "
        "AND pickup_location_id IN (1, 132, 138)"
    ).column("n")[0].as_py()
    assert airport == direct


KILLED_OUTPUT = textwrap.dedent(
    """
    import sys, time
    import dagster as dg, pyarrow as pa
    from taxi_assets.defs.io_managers import LakeIOManager, WarehouseIOManager
    from taxi_assets.defs.resources import DuckDBWarehouseResource, LakeResource

    def batches():
        for i in range(1_000):
            yield pa.record_batch({"n": pa.array(range(i * 1000, (i + 1) * 1000), pa.int64())})
            if i == 5:
                print("writing", flush=True)
            time.sleep(0.02)

    @dg.asset(io_manager_key=sys.argv[3], partitions_def=dg.MonthlyPartitionsDefinition(start_date="2023-01-01"))
    def user_rows() -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(pa.schema([("n", pa.int64())]), batches())

    lake = LakeResource(uri=sys.argv[1])
    warehouse = DuckDBWarehouseResource(path=sys.argv[2])
    dg.materialize([user_rows], partition_key="2023-01-01", resources={
        "lake_io_manager": LakeIOManager(lake=lake), "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse)})
    """
)


@pytest.mark.parametrize("store", ["lake_io_manager", "warehouse_io_manager"])
def test_a_users_output_killed_mid_write_leaves_the_old_month(tmp_path: Path, store: str):
    from taxi_assets.defs.io_managers import LakeIOManager, WarehouseIOManager
    from taxi_assets.defs.resources import DuckDBWarehouseResource, LakeResource

    lake, duck = LakeResource(uri=str(tmp_path / "lake")), DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    resources = {"lake_io_manager": LakeIOManager(lake=lake), "warehouse_io_manager": WarehouseIOManager(warehouse=duck)}

    @dg.asset(name="user_rows", io_manager_key=store, partitions_def=dg.MonthlyPartitionsDefinition(start_date="2023-01-01"))
    def old() -> pd.DataFrame:
        return pd.DataFrame({"n": [1, 2, 3]})

    assert dg.materialize([old], partition_key="2023-01-01", resources=resources).success

    def stored() -> list[int]:
        if store == "lake_io_manager":
            return sorted(pq.read_table(tmp_path / "lake/assets/user_rows/2023-01.parquet").column("n").to_pylist())
        return sorted(duck.backend.read_month("user_rows", dt.date(2023, 1, 1)).column("n").to_pylist())

    assert stored() == [1, 2, 3]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_OUTPUT, str(tmp_path / "lake"), str(tmp_path / "w.duckdb"), store],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert stored() == [1, 2, 3]  # the old month, whole
    assert dg.materialize([old], partition_key="2023-01-01", resources=resources).success  # and the next write lands
    assert stored() == [1, 2, 3]


# -- Postgres, and GCS + BigQuery ---------------------------------------------------------------
def exercise_warehouse(pipeline: Pipeline, months: list[str]) -> None:
    load(pipeline, months)
    probes = []
    for kind in ("trips_table", "daily_zone_mart"):
        for annotation in (*TYPES, WarehouseTable):
            tag = f"{kind}_{annotation.__name__}"
            probes += [
                probe(f"m_{tag}", kind, annotation, partitions=dg.MonthlyPartitionsDefinition(start_date="2023-01-01")),
                probe(f"a_{tag}", kind, annotation),
            ]
    defs = with_assets(pipeline, probes + USER_ASSETS)
    for kind in ("trips_table", "daily_zone_mart"):
        for annotation in (*TYPES, WarehouseTable):
            tag = f"{kind}_{annotation.__name__}"
            assert materialize(defs, pipeline, [f"m_{tag}"], f"{months[-1]}-01").success
            same_rows(received[f"m_{tag}"], landed_warehouse(pipeline, kind, [months[-1]]), f"{tag} one month")
            assert materialize(defs, pipeline, [f"a_{tag}"]).success
            same_rows(received[f"a_{tag}"], landed_warehouse(pipeline, kind, None), f"{tag} every month")
    wh = pipeline.warehouse
    for key, partition in ((["yellow", "tip_share_by_zone"], months[-1]), (["yellow", "trips_per_month"], None),
                           (["yellow", "airport_pickups"], months[-1])):
        assert materialize(defs, pipeline, key, partition).success, key
    assert [r["trips"] for r in wh.query(f"SELECT * FROM {wh.table_ref('yellow_trips_per_month')} ORDER BY source_month").to_pylist()] == [
        wh.count("yellow_trips", parse_month(m)) for m in months
    ]
    airport = wh.query(f"SELECT SUM(trips) AS n FROM {wh.table_ref('yellow_airport_pickups')}").column("n")[0].as_py()
    direct = wh.query(
        f"SELECT COUNT(*) AS n FROM {wh.table_ref('yellow_trips')} WHERE source_month = DATE '{months[-1]}-01' "
        "AND pickup_location_id IN (1, 132, 138)"
    ).column("n")[0].as_py()
    assert int(airport) == int(direct) > 0


def sql_through(resource_key: str, resource_type: type, run) -> dg.AssetsDefinition:
    """A user's asset that asks for a client resource by name (and type) and runs its own SQL with it."""

    def via(**resources) -> None:
        received[f"sql_via_{resource_key}"] = run(resources[resource_key])

    via.__signature__ = inspect.Signature(
        [inspect.Parameter(resource_key, inspect.Parameter.KEYWORD_ONLY, annotation=resource_type)], return_annotation=None
    )
    via.__annotations__ = {resource_key: resource_type, "return": None}
    return dg.asset(name=f"sql_via_{resource_key}", group_name="probes")(via)


def test_user_sql_through_the_duckdb_resource(embedded):
    def count(duck):
        with duck.get_connection() as con:
            return con.execute("SELECT COUNT(*) FROM ny_taxi.yellow_trips").fetchone()[0]

    asset = sql_through("duckdb", DuckDBResource, count)
    assert materialize(with_assets(embedded, [asset]), embedded, asset.key).success
    assert received["sql_via_duckdb"] == embedded.warehouse.count("yellow_trips") > 0


def test_user_assets_on_postgres(tmp_path, year_mirror, postgres_url, pg_schema, monkeypatch):
    monkeypatch.setenv("TAXI_POSTGRES_URL", postgres_url)
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(tmp_path, year_mirror, instance, TAXI_WAREHOUSE="postgres", TAXI_WAREHOUSE_SCHEMA=pg_schema)
        exercise_warehouse(pipeline, MONTHS[:2])

        def count(postgres):
            with postgres.get_connection() as conn:
                return conn.execute(f'SELECT COUNT(*) FROM "{pg_schema}".yellow_trips').fetchone()[0]

        asset = sql_through("postgres", PostgresResource, count)
        assert materialize(with_assets(pipeline, [asset]), pipeline, asset.key).success
        assert received["sql_via_postgres"] == pipeline.warehouse.count("yellow_trips") > 0


def test_user_assets_on_gcs_and_bigquery(tmp_path, year_mirror, gcs_emulator, bigquery_emulator):
    bucket, dataset = gcs_emulator.new_bucket(), bigquery_emulator.new_dataset_name()
    with dg.instance_for_test() as instance:
        pipeline = make_pipeline(
            tmp_path, year_mirror, instance, TAXI_LAKE_URI=f"gs://{bucket}/lake", TAXI_WAREHOUSE="bigquery",
            TAXI_BQ_PROJECT=bigquery_emulator.project, TAXI_BQ_DATASET=dataset,
        )
        exercise_warehouse(pipeline, MONTHS[:2])
        # and the lake on GCS hands a user's asset each lake asset, in every type, one month and every month
        lake = pipeline.lake
        for kind in sorted(LAKE_KINDS):
            landed = landed_month(lake, kind, "2023-02")
            both = pa.concat_tables([landed_month(lake, kind, "2023-01"), landed], promote_options="permissive")
            for annotation in (*TYPES, ds.Dataset, duckdb.DuckDBPyRelation):
                tag = f"gcs_{kind}_{annotation.__name__}"
                monthly = probe(f"m_{tag}", kind, annotation, partitions=dg.MonthlyPartitionsDefinition(start_date="2023-01-01"))
                every = probe(f"a_{tag}", kind, annotation)
                defs = with_assets(pipeline, [monthly, every])
                assert materialize(defs, pipeline, monthly.key, "2023-02-01").success
                same_rows(received[f"m_{tag}"], landed, f"{tag} one month")
                assert materialize(defs, pipeline, every.key).success
                compare = same_count if kind == "raw_file" and annotation is duckdb.DuckDBPyRelation else same_rows
                compare(received[f"a_{tag}"], both, f"{tag} every month")
        # dagster-gcp's resources, by name, configured from the same settings (here: the emulators)

        def count(bigquery):
            with bigquery.get_client() as client:
                return list(client.query(f"SELECT COUNT(*) AS n FROM `{bigquery.project}.{dataset}.yellow_trips`").result())[0]["n"]

        def blobs(gcs):
            return sorted(b.name for b in gcs.get_client().list_blobs(bucket, prefix="lake/trips/yellow/_manifests/"))

        via_bq, via_gcs = sql_through("bigquery", BigQueryResource, count), sql_through("gcs", GCSResource, blobs)
        defs = with_assets(pipeline, [via_bq, via_gcs])
        assert materialize(defs, pipeline, via_bq.key).success and materialize(defs, pipeline, via_gcs.key).success
        assert received["sql_via_bigquery"] == pipeline.warehouse.count("yellow_trips") > 0
        assert received["sql_via_gcs"] == [f"lake/trips/yellow/_manifests/{m}.json" for m in MONTHS[:2]]
