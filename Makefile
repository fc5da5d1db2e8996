# The project's front door. Everything runs from a fresh clone with only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The embedded default keeps Dagster's own instance (SQLite) under ./data/dagster_home.
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
# Arrow's buffers from jemalloc in every process make starts (why: taxi_assets/storage/arrow_memory.py).
export ARROW_DEFAULT_MEMORY_POOL ?= jemalloc

# make dev-offline: the demo's data folder, and the local mirror's port.
DATA_DIR ?= $(or $(TAXI_DATA_DIR),data)
MIRROR_PORT ?= 8765
DEV_PORT ?= 3000

.PHONY: install demo test dev dev-offline backfill bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "taxi_assets needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

install: $(VENV)/.installed

# The embedded default's instance config: SQLite under DAGSTER_HOME (Dagster's default), telemetry
# off, run output in the terminal at INFO (the UI's event log keeps every event), queued runs
# started within a second of a free slot (Dagster looks every 5 s: ~2.5 s lost per run of a
# backfill), and at most MAX_RUNS runs at once: a month's run keeps about two cores busy and holds
# ~0.8 GB, and the DuckDB file takes one writer at a time, so Dagster's default of 10 made a
# backfill slower and 2.2x larger on 2 cores (benchmarks/JOURNAL.md, fourth pass). Written once;
# without it every command warns that there is no instance config.
MAX_RUNS ?= $(shell $(PYTHON) -c 'import os; print(max(2, (os.cpu_count() or 2) // 2))')
$(DAGSTER_HOME)/dagster.yaml:
	@mkdir -p $(DAGSTER_HOME)
	@printf '%s\n' '# The embedded default instance: runs, events and schedules in SQLite under this folder.' \
	  '# Written by make (the deployment'"'"'s, on Postgres, is deploy/dagster.yaml).' \
	  'telemetry:' '  enabled: false' 'python_logs:' '  python_log_level: INFO' \
	  'run_coordinator:' '  module: dagster._core.run_coordinator' '  class: QueuedRunCoordinator' \
	  '  config:' '    max_concurrent_runs: $(MAX_RUNS)' '    dequeue_interval_seconds: 1' \
	  '    max_user_code_failure_retries: 3' '    user_code_failure_retry_delay: 10' > $@

## make demo: offline mirror -> local HTTP server -> every asset for 3 months of yellow and green
## (at a real month's size: make demo ROWS=3000000; other months: MONTHS=2023-01..2023-06)
demo: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m devtools.demo $(if $(ROWS),--rows $(ROWS)) $(if $(MONTHS),--months $(MONTHS)) $(if $(SERVICES),--services $(SERVICES))

## make test: the whole suite (what CI runs)
test: install
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest

## make dev: the Dagster UI on http://127.0.0.1:3000 with the same defaults as the demo
## (the code location is pyproject.toml's [tool.dagster]: taxi_assets.definitions, named taxi_assets)
dev: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dg dev -h 127.0.0.1 -p $(DEV_PORT)

## make dev-offline: the same UI with no internet: a local mirror makes any month of any service on
## request (deterministic, cached in $(DATA_DIR)/mirror), so any month or a backfill of years loads offline
dev-offline: install $(DAGSTER_HOME)/dagster.yaml
	@$(PY) -m devtools.mirror $(DATA_DIR)/mirror/parquet --generate --missing-status 403 --port $(MIRROR_PORT) & mirror=$$!; \
	trap 'kill $$mirror 2>/dev/null' EXIT INT TERM; \
	TAXI_SOURCE_URL=http://127.0.0.1:$(MIRROR_PORT)/trip-data \
	TAXI_ZONES_URL=http://127.0.0.1:$(MIRROR_PORT)/misc/taxi_zone_lookup.csv \
	TAXI_LAKE_URI=$${TAXI_LAKE_URI:-$(DATA_DIR)/lake} TAXI_DUCKDB_PATH=$${TAXI_DUCKDB_PATH:-$(DATA_DIR)/warehouse.duckdb} \
	$(VENV)/bin/dg dev -h 127.0.0.1 -p $(DEV_PORT)

## make backfill SERVICE=yellow MONTHS=2023-01..2023-12: runs of up to 12 consecutive months (MONTHS_PER_RUN=1:
## one run a month), queued at once for the daemon of make dev / make dev-offline; each month keeps its
## own status in the UI (the UI's backfills are a run a month and wait up to 30 s for the backfill daemon)
backfill: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m devtools.backfill --service "$(SERVICE)" --months "$(MONTHS)" $(if $(MONTHS_PER_RUN),--months-per-run $(MONTHS_PER_RUN))

## make bench: figures for a month end to end
bench: install
	$(PY) -m benchmarks.run

clean:
	rm -rf data .pytest_cache
