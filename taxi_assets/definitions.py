"""The code location: every asset, check, job and resource, wired from the environment."""

from __future__ import annotations

import dagster as dg

from taxi_assets.defs.alerts import ALERT_SENSORS, build_alert_webhook
from taxi_assets.defs.checks import build_trip_checks
from taxi_assets.defs.assets.marts import build_mart_assets
from taxi_assets.defs.assets.trips import build_trip_assets, monthly_partitions
from taxi_assets.defs.assets.zones import ZONES_GROUP, taxi_zone_lookup, taxi_zones
from taxi_assets.defs.automation import build_automation
from taxi_assets.defs.io_managers import LakeIOManager, WarehouseIOManager
from taxi_assets.defs.resources import LakeResource, TlcSource
from taxi_assets.tlc.services import SERVICES
from taxi_assets.settings import Settings
from taxi_assets.storage.warehouse.base import WarehouseResource, validate_identifier
from taxi_assets.storage.warehouse.duckdb import DuckDBWarehouse


def build_warehouse(settings: Settings) -> WarehouseResource:
    # Refused here, when the code location loads: not at the warehouse step, after the lake steps ran.
    validate_identifier(settings.warehouse_schema, "TAXI_WAREHOUSE_SCHEMA")
    if settings.warehouse == "duckdb":
        return DuckDBWarehouse(path=settings.duckdb_path, schema_name=settings.warehouse_schema)
    if settings.warehouse == "postgres":
        from taxi_assets.storage.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse.from_env(schema_name=settings.warehouse_schema)
    if settings.warehouse == "bigquery":
        from taxi_assets.storage.warehouse.bigquery import BigQueryWarehouse

        if not settings.bq_project:
            raise ValueError("TAXI_WAREHOUSE=bigquery needs TAXI_BQ_PROJECT (and TAXI_BQ_DATASET, TAXI_BQ_LOCATION)")
        warehouse = BigQueryWarehouse(
            project=settings.bq_project,
            schema_name=settings.bq_dataset or settings.warehouse_schema,
            location=settings.bq_location,
            replace_mode=settings.bq_replace_mode,
            credentials_file=dg.EnvVar("TAXI_GCP_KEYFILE") if settings.gcp_keyfile_set else None,
        )
        warehouse.validate_names()  # a bad dataset or project fails here, before any job
        return warehouse
    raise ValueError(f"TAXI_WAREHOUSE={settings.warehouse!r} is not available in this build")


def build_resources(settings: Settings) -> dict[str, object]:
    keyfile = dg.EnvVar("TAXI_GCP_KEYFILE") if settings.gcp_keyfile_set else None
    lake = LakeResource(uri=settings.lake_uri, gcp_keyfile=keyfile)
    warehouse = build_warehouse(settings)
    return {
        "tlc": TlcSource(
            base_url=settings.source_url,
            format=settings.source_format,
            zones_url=settings.zones_url,
            redirect_hosts=list(settings.redirect_hosts),
            deadline_seconds=settings.download_deadline_seconds,
        ),
        "lake": lake,
        "warehouse": warehouse,
        "lake_io_manager": LakeIOManager(lake=lake),
        "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
        "alerts": build_alert_webhook(),
    }


def service_job_name(service_name: str) -> str:
    return f"{service_name}_monthly"


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    assets: list = [taxi_zone_lookup, taxi_zones]
    checks: list = []
    jobs: list = [dg.define_asset_job("zones", selection=dg.AssetSelection.groups(ZONES_GROUP))]
    service_jobs, service_partitions = {}, {}
    for service in SERVICES.values():
        assets += build_trip_assets(service) + build_mart_assets(service)
        checks += build_trip_checks(service)
        service_partitions[service.name] = monthly_partitions(service)
        service_jobs[service.name] = dg.define_asset_job(
            service_job_name(service.name),
            selection=dg.AssetSelection.groups(service.name),
            partitions_def=service_partitions[service.name],
            description=f"One month of {service.title.lower()} trips from the TLC file to the marts.",
        )
        jobs.append(service_jobs[service.name])
    # Schedules, publication sensors and the automation condition sensor (taxi_assets/defs/automation.py),
    # and the alerting sensors (taxi_assets/defs/alerts.py).
    schedules, sensors = build_automation(SERVICES, service_jobs, service_partitions)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors + ALERT_SENSORS,
        resources=build_resources(settings),
        # Steps stream a month in batches and hand over handles, not data: running them in one
        # process saves the ~1-2 s a step the multiprocess executor spends starting a Python on
        # 2 cores, which is most of a small month's time. Runs still run in parallel.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
