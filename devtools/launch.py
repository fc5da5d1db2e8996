"""Runs from a script that belong to their job in the UI, as if launched there.

`execute_in_process` runs carry no code location: the Runs list shows them, but the job's page, its
run history and the Overview timeline (which match runs on `<repository>@<location>`) do not. Here
the run is created from the code location `make dev` / `make dev-offline` load (pyproject.toml's
`[tool.dagster]`: module `taxi_assets.definitions`, location `taxi_assets`), with its origin, and then
executed in this process, as the UI's run worker would.

Dagster has no public API for "create a run with an origin, execute it here", so this uses the same
internals as its `dagster job launch` command (`instance.create_run` with the remote job's origin)
and its run worker (`execute_run` on the reconstructable job); the demo's tests pin the outcome.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

import dagster as dg
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.hosted_user_process import recon_job_from_origin

MODULE = "taxi_assets.definitions"
LOCATION = "taxi_assets"


@contextlib.contextmanager
def code_location(instance: dg.DagsterInstance) -> Iterator[CodeLocation]:
    """The project's code location, loaded here under the name the UI gives it. The module reads its
    settings from the environment when it is imported: set them first."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=MODULE, working_directory=os.getcwd()), location_name=LOCATION
    )
    with origin.create_location(instance) as location:
        yield location


def run_job(
    location: CodeLocation,
    instance: dg.DagsterInstance,
    job_name: str,
    partition_key: str | None = None,
    run_config: Mapping | None = None,
) -> dg.ExecutionResult:
    """Create the run with the job's origin, then execute it in this process; never raises on failure."""
    [repository] = location.get_repositories().values()
    remote_job = repository.get_full_job(job_name)
    recon_job = recon_job_from_origin(remote_job.get_python_origin())
    job_def = recon_job.get_definition()
    tags = dict(remote_job.tags)
    if partition_key is not None:
        with partition_loading_context(dynamic_partitions_store=instance) as context:
            job_def.validate_partition_key(partition_key, selected_asset_keys=None, context=context)
        tags.update(job_def.get_tags_for_partition_key(partition_key, selected_asset_keys=None))
    run = instance.create_run_for_job(
        job_def,
        run_config=dict(run_config or {}),
        tags=tags,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
    )
    return execute_run(recon_job, run, instance)
