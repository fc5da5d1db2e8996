"""Settings read from the environment once, when the code location loads.

Only where things are (addresses, paths, the choice of backend) lives here. Secrets never do:
they reach resources through `dg.EnvVar`, so they stay out of run config, logs and the UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from taxi_assets.services import SOURCE_FORMATS

TLC_PARQUET_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
#: The DataTalksClub zoomcamp's csv.gz mirror: one GitHub release per service.
ZOOMCAMP_CSV_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/{service}"
TLC_ZONES_URL = "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zone_lookup.csv"
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
    #: auto | partition_load | merge (see taxi_assets.warehouse.bigquery)
    bq_replace_mode: str = "auto"
    #: Whether TAXI_GCP_KEYFILE is set: resources then read it through dg.EnvVar (the path
    #: itself is never kept here).
    gcp_keyfile_set: bool = False

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
        return cls(
            source_url=env.get("TAXI_SOURCE_URL") or default_url,
            source_format=fmt,
            zones_url=env.get("TAXI_ZONES_URL") or TLC_ZONES_URL,
            lake_uri=env.get("TAXI_LAKE_URI") or "data/lake",
            warehouse=warehouse,
            duckdb_path=env.get("TAXI_DUCKDB_PATH") or "data/warehouse.duckdb",
            warehouse_schema=env.get("TAXI_WAREHOUSE_SCHEMA") or "ny_taxi",
            bq_project=env.get("TAXI_BQ_PROJECT") or None,
            bq_dataset=env.get("TAXI_BQ_DATASET") or None,
            bq_location=env.get("TAXI_BQ_LOCATION") or "US",
            bq_replace_mode=env.get("TAXI_BQ_REPLACE_MODE") or "auto",
            gcp_keyfile_set=bool(env.get("TAXI_GCP_KEYFILE")),
        )
