"""How the assets are filed in the UI's catalog: one owning team, and tags that say each asset's
service and layer, so the catalog filters "every yellow asset" or "every warehouse table"."""

#: Dagster owners are people (e-mail) or teams (`team:`); the platform's assets are the team's.
OWNERS = ["team:taxi-data-platform"]


def catalog_tags(layer: str, service: str | None = None) -> dict[str, str]:
    """`layer`: raw, cleaned, rejected, lake, warehouse, mart or reference."""
    return {"layer": layer, **({"service": service} if service else {})}
