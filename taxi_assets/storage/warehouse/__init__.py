"""Warehouses: where the trips, zones and marts end up as tables (DuckDB by default)."""

from taxi_assets.storage.warehouse.base import TableSource, WarehouseResource, validate_identifier
from taxi_assets.storage.warehouse.duckdb import DuckDBWarehouse

__all__ = ["DuckDBWarehouse", "TableSource", "WarehouseResource", "validate_identifier"]
