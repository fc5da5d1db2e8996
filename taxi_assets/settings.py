"""Settings read from the environment once, when the code location loads.

Only where things are (addresses, paths, the choice of backend) lives here. Secrets never do:
they reach resources through `dg.EnvVar`, so they stay out of run config, logs and the UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from taxi_assets.storage.arrow_memory import ARROW_POOL_ENV
from taxi_assets.storage.http import DEADLINE_SECONDS, check_source_url
from taxi_assets.tlc.services import SOURCE_FORMATS
from taxi_assets.tlc.sources import TLC_PARQUET_URL, TLC_ZONES_URL, ZOOMCAMP_CSV_URL, ZOOMCAMP_REDIRECT_HOSTS

WAREHOUSES = ("duckdb", "postgres", "bigquery")
#: The Postgres warehouse's connection: a URL, and/or the pieces under their zoomcamp names.
POSTGRES_URL_ENV = "TAXI_POSTGRES_URL"
POSTGRES_PIECE_ENVS = {
    "host": "POSTGRES_HOST",
    "port": "POSTGRES_PORT",
    "database": "POSTGRES_DB",
    "user": "POSTGRES_USER",
    "password": "POSTGRES_PASSWORD",
}
GCP_KEYFILE_ENV = "TAXI_GCP_KEYFILE"
ALERT_WEBHOOK_ENV = "TAXI_ALERT_WEBHOOK_URL"
AUTOMATION_STATUS_ENV = "TAXI_AUTOMATION_DEFAULT_STATUS"


@dataclass(frozen=True)
class Settings:
    source_url: str
    source_format: str
    zones_url: str
    lake_uri: str
    warehouse: str
    duckdb_path: str
    warehouse_schema: str
    # BigQuery (TAXI_WAREHOUSE=bigquery): the dataset is TAXI_BQ_DATASET, else TAXI_WAREHOUSE_SCHEMA.
    bq_project: str | None = None
    bq_dataset: str | None = None
    bq_location: str = "US"
    #: auto | partition_load | merge (see taxi_assets.storage.warehouse.bigquery)
    bq_replace_mode: str = "auto"
    #: Whether TAXI_GCP_KEYFILE is set: resources then read it through dg.EnvVar (the path
    #: itself is never kept here).
    gcp_keyfile_set: bool = False
    #: Hosts a download may be redirected to, besides the source URL's own.
    redirect_hosts: tuple[str, ...] = ()
    #: The whole transfer of one file, retries included.
    download_deadline_seconds: float = DEADLINE_SECONDS
    #: Which of the Postgres connection variables are set: resources read each through dg.EnvVar.
    postgres_env: tuple[str, ...] = ()
    #: Local stand-ins for GCS and BigQuery (fake-gcs-server, the BigQuery emulator).
    storage_emulator_host: str | None = None
    bigquery_emulator_host: str | None = None
    #: Whether schedules and sensors start running (a deployment) or stopped (Dagster's default).
    automation_running: bool = False
    #: Whether TAXI_ALERT_WEBHOOK_URL is set (read through dg.EnvVar: the URL is a secret).
    alert_webhook_set: bool = False
    #: The UI's address, for links in alerts.
    dagster_url: str = ""
    #: Arrow's default memory pool when ARROW_DEFAULT_MEMORY_POOL names one; unset, jemalloc
    #: (see taxi_assets.storage.arrow_memory).
    arrow_memory_pool: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        fmt = env.get("TAXI_SOURCE_FORMAT", "parquet")
        if fmt not in SOURCE_FORMATS:
            raise ValueError(f"TAXI_SOURCE_FORMAT={fmt!r}: expected one of {', '.join(SOURCE_FORMATS)}")
        warehouse = env.get("TAXI_WAREHOUSE", "duckdb")
        if warehouse not in WAREHOUSES:
            raise ValueError(f"TAXI_WAREHOUSE={warehouse!r}: expected one of {', '.join(WAREHOUSES)}")
        default_url = TLC_PARQUET_URL if fmt == "parquet" else ZOOMCAMP_CSV_URL
        source_url = check_source_url(env.get("TAXI_SOURCE_URL") or default_url, "TAXI_SOURCE_URL")
        zones_url = check_source_url(env.get("TAXI_ZONES_URL") or TLC_ZONES_URL, "TAXI_ZONES_URL")
        # Empty is unset (compose passes every variable, set or not): the source's own default.
        hosts = env.get("TAXI_SOURCE_REDIRECT_HOSTS") or (
            ",".join(ZOOMCAMP_REDIRECT_HOSTS) if source_url == ZOOMCAMP_CSV_URL else ""
        )
        deadline = env.get("TAXI_DOWNLOAD_DEADLINE_SECONDS") or str(DEADLINE_SECONDS)
        try:
            deadline_seconds = float(deadline)
        except ValueError:
            raise ValueError(f"TAXI_DOWNLOAD_DEADLINE_SECONDS={deadline!r}: expected seconds") from None
        if deadline_seconds <= 0:
            raise ValueError(f"TAXI_DOWNLOAD_DEADLINE_SECONDS={deadline!r}: expected a positive number")
        status = (env.get(AUTOMATION_STATUS_ENV) or "stopped").strip().lower()
        if status not in ("running", "stopped"):
            raise ValueError(f"{AUTOMATION_STATUS_ENV}={status!r}: expected 'running' or 'stopped'")
        postgres_env = tuple(v for v in (POSTGRES_URL_ENV, *POSTGRES_PIECE_ENVS.values()) if env.get(v))
        if warehouse == "postgres" and not postgres_env:
            raise ValueError(
                f"TAXI_WAREHOUSE=postgres needs {POSTGRES_URL_ENV} (postgresql://user:password@host:port/db) or "
                f"{', '.join(POSTGRES_PIECE_ENVS.values())} in the environment"
            )
        return cls(
            source_url=source_url,
            source_format=fmt,
            zones_url=zones_url,
            lake_uri=env.get("TAXI_LAKE_URI") or "data/lake",
            warehouse=warehouse,
            duckdb_path=env.get("TAXI_DUCKDB_PATH") or "data/warehouse.duckdb",
            warehouse_schema=env.get("TAXI_WAREHOUSE_SCHEMA") or "ny_taxi",
            bq_project=env.get("TAXI_BQ_PROJECT") or None,
            bq_dataset=env.get("TAXI_BQ_DATASET") or None,
            bq_location=env.get("TAXI_BQ_LOCATION") or "US",
            bq_replace_mode=env.get("TAXI_BQ_REPLACE_MODE") or "auto",
            gcp_keyfile_set=bool(env.get(GCP_KEYFILE_ENV)),
            redirect_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip()),
            download_deadline_seconds=deadline_seconds,
            postgres_env=postgres_env,
            storage_emulator_host=env.get("STORAGE_EMULATOR_HOST") or None,
            bigquery_emulator_host=env.get("BIGQUERY_EMULATOR_HOST") or None,
            automation_running=status == "running",
            alert_webhook_set=bool(env.get(ALERT_WEBHOOK_ENV)),
            dagster_url=env.get("TAXI_DAGSTER_URL", ""),
            arrow_memory_pool=env.get(ARROW_POOL_ENV) or None,
        )
