"""Settings read from the environment once, when the code location loads.

Only where things are (addresses, paths, the choice of backend) lives here. Secrets never do:
they reach resources through `dg.EnvVar`, so they stay out of run config, logs and the UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from taxi_assets.storage.http import DEADLINE_SECONDS, check_source_url
from taxi_assets.tlc.services import SOURCE_FORMATS

TLC_PARQUET_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
#: The DataTalksClub zoomcamp's csv.gz mirror: one GitHub release per service.
ZOOMCAMP_CSV_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/{service}"
TLC_ZONES_URL = "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zone_lookup.csv"
#: Where GitHub sends a release download: the zoomcamp mirror's files are served from there.
ZOOMCAMP_REDIRECT_HOSTS = ("objects.githubusercontent.com", "release-assets.githubusercontent.com")
WAREHOUSES = ("duckdb", "postgres", "bigquery")


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
            gcp_keyfile_set=bool(env.get("TAXI_GCP_KEYFILE")),
            redirect_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip()),
            download_deadline_seconds=deadline_seconds,
        )
