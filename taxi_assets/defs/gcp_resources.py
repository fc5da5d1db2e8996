"""The Google Cloud resources: dagster-gcp's BigQuery and GCS clients, and the BigQuery warehouse.

Apart from taxi_assets.defs.resources because dagster-gcp and google-cloud-bigquery take ~0.5 s
to import: the code location, and the Python every run starts, import this module only when the
lake or the warehouse is on Google Cloud.
"""

from __future__ import annotations

import contextlib

import dagster as dg
import dagster_gcp
from pydantic import Field

from taxi_assets.defs.resources import WarehouseResource, resolve
from taxi_assets.settings import GCP_KEYFILE_ENV, Settings
from taxi_assets.storage import gcp
from taxi_assets.storage.warehouse.base import Warehouse


class BigQueryResource(dagster_gcp.BigQueryResource):
    """dagster-gcp's BigQueryResource, with a key file path instead of base64 credentials, and the
    BigQuery emulator when `emulator_host` is set."""

    keyfile: str | None = Field(default=None, description="service-account key file, as dg.EnvVar('TAXI_GCP_KEYFILE')")
    emulator_host: str | None = Field(default=None, description="the emulator's address (BIGQUERY_EMULATOR_HOST)")

    @contextlib.contextmanager
    def get_client(self):
        yield gcp.bigquery_client(self.project, self.location, resolve(self.keyfile), self.emulator_host)


class GCSResource(dagster_gcp.GCSResource):
    """dagster-gcp's GCSResource, with a key file path and fake-gcs-server when `emulator_host` is set."""

    keyfile: str | None = Field(default=None, description="service-account key file, as dg.EnvVar('TAXI_GCP_KEYFILE')")
    emulator_host: str | None = Field(default=None, description="fake-gcs-server's address (STORAGE_EMULATOR_HOST)")

    def get_client(self):
        return gcp.storage_client(resolve(self.keyfile), self.emulator_host)


class BigQueryWarehouseResource(WarehouseResource):
    """BigQuery: tables partitioned by month, each month replaced by one job."""

    bigquery: BigQueryResource
    replace_mode: str = Field(default="auto", description="auto | partition_load | merge")

    def _build(self) -> Warehouse:
        from taxi_assets.storage.warehouse.bigquery import BigQueryWarehouse

        warehouse = BigQueryWarehouse(
            project=self.bigquery.project,
            schema_name=self.schema_name,
            location=self.bigquery.location or "US",
            credentials_file=resolve(self.bigquery.keyfile),
            replace_mode=self.replace_mode,
            emulator_host=self.bigquery.emulator_host,
        )
        warehouse.validate_names()
        return warehouse


def bigquery_resource(settings: Settings) -> BigQueryResource:
    return BigQueryResource(
        project=settings.bq_project,
        location=settings.bq_location,
        keyfile=dg.EnvVar(GCP_KEYFILE_ENV) if settings.gcp_keyfile_set else None,
        emulator_host=settings.bigquery_emulator_host,
    )


def build_bigquery_warehouse(settings: Settings, bigquery: BigQueryResource | None = None) -> BigQueryWarehouseResource:
    if not settings.bq_project:
        raise ValueError("TAXI_WAREHOUSE=bigquery needs TAXI_BQ_PROJECT (and TAXI_BQ_DATASET, TAXI_BQ_LOCATION)")
    warehouse = BigQueryWarehouseResource(
        bigquery=bigquery or bigquery_resource(settings),
        schema_name=settings.bq_dataset or settings.warehouse_schema,
        replace_mode=settings.bq_replace_mode,
    )
    warehouse.backend.validate_names()  # a bad dataset or project fails here, before any job
    return warehouse
