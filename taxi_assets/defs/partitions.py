"""Asset keys and partitions: every service's assets live under its name, partitioned by month."""

from __future__ import annotations

import dagster as dg

from taxi_assets.tlc.services import Service


def asset_key(service: Service, name: str) -> dg.AssetKey:
    return dg.AssetKey([service.name, name])


def monthly_partitions(service: Service) -> dg.MonthlyPartitionsDefinition:
    """From the service's first month with zone ids up to the last complete month."""
    return dg.MonthlyPartitionsDefinition(start_date=service.first_month_date.isoformat())
