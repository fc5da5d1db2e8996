"""Warehouses: where tables end up (DuckDB by default, Postgres, BigQuery), each month replaced atomically."""

from taxi_assets.storage.warehouse.base import TableSource, TableSpec, Warehouse, WarehouseError, validate_identifier
from taxi_assets.storage.warehouse.duckdb import DuckDBWarehouse

__all__ = ["DuckDBWarehouse", "TableSource", "TableSpec", "Warehouse", "WarehouseError", "validate_identifier"]
