"""Jobs: one monthly partitioned job per service (its whole group), and the zones job."""

from __future__ import annotations

import dagster as dg

from taxi_assets.defs.assets.zones import ZONES_GROUP
from taxi_assets.tlc.services import Service

#: Run tags: what launched a run, and the source version a publication sensor saw.
TRIGGER_TAG = "taxi/trigger"
VERSION_TAG = "taxi/source_version"


def service_job_name(service_name: str) -> str:
    return f"{service_name}_monthly"


def service_job(service: Service) -> dg.UnresolvedAssetJobDefinition:
    """One month of a service, from the TLC file to the marts (the partitions come from the assets)."""
    return dg.define_asset_job(
        service_job_name(service.name),
        selection=dg.AssetSelection.groups(service.name),
        description=f"One month of {service.title.lower()} trips from the TLC file to the marts.",
    )


ZONES_JOB = dg.define_asset_job("zones", selection=dg.AssetSelection.groups(ZONES_GROUP))
