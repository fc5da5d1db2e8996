"""Resources: where the TLC files come from, the lake, the warehouse, and the clients a user's own
assets reach for by name (`duckdb`, `postgres`, `bigquery`, `gcs`).

Each resource holds configuration only and builds a plain storage object (taxi_assets.storage) when
first used; secrets are `dg.EnvVar`s, resolved by Dagster when a run starts (or here, when a
resource is used outside a run), so the UI and run config show variable names, never values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

from taxi_assets.storage.http import DEADLINE_SECONDS, DownloadError, DownloadResult, download_file
from taxi_assets.storage.lake import Lake
from taxi_assets.settings import POSTGRES_PIECE_ENVS, POSTGRES_URL_ENV, Settings
from taxi_assets.storage.warehouse.base import Warehouse, validate_identifier
from taxi_assets.storage.warehouse.duckdb import DuckDBWarehouse
from taxi_assets.tlc.services import SOURCE_FORMATS, Service
from taxi_assets.tlc.sources import TLC_PARQUET_URL, TLC_ZONES_URL

if TYPE_CHECKING:
    import psycopg

    from taxi_assets.defs.gcp_resources import BigQueryResource


def resolve(value: object) -> object:
    """A field's value: an `EnvVar` met outside a Dagster run is read only here, when it is used."""
    return value.get_value() if isinstance(value, dg.EnvVar) else value


class TlcSource(dg.ConfigurableResource):
    """The TLC's monthly trip files: the real site, the zoomcamp's csv.gz mirror, or an offline mirror."""

    base_url: str = Field(
        default=TLC_PARQUET_URL,
        description="Base address; `{service}` in it becomes the service name, and the TLC file name is appended.",
    )
    format: str = Field(default="parquet", description="parquet (the TLC) or csv.gz (the zoomcamp's mirror)")
    zones_url: str = TLC_ZONES_URL
    timeout_seconds: float = Field(default=120.0, description="Longest wait for the connection, the headers or one read.")
    max_attempts: int = 5
    backoff_seconds: float = 2.0
    deadline_seconds: float = Field(default=DEADLINE_SECONDS, description="The whole transfer, retries included.")
    redirect_hosts: list[str] = Field(
        default=[], description="Hosts a redirect may lead to besides the URL's own (the zoomcamp's GitHub releases)."
    )

    def url_for(self, service: Service, month) -> str:
        if self.format not in SOURCE_FORMATS:
            raise ValueError(f"source format {self.format!r}: expected one of {', '.join(SOURCE_FORMATS)}")
        base = self.base_url.rstrip("/").replace("{service}", service.name)
        return f"{base}/{service.file_name(month, self.format)}"

    def fetch(self, url: str, dest_dir: Path, label: str, fmt: str, log: Callable[[str], None]) -> DownloadResult:
        """Download and validate one file; a failure becomes a step failure that says what and why."""
        try:
            return download_file(
                url,
                dest_dir,
                label=label,
                fmt=fmt,
                timeout=self.timeout_seconds,
                max_attempts=self.max_attempts,
                backoff_seconds=self.backoff_seconds,
                log=log,
                deadline_seconds=self.deadline_seconds,
                redirect_hosts=self.redirect_hosts,
            )
        except DownloadError as exc:
            description = str(exc)
            if exc.unreachable:
                description += (
                    f". The source did not answer: is TAXI_SOURCE_URL ({self.base_url}) right? With no internet, "
                    "`make dev-offline` serves every month from a local mirror"
                )
            raise dg.Failure(description=description, metadata={"url": url, "reason": exc.reason}) from exc


class LakeResource(dg.ConfigurableResource):
    """The lake: a local folder (default `data/lake`) or a `gs://bucket/prefix`.

    On GCS, credentials are Application Default Credentials unless `gcp_keyfile` names a
    service-account key file (give it as `dg.EnvVar("TAXI_GCP_KEYFILE")`).
    """

    uri: str = "data/lake"
    gcp_keyfile: str | None = None
    gcs_emulator_host: str | None = Field(default=None, description="fake-gcs-server's address (STORAGE_EMULATOR_HOST)")
    _lake: Lake | None = PrivateAttr(default=None)

    @property
    def lake(self) -> Lake:
        if self._lake is None:
            self._lake = Lake(self.uri, gcp_keyfile=resolve(self.gcp_keyfile), gcs_emulator_host=self.gcs_emulator_host)
        return self._lake

    @contextlib.contextmanager
    def staging_dir(self) -> Iterator[Path]:
        with self.lake.staging_dir() as path:
            yield path


# -- clients a user's assets ask for by name -----------------------------------------------------
class PostgresResource(dg.ConfigurableResource):
    """A Postgres connection: `url` (libpq URL or key=value) and/or the pieces, which override it.

    `with postgres.get_connection() as conn:` gives a psycopg 3 connection (autocommit off: commit
    what you write).
    """

    url: str | None = Field(default=None, description="libpq connection URL, as dg.EnvVar('TAXI_POSTGRES_URL')")
    host: str | None = None
    port: str | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = Field(default=None, description="as dg.EnvVar('POSTGRES_PASSWORD')")

    def connection_fields(self) -> dict[str, str | None]:
        return {name: resolve(getattr(self, name)) for name in ("url", "host", "port", "database", "user", "password")}

    @contextlib.contextmanager
    def get_connection(self) -> Iterator[psycopg.Connection]:
        with self.warehouse_backend("public").connect() as conn:
            conn.autocommit = False
            yield conn

    def warehouse_backend(self, schema_name: str, **options) -> "PostgresWarehouse":  # noqa: F821
        from taxi_assets.storage.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(schema_name=schema_name, **self.connection_fields(), **options)


# -- the warehouse ---------------------------------------------------------------------------------
class WarehouseResource(dg.ConfigurableResource):
    """Where the tables are; `backend` is the storage object every write and read goes through."""

    schema_name: str = Field(default="ny_taxi", description="SQL schema (BigQuery: dataset) of every table")
    _backend: Warehouse | None = PrivateAttr(default=None)

    @property
    def backend(self) -> Warehouse:
        if self._backend is None:
            self._backend = self._build()
        return self._backend

    def _build(self) -> Warehouse:
        raise NotImplementedError


class DuckDBWarehouseResource(WarehouseResource):
    """The embedded default: one DuckDB file, no server."""

    path: str = Field(default="data/warehouse.duckdb", description="the DuckDB file")
    memory_limit: str = Field(
        default=DuckDBWarehouse.memory_limit,
        description="what DuckDB may hold in memory before spilling to disk (DuckDB's own default is 80 % of the machine)",
    )

    def _build(self) -> Warehouse:
        return DuckDBWarehouse(path=self.path, schema_name=self.schema_name, memory_limit=self.memory_limit)


class PostgresWarehouseResource(WarehouseResource):
    """Postgres: every month a partition, swapped in atomically."""

    postgres: PostgresResource
    lock_timeout_seconds: float = Field(default=3.0, description="how long a swap waits for the table's lock before retrying")
    swap_deadline_seconds: float = Field(default=600.0, description="how long a swap keeps retrying")

    def _build(self) -> Warehouse:
        return self.postgres.warehouse_backend(
            self.schema_name, lock_timeout_seconds=self.lock_timeout_seconds, swap_deadline_seconds=self.swap_deadline_seconds
        )


def build_warehouse(settings: Settings, postgres: PostgresResource | None = None, bigquery: BigQueryResource | None = None) -> WarehouseResource:
    # Refused here, when the code location loads: not at the warehouse step, after the lake steps ran.
    validate_identifier(settings.warehouse_schema, "TAXI_WAREHOUSE_SCHEMA")
    if settings.warehouse == "postgres":
        return PostgresWarehouseResource(postgres=postgres or postgres_resource(settings), schema_name=settings.warehouse_schema)
    if settings.warehouse == "bigquery":
        from taxi_assets.defs.gcp_resources import build_bigquery_warehouse  # (dagster-gcp: only when used)

        return build_bigquery_warehouse(settings, bigquery)
    return DuckDBWarehouseResource(path=settings.duckdb_path, schema_name=settings.warehouse_schema)


def postgres_resource(settings: Settings) -> PostgresResource:
    """Every connection variable that is set, as a dg.EnvVar (read when a run connects)."""
    names = {POSTGRES_URL_ENV: "url", **{var: name for name, var in POSTGRES_PIECE_ENVS.items()}}
    return PostgresResource(**{names[var]: dg.EnvVar(var) for var in settings.postgres_env})
