"""The BigQuery warehouse against bqemulator (create, load, replace a month, read back, marts in SQL),
and contract tests of the exact jobs sent to real BigQuery where the emulator falls short
(partition decorators)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_assets.defs.tables import mart_spec, trips_spec

from taxi_assets.tlc.marts import ZONES_TABLE, daily_zone_mart_sql, mart_table, trips_table
from taxi_assets.tlc.services import SOURCE_MONTH, YELLOW
from taxi_assets.settings import Settings
from taxi_assets.storage.warehouse.base import TableSource, TableSpec, WarehouseError
from taxi_assets.storage.warehouse.bigquery import BigQueryWarehouse
from taxi_assets.storage.warehouse.duckdb import DuckDBWarehouse

JAN, FEB = dt.date(2024, 1, 1), dt.date(2024, 2, 1)
TRIPS = trips_table(YELLOW)
TRIPS_SPEC = trips_spec(YELLOW)


def yellow_rows(month: dt.date, n: int, seed: int, source_month: dt.date | None = None) -> pa.Table:
    """n yellow trips of `month` in the canonical schema; the first pickup lies in the month before
    (as in real TLC files), so only source_month says which file a row came from."""
    rows = []
    for i in range(n):
        k = seed * 1000 + i
        pickup = dt.datetime.combine(month, dt.time()) + dt.timedelta(minutes=37 * i + seed)
        if i == 0:
            pickup -= dt.timedelta(days=2)
        row = {f.name: None for f in YELLOW.schema}
        row.update(
            vendor_id=1 + k % 2,
            pickup_datetime=pickup,
            dropoff_datetime=pickup + dt.timedelta(seconds=300 + (k * 7) % 1500),
            passenger_count=1 + k % 4,
            trip_distance=round(0.3 + (k % 97) / 10, 2),
            ratecode_id=1,
            store_and_fwd_flag="N",
            pickup_location_id=1 + k % 7,
            dropoff_location_id=1 + (k * 3) % 11,
            payment_type=1 + k % 2,
            fare_amount=round(3 + (k % 53) * 0.7, 2),
            tip_amount=round((k % 11) * 0.35, 2),
            total_amount=round(5 + (k % 53) * 0.9, 2),
            **{SOURCE_MONTH: source_month or month},
        )
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=YELLOW.schema)


def zones() -> pa.Table:
    return pa.table(
        {
            "location_id": pa.array(range(1, 12), pa.int32()),
            "borough": ["Manhattan", "Queens", "Brooklyn", "Bronx", "EWR", "Unknown", "Queens", "Manhattan", "Bronx", "Brooklyn", "N/A"],
            "zone": [f"zone {i}" for i in range(1, 11)] + ["NA"],
            "service_zone": ["Yellow Zone"] * 11,
        }
    )


def normalized(table: pa.Table) -> list[dict]:
    """Rows as comparable dicts: order-independent, ints as ints, datetimes naive."""
    out = []
    for row in table.to_pylist():
        out.append({k: (v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v) for k, v in row.items()})
    return sorted(out, key=lambda r: json.dumps(r, default=str, sort_keys=True))


def checksum(table: pa.Table) -> str:
    return hashlib.sha256(json.dumps(normalized(table), default=str, sort_keys=True).encode()).hexdigest()


@pytest.fixture
def warehouse(bigquery_emulator) -> BigQueryWarehouse:
    return BigQueryWarehouse(
        project=bigquery_emulator.project, schema_name=bigquery_emulator.new_dataset_name(), location="US", emulator_host=bigquery_emulator.url
    )


def tables_in(warehouse: BigQueryWarehouse) -> set[str]:
    return {t.table_id for t in warehouse.client.list_tables(f"{warehouse.project}.{warehouse.schema_name}")}


# -- against the emulator --------------------------------------------------------------------
def test_create_load_and_read_back(warehouse: BigQueryWarehouse):
    assert warehouse.mode == "merge"  # the emulator has no partition decorators
    jan = yellow_rows(JAN, 40, seed=1)
    source = TableSource.from_table(jan)  # streamed batches: written to a parquet file, loaded by a load job
    assert warehouse.replace_month(TRIPS_SPEC, JAN, source) == 40

    table = warehouse.client.get_table(warehouse.table_id(TRIPS))
    assert [f.name for f in table.schema] == YELLOW.schema.names  # our names, not uppercased
    types = {f.name: f.field_type for f in table.schema}
    assert types["pickup_datetime"] == "DATETIME" and types[SOURCE_MONTH] == "DATE"
    assert types["pickup_location_id"] in ("INT64", "INTEGER") and types["fare_amount"] in ("FLOAT64", "FLOAT")
    assert table.time_partitioning.type_ == "MONTH" and table.time_partitioning.field == SOURCE_MONTH
    assert table.clustering_fields == ["pickup_location_id", "dropoff_location_id"]

    back = warehouse.read_month(TRIPS, JAN)
    assert back.num_rows == 40
    assert normalized(back) == normalized(jan)
    assert tables_in(warehouse) == {TRIPS}  # the staging table is gone


def test_replace_month_is_exact_and_idempotent(warehouse: BigQueryWarehouse, tmp_path):
    warehouse.replace_month(TRIPS_SPEC, JAN, TableSource.from_table(yellow_rows(JAN, 50, seed=1)))
    feb = yellow_rows(FEB, 30, seed=2)
    warehouse.replace_month(TRIPS_SPEC, FEB, TableSource.from_table(feb))

    new_jan = yellow_rows(JAN, 20, seed=3)
    path = tmp_path / "jan.parquet"
    pq.write_table(new_jan, path)
    source = TableSource.from_table(new_jan)
    source.local_parquet = [path]  # the local-parquet path: the file itself is uploaded
    assert warehouse.replace_month(TRIPS_SPEC, JAN, source) == 20
    first = warehouse.read_month(TRIPS, JAN)
    assert normalized(first) == normalized(new_jan)  # none of the 50 old rows survive, the Dec pickup neither
    assert normalized(warehouse.read_month(TRIPS, FEB)) == normalized(feb)

    assert warehouse.replace_month(TRIPS_SPEC, JAN, source) == 20  # re-run: nothing changes
    assert checksum(warehouse.read_month(TRIPS, JAN)) == checksum(first)
    assert warehouse.count(TRIPS) == 50
    assert tables_in(warehouse) == {TRIPS}


def test_rows_of_another_month_are_refused_and_nothing_changes(warehouse: BigQueryWarehouse):
    jan = yellow_rows(JAN, 10, seed=1)
    warehouse.replace_month(TRIPS_SPEC, JAN, TableSource.from_table(jan))
    mixed = pa.concat_tables([yellow_rows(JAN, 5, seed=4), yellow_rows(FEB, 1, seed=5)])
    with pytest.raises(WarehouseError, match="do not carry source_month"):
        warehouse.replace_month(TRIPS_SPEC, JAN, TableSource.from_table(mixed))
    assert normalized(warehouse.read_month(TRIPS, JAN)) == normalized(jan)
    assert warehouse.count(TRIPS) == 10
    assert tables_in(warehouse) == {TRIPS}


def test_loads_straight_from_gcs(warehouse: BigQueryWarehouse, gcs_emulator):
    """With the lake on GCS the load job names the gs:// object; no row goes through Python."""
    import pyarrow.fs as pafs

    from taxi_assets.storage import gcp

    bucket = gcs_emulator.new_bucket()
    fs, _ = gcp.gcs_filesystem(emulator_host=gcs_emulator.url)
    feb = yellow_rows(FEB, 25, seed=6)
    with fs.open_output_stream(f"{bucket}/lake/cleaned/yellow/yellow_2024-02.parquet") as out:
        pq.write_table(feb, out)
    assert isinstance(fs, pafs.GcsFileSystem)

    def refuse():
        raise AssertionError("rows were read through Python")

    source = TableSource(schema=feb.schema, open=refuse, uris=[f"gs://{bucket}/lake/cleaned/yellow/yellow_2024-02.parquet"])
    assert warehouse.replace_month(TRIPS_SPEC, FEB, source) == 25
    assert normalized(warehouse.read_month(TRIPS, FEB)) == normalized(feb)


def test_marts_are_computed_in_sql_and_match_duckdb(warehouse: BigQueryWarehouse, tmp_path):
    duck = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    jan, feb = yellow_rows(JAN, 60, seed=7), yellow_rows(FEB, 45, seed=8)
    results = {}
    for wh in (warehouse, duck):
        assert wh.replace_table(ZONES_TABLE, TableSource.from_table(zones())) == 11
        wh.replace_month(TRIPS_SPEC, JAN, TableSource.from_table(jan))
        wh.replace_month(TRIPS_SPEC, FEB, TableSource.from_table(feb))
        for month in (JAN, FEB):
            wh.replace_month_from_query(mart_spec(YELLOW), month, daily_zone_mart_sql(YELLOW, wh, month))
        wh.replace_month_from_query(mart_spec(YELLOW), JAN, daily_zone_mart_sql(YELLOW, wh, JAN))  # re-run
        results[type(wh).__name__] = normalized(wh.query(f"SELECT * FROM {wh.table_ref(mart_table(YELLOW))}"))
    bq, dk = results["BigQueryWarehouse"], results["DuckDBWarehouse"]
    assert len(bq) == len(dk) > 20
    assert sum(r["trips"] for r in bq) == 105
    for a, b in zip(bq, dk):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float) or isinstance(b[key], float):
                assert math.isclose(a[key], b[key], abs_tol=0.011), (key, a, b)
            else:
                assert a[key] == b[key], (key, a, b)
    mart = warehouse.client.get_table(warehouse.table_id(mart_table(YELLOW)))
    assert mart.time_partitioning.field == SOURCE_MONTH and mart.clustering_fields == ["pickup_location_id"]


def test_bad_dataset_is_refused_at_definitions_load():
    from taxi_assets.defs.resources import build_warehouse

    env = {"TAXI_WAREHOUSE": "bigquery", "TAXI_BQ_PROJECT": "test-project", "TAXI_BQ_DATASET": "ny-taxi"}
    with pytest.raises(ValueError, match="invalid BigQuery dataset"):
        build_warehouse(Settings.from_env(env))
    env.update(TAXI_BQ_DATASET="ny_taxi", TAXI_BQ_PROJECT="Bad Project")
    with pytest.raises(ValueError, match="project id"):
        build_warehouse(Settings.from_env(env))
    env.update(TAXI_BQ_PROJECT="test-project", TAXI_BQ_LOCATION="EU")
    wh = build_warehouse(Settings.from_env(env))
    assert (wh.backend.project, wh.backend.schema_name, wh.backend.location) == ("test-project", "ny_taxi", "EU")


# -- contract: the exact jobs real BigQuery gets ---------------------------------------------
class FakeJob:
    def __init__(self, output_rows: int = 0, rows: list | None = None):
        self.output_rows = output_rows
        self._rows = rows or []

    def result(self, timeout=None):
        return self

    def __iter__(self):
        return iter(self._rows)

    def to_arrow(self, create_bqstorage_client=True):
        return pa.Table.from_pylist(self._rows) if self._rows else pa.table({"n": [0]})


class RecordingClient:
    """Records every call; anything not listed (insert_rows, insert_rows_json, ...) fails the test."""

    def __init__(self, existing: dict | None = None):
        self.calls: list[tuple[str, object]] = []
        self.tables = dict(existing or {})

    def get_dataset(self, ref):
        self.calls.append(("get_dataset", ref))
        return object()

    def get_table(self, ref):
        from google.api_core.exceptions import NotFound

        self.calls.append(("get_table", ref))
        if ref not in self.tables:
            raise NotFound(ref)
        return self.tables[ref]

    def create_table(self, table, exists_ok=False):
        self.calls.append(("create_table", table.to_api_repr()))
        self.tables[f"{table.project}.{table.dataset_id}.{table.table_id}"] = table
        return table

    def update_table(self, table, fields):
        self.calls.append(("update_table", fields))
        return table

    def load_table_from_file(self, fh, destination, job_config=None, location=None):
        self.calls.append(("load_table_from_file", destination, job_config.to_api_repr(), location, fh.read(4)))
        return FakeJob(output_rows=7)

    def load_table_from_uri(self, uris, destination, job_config=None, location=None):
        self.calls.append(("load_table_from_uri", destination, job_config.to_api_repr(), location, list(uris)))
        return FakeJob(output_rows=7)

    def query(self, sql, job_config=None, location=None):
        self.calls.append(("query", sql, job_config.to_api_repr() if job_config else None, location))
        return FakeJob(rows=[{"n": 7}])

    def delete_table(self, ref, not_found_ok=False):
        self.calls.append(("delete_table", ref))

    def __getattr__(self, name):
        raise AssertionError(f"the warehouse called {name}, which it must never do")


def partition_load_warehouse(client: RecordingClient, dataset: str = "ny_taxi") -> BigQueryWarehouse:
    wh = BigQueryWarehouse(project="my-project", schema_name=dataset, location="EU", replace_mode="partition_load")
    return wh.with_client(client)


YELLOW_SCHEMA_API = [{"name": f.name, "type": t, "mode": "NULLABLE"} for f, t in zip(YELLOW.schema, [
    "INT64", "DATETIME", "DATETIME", "INT64", "FLOAT64", "INT64", "STRING", "INT64", "INT64", "INT64",
    "FLOAT64", "FLOAT64", "FLOAT64", "FLOAT64", "FLOAT64", "FLOAT64", "FLOAT64", "FLOAT64", "FLOAT64", "FLOAT64", "DATE",
])]


def test_contract_partition_load_from_gcs(monkeypatch):
    monkeypatch.delenv("BIGQUERY_EMULATOR_HOST", raising=False)
    client = RecordingClient()
    wh = partition_load_warehouse(client)
    assert wh.mode == "partition_load"
    source = TableSource(schema=YELLOW.schema, open=lambda: pytest.fail("rows read"), uris=["gs://b/lake/cleaned/yellow/yellow_2024-01.parquet"])
    assert wh.replace_month(TRIPS_SPEC, JAN, source) == 7

    created = [c[1] for c in client.calls if c[0] == "create_table"]
    assert len(created) == 1
    table = created[0]
    assert table["tableReference"] == {"projectId": "my-project", "datasetId": "ny_taxi", "tableId": "yellow_trips"}
    assert table["timePartitioning"] == {"type": "MONTH", "field": "source_month"}
    assert table["clustering"] == {"fields": ["pickup_location_id", "dropoff_location_id"]}
    assert [{k: f[k] for k in ("name", "type", "mode")} for f in table["schema"]["fields"]] == YELLOW_SCHEMA_API

    loads = [c for c in client.calls if c[0].startswith("load_")]
    assert len(loads) == 1
    kind, destination, config, location, uris = loads[0]
    assert kind == "load_table_from_uri" and uris == ["gs://b/lake/cleaned/yellow/yellow_2024-01.parquet"]
    assert destination == "my-project.ny_taxi.yellow_trips$202401"  # the partition decorator
    assert location == "EU"
    load = config["load"]
    assert load["sourceFormat"] == "PARQUET"
    assert load["writeDisposition"] == "WRITE_TRUNCATE"
    assert load["createDisposition"] == "CREATE_NEVER"
    assert [{k: f[k] for k in ("name", "type", "mode")} for f in load["schema"]["fields"]] == YELLOW_SCHEMA_API
    assert not any(c[0] == "query" and "MERGE" in c[1] for c in client.calls)  # one job, no DML


def test_contract_partition_load_from_local_file_and_mart_query(monkeypatch, tmp_path):
    monkeypatch.delenv("BIGQUERY_EMULATOR_HOST", raising=False)
    client = RecordingClient()
    wh = partition_load_warehouse(client)
    wh.replace_month(TRIPS_SPEC, FEB, TableSource.from_table(yellow_rows(FEB, 5, seed=1)))
    load = next(c for c in client.calls if c[0] == "load_table_from_file")
    assert load[1] == "my-project.ny_taxi.yellow_trips$202402" and load[2]["load"]["writeDisposition"] == "WRITE_TRUNCATE"
    assert load[4] == b"PAR1"  # a parquet file, streamed to disk from the batches

    # the mart: the table is created from the SELECT's schema, then one query job whose
    # destination is the month's partition, truncated
    from google.cloud import bigquery

    mart = bigquery.Table("my-project.ny_taxi.yellow_daily_zone_mart", schema=[bigquery.SchemaField(SOURCE_MONTH, "DATE")])
    mart.time_partitioning = bigquery.TimePartitioning(type_="MONTH", field=SOURCE_MONTH)
    client.tables["my-project.ny_taxi.yellow_daily_zone_mart"] = mart
    sql = daily_zone_mart_sql(YELLOW, wh, FEB)
    assert "DATETIME_DIFF(t.dropoff_datetime, t.pickup_datetime, SECOND)" in sql and "`my-project.ny_taxi.yellow_trips`" in sql
    wh.replace_month_from_query(mart_spec(YELLOW), FEB, sql)
    job = next(c for c in client.calls if c[0] == "query" and c[1] == sql)
    assert job[2]["query"]["destinationTable"] == {"projectId": "my-project", "datasetId": "ny_taxi", "tableId": "yellow_daily_zone_mart$202402"}
    assert job[2]["query"]["writeDisposition"] == "WRITE_TRUNCATE"
    assert job[2]["query"]["createDisposition"] == "CREATE_NEVER"


def test_contract_partition_load_refuses_a_table_not_partitioned_by_source_month(monkeypatch):
    from google.cloud import bigquery

    monkeypatch.delenv("BIGQUERY_EMULATOR_HOST", raising=False)
    legacy = bigquery.Table("my-project.ny_taxi.yellow_trips", schema=[bigquery.SchemaField("pickup_datetime", "TIMESTAMP")])
    legacy.time_partitioning = bigquery.TimePartitioning(type_="DAY", field="pickup_datetime")
    client = RecordingClient({"my-project.ny_taxi.yellow_trips": legacy})
    with pytest.raises(WarehouseError, match="not partitioned by MONTH on source_month"):
        partition_load_warehouse(client).replace_month(TRIPS_SPEC, JAN, TableSource.from_table(yellow_rows(JAN, 3, seed=1)))
    assert not any(c[0].startswith("load_") for c in client.calls)


@pytest.mark.parametrize(
    ("dataset", "table"),
    [("ny-taxi", TRIPS), ("ny taxi", TRIPS), ("ny_taxi`; DROP", TRIPS), ("ny_taxi", "yellow-trips"), ("ny_taxi", "t$202401"), ("ny_taxi", "a.b")],
)
def test_bad_names_are_refused_before_any_call(dataset, table):
    client = RecordingClient()
    wh = partition_load_warehouse(client, dataset)
    with pytest.raises(ValueError, match="invalid BigQuery"):
        wh.replace_month(table, JAN, TableSource.from_table(yellow_rows(JAN, 2, seed=1)))
    with pytest.raises(ValueError, match="invalid BigQuery"):
        wh.replace_month_from_query(table, JAN, "SELECT 1")
    with pytest.raises(ValueError, match="invalid BigQuery"):
        wh.replace_table(table, TableSource.from_table(zones()))
    assert client.calls == []


def test_a_key_file_is_used_and_never_shown(tmp_path, monkeypatch):
    """A service-account key file (its path reaching us through dg.EnvVar) makes the credentials;
    describe() (shown in the UI) names the kind of credentials, never the file or the key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    monkeypatch.delenv("BIGQUERY_EMULATOR_HOST", raising=False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    keyfile = tmp_path / "sa.json"
    keyfile.write_text(json.dumps({
        "type": "service_account", "project_id": "my-project", "private_key_id": "k1", "private_key": key,
        "client_email": "loader@my-project.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))
    monkeypatch.setenv("TAXI_GCP_KEYFILE", str(keyfile))
    from taxi_assets.defs.resources import build_warehouse

    wh = build_warehouse(Settings.from_env({"TAXI_WAREHOUSE": "bigquery", "TAXI_BQ_PROJECT": "my-project", "TAXI_GCP_KEYFILE": str(keyfile)}))
    assert isinstance(wh.bigquery.keyfile, dg.EnvVar) and str(keyfile) not in repr(wh)  # resolved by Dagster at run time
    resolved = BigQueryWarehouse(project="my-project", schema_name="ny_taxi", credentials_file=str(keyfile))
    client = resolved.client  # no request is made to build it
    assert client._credentials.service_account_email == "loader@my-project.iam.gserviceaccount.com"
    assert client.project == "my-project"
    shown = resolved.describe()
    assert "key file" in shown and str(keyfile) not in shown and "PRIVATE" not in shown


def test_contract_comments_retry_when_another_load_changed_the_table():
    """The schema update carries the table's ETag; a load of another month that changed the table in
    between makes BigQuery answer 412: read the table again and update that version."""
    from google.api_core.exceptions import PreconditionFailed
    from google.cloud import bigquery

    class Racing(RecordingClient):
        refused = 0

        def get_table(self, ref):
            self.calls.append(("get_table", ref))
            return bigquery.Table(ref, schema=[bigquery.SchemaField("n", "INT64"), bigquery.SchemaField("source_month", "DATE")])

        def update_table(self, table, fields):
            if not self.refused:
                self.refused += 1
                raise PreconditionFailed("etag mismatch")
            self.calls.append(("update_table", fields, [(f.name, f.description) for f in table.schema], table.description))
            return table

    client = Racing()
    spec = TableSpec("yellow_trips", description="the trips", column_descriptions=(("n", "a count"),))
    partition_load_warehouse(client).comment(spec)
    assert client.refused == 1
    assert [c[0] for c in client.calls] == ["get_table", "get_table", "update_table"]
    assert client.calls[-1][1:] == (["schema", "description"], [("n", "a count"), ("source_month", None)], "the trips")
