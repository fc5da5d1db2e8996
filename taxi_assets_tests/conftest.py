"""Shared fixtures: an offline TLC mirror served over HTTP, and the pipeline's definitions wired to
a throwaway lake, DuckDB file and Dagster instance."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from taxi_assets.definitions import build_definitions
from taxi_assets.defs.jobs import service_job_name
from devtools.generator import build_mirror
from devtools.mirror import MirrorServer
from taxi_assets.settings import Settings

pytest_plugins = ["taxi_assets_tests.postgres_server", "taxi_assets_tests.emulators"]

#: One small month per service, in each service's current parquet era, plus a second yellow
#: month across the 2023-02 schema change.
MIRROR_MONTHS = {"yellow": ["2023-01", "2023-02"], "green": ["2023-01"], "fhv": ["2023-01"], "fhvhv": ["2023-01"]}
MIRROR_ROWS = 4_000


@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    for service, months in MIRROR_MONTHS.items():
        build_mirror(root, [service], months, "parquet", MIRROR_ROWS)
    return root


@pytest.fixture(scope="session")
def mirror(mirror_root: Path) -> Iterator[MirrorServer]:
    with MirrorServer(mirror_root, missing_status=403) as server:
        yield server


@dataclass
class Pipeline:
    """The project's definitions on a private lake, warehouse and Dagster instance."""

    defs: dg.Definitions
    instance: dg.DagsterInstance
    settings: Settings

    @property
    def warehouse(self):
        return self.defs.resources["warehouse"].backend

    @property
    def lake(self):
        return self.defs.resources["lake"].lake

    def check_status(self, key: dg.AssetCheckKey, month: str) -> str:
        """A month's check as the check's Partitions tab shows it: SUCCEEDED, FAILED, ... or MISSING
        (Dagster counts a result only while it is about the month's latest materialization)."""
        from dagster._core.storage.asset_check_state import AssetCheckExecutionResolvedStatus as Resolved

        partitions = self.defs.resolve_asset_graph().get(key.asset_key).partitions_def
        state = self.instance.event_log_storage.get_asset_check_state([(key, partitions)])[key]
        found = [s.value for s in Resolved if month in state.subsets[s].subset_value.get_partition_keys()]
        return found[0] if found else "MISSING"

    def run(self, job: str, month: str | None = None, run_config: dict | None = None, raise_on_error: bool = True):
        """Run a job in process; `job` is 'zones' or a service name."""
        name = job if job == "zones" else service_job_name(job)
        return self.defs.resolve_job_def(name).execute_in_process(
            partition_key=month,
            instance=self.instance,
            run_config=run_config,
            raise_on_error=raise_on_error,
        )

    def run_checks(self, service: str, month: str, *keys: dg.AssetCheckKey):
        """Run some of a service's checks alone, as a user does from a check's page in the UI."""
        job = self.defs.resolve_job_def(service_job_name(service))
        subset = job.get_subset(asset_selection=set(), asset_check_selection=set(keys))
        return subset.execute_in_process(partition_key=month, instance=self.instance, raise_on_error=False)


def make_pipeline(tmp_path: Path, mirror: MirrorServer, instance: dg.DagsterInstance, **env: str) -> Pipeline:
    settings = Settings.from_env(
        {
            **os.environ,  # the emulators' hosts and the Postgres URL a test set
            "TAXI_SOURCE_URL": f"{mirror.url}/trip-data",
            "TAXI_ZONES_URL": f"{mirror.url}/misc/taxi_zone_lookup.csv",
            "TAXI_LAKE_URI": str(tmp_path / "lake"),
            "TAXI_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            **env,
        }
    )
    return Pipeline(build_definitions(settings), instance, settings)


@pytest.fixture
def pipeline(tmp_path: Path, mirror: MirrorServer) -> Iterator[Pipeline]:
    with dg.instance_for_test() as instance:
        yield make_pipeline(tmp_path, mirror, instance)
