"""IO managers: the lake one and the warehouse one. Each stores a partition atomically and hands
an input what its annotation asks for (see types.py)."""

from taxi_assets.defs.io_managers.lake import LakeIOManager
from taxi_assets.defs.io_managers.warehouse import SqlQuery, WarehouseIOManager

__all__ = ["LakeIOManager", "SqlQuery", "WarehouseIOManager"]
