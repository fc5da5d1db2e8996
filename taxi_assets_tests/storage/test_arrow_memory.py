"""Arrow's buffers come from jemalloc in a process that loaded the code location, unless
ARROW_DEFAULT_MEMORY_POOL chose otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from taxi_assets.settings import Settings
from taxi_assets.storage.arrow_memory import ARROW_POOL_ENV, use_memory_pool


@pytest.fixture
def restore_pool():
    before = pa.default_memory_pool()
    yield
    pa.set_memory_pool(before)


def test_unless_chosen_a_months_buffers_come_from_jemalloc(restore_pool):
    pa.set_memory_pool(pa.system_memory_pool())
    assert use_memory_pool(None) == "jemalloc"
    jemalloc = pa.jemalloc_memory_pool()
    before = jemalloc.bytes_allocated()
    doubled = pc.multiply(pa.array(range(1_000_000), pa.int64()), 2)  # what a cleaning rule allocates
    assert jemalloc.bytes_allocated() - before >= 8_000_000
    del doubled


def test_a_pool_the_environment_chose_stands(restore_pool):
    pa.set_memory_pool(pa.system_memory_pool())
    assert use_memory_pool("system") == "system"
    assert pa.default_memory_pool().backend_name == "system"


def test_the_choice_is_read_with_the_other_settings():
    assert Settings.from_env({}).arrow_memory_pool is None
    assert Settings.from_env({ARROW_POOL_ENV: "mimalloc"}).arrow_memory_pool == "mimalloc"


@pytest.mark.parametrize(("env", "expected"), [(None, "jemalloc"), ("system", "system")])
def test_a_process_that_loads_the_code_location_allocates_as_chosen(tmp_path, env, expected):
    """What a run worker does: load the code location (the defs function), then work on a month."""
    code = (
        "import pyarrow as pa, pyarrow.compute as pc\n"
        "from taxi_assets.definitions import defs\n"
        "defs()\n"
        "pool = pa.default_memory_pool()\n"
        "before = pool.bytes_allocated()\n"
        "kept = pc.multiply(pa.array(range(100_000), pa.int64()), 2)\n"
        "print(pool.backend_name, pool.bytes_allocated() - before >= 800_000)\n"
    )
    child_env = {k: v for k, v in os.environ.items() if k != ARROW_POOL_ENV}
    child_env.update({"TAXI_DUCKDB_PATH": str(tmp_path / "w.duckdb"), "TAXI_LAKE_URI": str(tmp_path / "lake")})
    if env:
        child_env[ARROW_POOL_ENV] = env
    out = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected, "True"]
