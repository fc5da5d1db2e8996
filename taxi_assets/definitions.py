"""The code location: every asset, check, job, schedule, sensor and resource, wired from the settings.

A user's own assets join the platform with `dg.Definitions.merge(build_definitions(), my_defs)`
(see docs/extending.md): they get the same IO managers and resources by name.
"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from taxi_assets.defs.alerts import build_alert_sensors, build_alert_webhook
from taxi_assets.defs.assets import build_service_assets
from taxi_assets.defs.assets.zones import taxi_zone_lookup, taxi_zones
from taxi_assets.defs.checks import build_trip_checks
from taxi_assets.defs.io_managers import LakeIOManager, WarehouseIOManager
from taxi_assets.defs.jobs import ZONES_JOB, service_job
from taxi_assets.defs.partitions import monthly_partitions
from taxi_assets.defs.resources import LakeResource, TlcSource, build_warehouse, postgres_resource
from taxi_assets.defs.schedules import build_monthly_schedule
from taxi_assets.defs.sensors import build_automation_sensor, build_publication_sensor
from taxi_assets.settings import GCP_KEYFILE_ENV, Settings
from taxi_assets.storage.arrow_memory import use_memory_pool
from taxi_assets.tlc.services import SERVICES


def build_resources(settings: Settings) -> dict[str, object]:
    """Every resource: ours, and the clients a user's assets ask for by name (duckdb, postgres, bigquery, gcs)."""
    keyfile = dg.EnvVar(GCP_KEYFILE_ENV) if settings.gcp_keyfile_set else None
    lake = LakeResource(uri=settings.lake_uri, gcp_keyfile=keyfile, gcs_emulator_host=settings.storage_emulator_host)
    clients: dict[str, object] = {}
    if settings.warehouse == "duckdb":
        clients["duckdb"] = DuckDBResource(database=settings.duckdb_path)
    if settings.warehouse == "postgres":
        clients["postgres"] = postgres_resource(settings)
    if lake.uri.startswith("gs://") or settings.warehouse == "bigquery":
        from taxi_assets.defs.gcp_resources import GCSResource, bigquery_resource  # (dagster-gcp: only when used)

        if settings.warehouse == "bigquery":
            clients["bigquery"] = bigquery_resource(settings)
        clients["gcs"] = GCSResource(project=settings.bq_project, keyfile=keyfile, emulator_host=settings.storage_emulator_host)
    warehouse = build_warehouse(settings, clients.get("postgres"), clients.get("bigquery"))
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
        "alerts": build_alert_webhook(settings),
        **clients,
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    use_memory_pool(settings.arrow_memory_pool)  # before any month's work: a run worker loads this first
    running = settings.automation_running
    assets: list = [taxi_zone_lookup, taxi_zones]
    checks, jobs, schedules = [], [ZONES_JOB], []
    sensors = [build_automation_sensor(running), *build_alert_sensors(running)]
    for service in SERVICES.values():
        assets += build_service_assets(service)
        checks += build_trip_checks(service)
        job = service_job(service)
        jobs.append(job)
        schedules.append(build_monthly_schedule(service, job, monthly_partitions(service), running))
        sensors.append(build_publication_sensor(service, job, monthly_partitions(service), running=running))
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=build_resources(settings),
        # Steps stream a month in batches and hand over handles, not data: running them in one
        # process saves the ~1-2 s a step the multiprocess executor spends starting a Python on
        # 2 cores, which is most of a small month's time. Runs still run in parallel.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location `make dev` and the deployment load. Built when it loads, not on import, so a
    process that set its environment after importing this module (the demo) gets those settings."""
    return build_definitions()
