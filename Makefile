# The project's front door. Everything runs from a fresh clone with only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The embedded default keeps Dagster's own instance (SQLite) under ./data/dagster_home.
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

.PHONY: install demo test dev bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "taxi_assets needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

install: $(VENV)/.installed

## make demo: offline mirror -> local HTTP server -> every asset for 3 months of yellow and green
## (at a real month's size: make demo ROWS=3000000; other months: MONTHS=2023-01..2023-06)
demo: install
	@mkdir -p $(DAGSTER_HOME)
	$(PY) -m taxi_assets.demo $(if $(ROWS),--rows $(ROWS)) $(if $(MONTHS),--months $(MONTHS)) $(if $(SERVICES),--services $(SERVICES))

## make test: the whole suite (what CI runs)
test: install
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest

## make dev: the Dagster UI on http://127.0.0.1:3000 with the same defaults as the demo
dev: install
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -m taxi_assets.definitions -h 127.0.0.1 -p 3000

## make bench: figures for a month end to end
bench: install
	$(PY) -m benchmarks.run

clean:
	rm -rf data .pytest_cache
