"""The platform's assets: per service, ingest (raw, cleaned, rejected, lake by date) -> warehouse -> mart; and the zones."""

from __future__ import annotations

import dagster as dg

from taxi_assets.defs.assets.ingest import build_ingest
from taxi_assets.defs.assets.marts import build_mart
from taxi_assets.defs.assets.warehouse import build_warehouse_assets
from taxi_assets.defs.partitions import monthly_partitions
from taxi_assets.tlc.services import Service


def build_service_assets(service: Service) -> list[dg.AssetsDefinition]:
    """One month's graph for a service, grouped under its name in the UI."""
    downstream = [*build_warehouse_assets(service), build_mart(service)]
    return [build_ingest(service, monthly_partitions(service), downstream), *downstream]
