"""Asset keys and partitions: every service's assets live under its name, partitioned by month."""

from __future__ import annotations

import warnings

import dagster as dg

from taxi_assets.tlc.months import MONTH_KEY_FORMAT, month_label
from taxi_assets.tlc.services import Service


# Checks partitioned like their assets (the audit and every other check) are a preview feature in
# Dagster 1.13; they are what gives each month its own verdict in the UI.
warnings.filterwarnings("ignore", message=r".*partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)


def asset_key(service: Service, name: str) -> dg.AssetKey:
    return dg.AssetKey([service.name, name])


def monthly_partitions(service: Service) -> dg.MonthlyPartitionsDefinition:
    """From the service's first month with zone ids up to the last complete month, keyed `YYYY-MM` like
    the TLC's file names (not Dagster's default `YYYY-MM-DD`)."""
    return dg.MonthlyPartitionsDefinition(start_date=month_label(service.first_month_date), fmt=MONTH_KEY_FORMAT)
