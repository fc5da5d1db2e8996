"""The BigQuery warehouse: tables we create ourselves, months replaced by one atomic job.

Tables
    Created by us with an explicit schema mapped from the canonical Arrow schema: column names
    exactly as in `taxi_assets.tlc.services` (never uppercased), `timestamp` without time zone ->
    DATETIME (TLC times are New York wall-clock times), `date32` -> DATE, integers -> INT64.
    Every table that carries `source_month` is natively partitioned on it, MONTH granularity,
    and clustered on `pickup_location_id, dropoff_location_id` where it has them.

Why `source_month` and not pickup time
    A TLC file holds pickups outside its month (a few per 10k, dates from 2009 to 2088). A table
    partitioned on pickup time spreads one file over many partitions, so replacing "the month"
    either misses those rows (they survive every re-run, duplicated) or deletes other files'
    rows. `source_month` is a column we own: every row of a file carries its file's month, so the
    partition `table$YYYYMM` is exactly one file's rows and replacing it is exact.

Replacing a month (two modes, same result)
    `partition_load` (default on real BigQuery): one load job, `WRITE_TRUNCATE` on the partition
    decorator `table$YYYYMM`. BigQuery swaps the partition atomically when the job succeeds;
    readers see the old month until then; a row whose `source_month` is not that month fails the
    job and changes nothing. Marts: one query job with the same decorator as destination.
    Load jobs cost nothing and move no data through Python when the parquet is in GCS.

    `merge` (used against the emulator, which has no partition decorators; also valid in
    production): load into a private staging table, refuse it if any row is of another month,
    then one MERGE statement deletes the month's old rows and inserts the new ones. One DML
    statement is atomic. Marts: one MERGE from the mart SELECT.

    `auto` picks `merge` when BIGQUERY_EMULATOR_HOST is set, `partition_load` otherwise.

Rows never go through streaming inserts: the parquet in GCS (`TableSource.uris`) is loaded
straight from the bucket; otherwise the local parquet file, or a parquet file streamed to disk
from the record batches, is uploaded by a load job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from taxi_assets.storage import gcp
from taxi_assets.storage.warehouse.base import Dialect, TableSource, TableSpec, Warehouse, WarehouseError, as_spec, sql_date_literal

#: BigQuery dataset ids: letters, digits, underscores, at most 1024 characters.
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}\Z")
#: Table names we accept: BigQuery allows more (Unicode, dashes, spaces), we allow what every
#: engine of ours can quote the same way.
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}\Z")
_LOCATION = re.compile(r"^[A-Za-z0-9-]{1,64}\Z")

REPLACE_MODES = ("auto", "partition_load", "merge")

_DIALECT = Dialect(
    # Trip times are DATETIME (no time zone): DATETIME_DIFF is BigQuery's difference for them.
    seconds_between=lambda start, end: f"DATETIME_DIFF({end}, {start}, SECOND)",
    to_date=lambda expr: f"DATE({expr})",
    round2=lambda expr: f"ROUND({expr}, 2)",
    float_type="FLOAT64",
    int_type="INT64",
)


def validate_dataset(name: str) -> str:
    if not isinstance(name, str) or not _DATASET.match(name):
        raise ValueError(f"invalid BigQuery dataset {name!r}: letters, digits and underscores only, at most 1024")
    return name


def validate_table(name: str) -> str:
    if not isinstance(name, str) or not _TABLE.match(name):
        raise ValueError(
            f"invalid BigQuery table name {name!r}: letters, digits and underscores, starting with a letter or underscore"
        )
    return name


def bq_type(arrow_type: pa.DataType) -> str:
    """The BigQuery column type for an Arrow type of our canonical schemas."""
    if pa.types.is_integer(arrow_type):
        return "INT64"
    if pa.types.is_floating(arrow_type):
        return "FLOAT64"
    if pa.types.is_boolean(arrow_type):
        return "BOOL"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "STRING"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP" if arrow_type.tz else "DATETIME"
    if pa.types.is_decimal(arrow_type):
        return "NUMERIC" if arrow_type.precision <= 38 and arrow_type.scale <= 9 else "BIGNUMERIC"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "BYTES"
    raise TypeError(f"no BigQuery column type for Arrow type {arrow_type}")


def bq_schema(schema: pa.Schema) -> list:
    from google.cloud import bigquery

    return [bigquery.SchemaField(f.name, bq_type(f.type), mode="NULLABLE") for f in schema]


@dataclass(kw_only=True)
class BigQueryWarehouse(Warehouse):
    """Tables in a BigQuery dataset (`schema_name`) of `project`, in `location`.

    `credentials_file`: a service-account key file path; without it, Application Default
    Credentials. With `emulator_host` (BIGQUERY_EMULATOR_HOST), the emulator.
    """

    project: str
    schema_name: str = "ny_taxi"
    location: str = "US"
    credentials_file: str | None = field(default=None, repr=False)
    replace_mode: str = "auto"
    job_timeout_seconds: float = 900.0
    emulator_host: str | None = None
    _client: object = field(default=None, init=False, repr=False)
    _dataset_ready: bool = field(default=False, init=False, repr=False)

    # -- configuration ---------------------------------------------------------------------
    def validate_names(self) -> None:
        """Refuse a bad project, dataset, location or mode before anything reaches BigQuery."""
        gcp.validate_project_id(self.project)
        validate_dataset(self.schema_name)
        if not _LOCATION.match(self.location or ""):
            raise ValueError(f"invalid BigQuery location {self.location!r}")
        if self.replace_mode not in REPLACE_MODES:
            raise ValueError(f"replace_mode {self.replace_mode!r}: expected one of {', '.join(REPLACE_MODES)}")

    @property
    def mode(self) -> str:
        if self.replace_mode != "auto":
            return self.replace_mode
        return "merge" if self.emulator_host else "partition_load"

    def with_client(self, client: object) -> BigQueryWarehouse:
        """Use this client (tests hand in a recording fake)."""
        self._client = client
        return self

    @property
    def client(self):
        self.validate_names()
        if self._client is None:
            self._client = gcp.bigquery_client(self.project, self.location, self.credentials_file, self.emulator_host)
        return self._client

    def table_id(self, table: str) -> str:
        self.validate_names()
        return f"{self.project}.{self.schema_name}.{validate_table(table)}"

    def table_ref(self, table: str) -> str:
        return f"`{self.table_id(table)}`"

    # -- writes ----------------------------------------------------------------------------
    def replace_month(self, table: str | TableSpec, month: dt.date, source: TableSource) -> int:
        spec = as_spec(table)
        table = spec.name
        target = self._ensure_table(spec, bq_schema(source.schema))
        schema = list(target.schema)
        if self.mode == "partition_load":
            self._check_partitioning(target, spec.month_column)
            with self._load_input(source) as load_input:
                job = self._load(load_input, f"{self.table_id(table)}${month:%Y%m}", schema, "WRITE_TRUNCATE", "CREATE_NEVER")
            return int(job.output_rows or 0)
        stage = self._staging_name(table, month)
        try:
            with self._load_input(source) as load_input:
                self._load(load_input, self.table_id(stage), schema, "WRITE_TRUNCATE", "CREATE_IF_NEEDED", expires=True)
            check = self._rows(
                f"SELECT COUNT(*) AS n, COUNTIF({spec.month_column} IS NULL OR {spec.month_column} != {sql_date_literal(month)}) AS other "
                f"FROM {self.table_ref(stage)}"
            )[0]
            source.refuse_unexpected(f"{table} {month:%Y-%m}", int(check["n"]))
            if check["other"]:
                raise WarehouseError(
                    f"{table} {month:%Y-%m}: {check['other']} of {check['n']} rows do not carry {spec.month_column} "
                    f"{month:%Y-%m}; refusing a load that would leave rows of other months behind"
                )
            self._run(self._merge_sql(spec, month, self.table_ref(stage), [f.name for f in schema]))
            return int(check["n"])
        finally:
            self.client.delete_table(self.table_id(stage), not_found_ok=True)

    def replace_table(self, table: str | TableSpec, source: TableSource) -> int:
        """One load job, WRITE_TRUNCATE on the whole (small, unpartitioned) table: atomic."""
        table = as_spec(table).name
        self.table_id(table)  # refuse a bad name before any call
        self._ensure_dataset()
        with self._load_input(source) as load_input:
            self._load(load_input, self.table_id(table), bq_schema(source.schema), "WRITE_TRUNCATE", "CREATE_IF_NEEDED")
        return int(self._rows(f"SELECT COUNT(*) AS n FROM {self.table_ref(table)}")[0]["n"])

    def replace_month_from_query(self, table: str | TableSpec, month: dt.date, select_sql: str) -> int:
        from google.cloud import bigquery

        spec = as_spec(table)
        table = spec.name
        target = self._ensure_table(spec, None, select_sql=select_sql)
        if self.mode == "partition_load":
            self._check_partitioning(target, spec.month_column)
            config = bigquery.QueryJobConfig(
                destination=f"{self.table_id(table)}${month:%Y%m}",
                write_disposition="WRITE_TRUNCATE",
                create_disposition="CREATE_NEVER",
            )
            self._run(select_sql, config)
        else:
            self._run(self._merge_sql(spec, month, f"({select_sql})", [f.name for f in target.schema]))
        return self.count(spec, month)

    # -- reads -----------------------------------------------------------------------------
    def query(self, sql: str) -> pa.Table:
        return self._run(sql).to_arrow(create_bqstorage_client=False)

    def stream(self, sql: str) -> pa.RecordBatchReader:
        """The result page by page, through the REST API's pages (memory: a page)."""
        rows = self._run(sql)
        pages = iter(rows.to_arrow_iterable(bqstorage_client=None))
        first = next(pages, None)
        if first is None:
            return rows.to_arrow(create_bqstorage_client=False).to_reader()
        return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], pages))

    def table_exists(self, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self.client.get_table(self.table_id(table))
            return True
        except NotFound:
            return False

    def comment(self, spec: TableSpec) -> None:
        """Column and table descriptions in the table's schema (a load that truncates drops them:
        they are written again after every write). The update carries the table's ETag: if another
        month's load changed the table meanwhile, read it again and retry."""
        from google.api_core.exceptions import NotFound, PreconditionFailed
        from google.cloud import bigquery

        wanted = dict(spec.column_descriptions)
        for attempt in range(3):
            try:
                table = self.client.get_table(self.table_id(spec.name))
            except NotFound:
                return
            schema = [
                bigquery.SchemaField.from_api_repr({**f.to_api_repr(), "description": wanted[f.name]})
                if f.name in wanted and f.description != wanted[f.name] else f
                for f in table.schema
            ]
            changed = []
            if schema != list(table.schema):
                table.schema = schema
                changed.append("schema")
            if spec.description and table.description != spec.description:
                table.description = spec.description
                changed.append("description")
            if not changed:
                return
            try:
                self.client.update_table(table, changed)
                return
            except PreconditionFailed:
                if attempt == 2:
                    raise

    @property
    def dialect(self) -> Dialect:
        return _DIALECT

    def describe(self) -> str:
        emulator = self.emulator_host is not None
        where = f" at emulator {self.emulator_host}" if emulator else ""
        return (
            f"BigQuery {self.project}.{self.schema_name} ({self.location}){where}; months replaced by {self.mode}; "
            f"credentials: {gcp.describe_credentials(self.credentials_file, emulator)}"
        )

    # -- helpers ---------------------------------------------------------------------------
    def _run(self, sql: str, config=None):
        job = self.client.query(sql, job_config=config, location=self.location)
        return job.result(timeout=self.job_timeout_seconds)

    def _rows(self, sql: str) -> list[dict]:
        return [dict(row.items()) for row in self._run(sql)]

    def _ensure_dataset(self) -> None:
        if self._dataset_ready:
            return
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        dataset_id = f"{self.project}.{self.schema_name}"
        try:
            self.client.get_dataset(dataset_id)
        except NotFound:
            dataset = bigquery.Dataset(dataset_id)
            dataset.location = self.location
            self.client.create_dataset(dataset, exists_ok=True)
        self._dataset_ready = True

    def _ensure_table(self, spec: TableSpec, schema: list | None, select_sql: str | None = None):
        """The table, created partitioned and clustered with an explicit schema if it is missing;
        columns a newer schema brought are added (nullable) before any load."""
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        table_id = self.table_id(spec.name)  # refuse a bad name before any call
        self._ensure_dataset()
        try:
            existing = self.client.get_table(table_id)
        except NotFound:
            existing = None
        if schema is None:
            if existing is not None:
                return existing
            # The mart's columns are whatever its SELECT yields: ask BigQuery, reading nothing.
            probe = self._run(f"SELECT * FROM ({select_sql}) AS q WHERE FALSE")
            schema = [bigquery.SchemaField(f.name, f.field_type, mode="NULLABLE") for f in probe.schema]
        if existing is None:
            names = [f.name for f in schema]
            new = bigquery.Table(table_id, schema=schema)
            if spec.month_column in names:
                new.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.MONTH, field=spec.month_column)
            cluster = [c for c in spec.cluster_columns if c in names]
            if cluster:
                new.clustering_fields = cluster
            return self.client.create_table(new, exists_ok=True)
        have = {f.name for f in existing.schema}
        added = [f for f in schema if f.name not in have]
        if added:
            existing.schema = list(existing.schema) + added
            existing = self.client.update_table(existing, ["schema"])
        return existing

    @staticmethod
    def _check_partitioning(table, month_column: str) -> None:
        tp = table.time_partitioning
        if tp is None or tp.field != month_column or tp.type_ != "MONTH":
            raise WarehouseError(
                f"{table.table_id} is not partitioned by MONTH on {month_column} ({tp}); a partition load "
                "would not replace exactly one source month. Recreate it, or use replace_mode='merge'."
            )

    def _load_config(self, schema: list, write_disposition: str, create_disposition: str):
        from google.cloud import bigquery

        return bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            schema=schema,
            write_disposition=write_disposition,
            create_disposition=create_disposition,
        )

    def _load(self, load_input: list[str] | Path, destination: str, schema: list, write: str, create: str, expires: bool = False):
        config = self._load_config(schema, write, create)
        if isinstance(load_input, list):
            job = self.client.load_table_from_uri(load_input, destination, job_config=config, location=self.location)
        else:
            with open(load_input, "rb") as fh:
                job = self.client.load_table_from_file(fh, destination, job_config=config, location=self.location)
        job.result(timeout=self.job_timeout_seconds)
        if expires:
            # A staging table a killed process could not drop removes itself.
            staged = self.client.get_table(destination)
            staged.expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
            self.client.update_table(staged, ["expires"])
        return job

    @contextlib.contextmanager
    def _load_input(self, source: TableSource) -> Iterator[list[str] | Path]:
        """gs:// URIs as they are; else a single local parquet file; else the batches streamed to one."""
        if source.uris:
            yield list(source.uris)
        elif len(source.local_parquet) == 1:
            yield Path(source.local_parquet[0])
        else:
            with tempfile.TemporaryDirectory(prefix="taxi-bq-") as tmp:
                path = Path(tmp) / "load.parquet"
                reader = source.open()
                with pq.ParquetWriter(path, reader.schema, compression="zstd") as writer:
                    for batch in reader:
                        writer.write_batch(batch)
                yield path

    def _staging_name(self, table: str, month: dt.date) -> str:
        return validate_table(f"_stage_{validate_table(table)}_{month:%Y%m}_{uuid.uuid4().hex[:8]}"[:1024])

    def _merge_sql(self, spec: TableSpec, month: dt.date, source_sql: str, columns: list[str]) -> str:
        """One MERGE: delete the month's rows, insert the source's; atomic as one DML statement."""
        cols = ", ".join(f"`{validate_table(c)}`" for c in columns)
        values = ", ".join(f"S.`{c}`" for c in columns)
        return (
            f"MERGE {self.table_ref(spec.name)} AS T USING {source_sql} AS S ON FALSE "
            f"WHEN NOT MATCHED BY SOURCE AND T.{spec.month_column} = {sql_date_literal(month)} THEN DELETE "
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"
        )
