"""The code location: every asset, check, job and resource, wired from the environment."""

from __future__ import annotations

import dagster as dg

from taxi_assets.assets.checks import build_trip_checks
from taxi_assets.assets.marts import build_mart_assets
from taxi_assets.assets.trips import build_trip_assets, monthly_partitions
from taxi_assets.assets.zones import ZONES_GROUP, taxi_zone_lookup, taxi_zones
from taxi_assets.io_managers import LakeIOManager, WarehouseIOManager
from taxi_assets.resources import LakeResource, TlcSource
from taxi_assets.services import SERVICES
from taxi_assets.settings import Settings
from taxi_assets.warehouse.base import WarehouseResource
from taxi_assets.warehouse.duckdb import DuckDBWarehouse


def build_warehouse(settings: Settings) -> WarehouseResource:
    if settings.warehouse == "duckdb":
        return DuckDBWarehouse(path=settings.duckdb_path, schema_name=settings.warehouse_schema)
    if settings.warehouse == "postgres":
        from taxi_assets.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse.from_env(schema_name=settings.warehouse_schema)
    raise ValueError(f"TAXI_WAREHOUSE={settings.warehouse!r} is not available in this build")


def build_resources(settings: Settings) -> dict[str, object]:
    lake = LakeResource(uri=settings.lake_uri)
    warehouse = build_warehouse(settings)
    return {
        "tlc": TlcSource(base_url=settings.source_url, format=settings.source_format, zones_url=settings.zones_url),
        "lake": lake,
        "warehouse": warehouse,
        "lake_io_manager": LakeIOManager(lake=lake),
        "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
    }


def service_job_name(service_name: str) -> str:
    return f"{service_name}_monthly"


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    assets: list = [taxi_zone_lookup, taxi_zones]
    checks: list = []
    jobs: list = [dg.define_asset_job("zones", selection=dg.AssetSelection.groups(ZONES_GROUP))]
    for service in SERVICES.values():
        assets += build_trip_assets(service) + build_mart_assets(service)
        checks += build_trip_checks(service)
        jobs.append(
            dg.define_asset_job(
                service_job_name(service.name),
                selection=dg.AssetSelection.groups(service.name),
                partitions_def=monthly_partitions(service),
                description=f"One month of {service.title.lower()} trips from the TLC file to the marts.",
            )
        )
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        resources=build_resources(settings),
        # Steps stream a month in batches and hand over handles, not data: running them in one
        # process saves the ~1-2 s a step the multiprocess executor spends starting a Python on
        # 2 cores, which is most of a small month's time. Runs still run in parallel.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
