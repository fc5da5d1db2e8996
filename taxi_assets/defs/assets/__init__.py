"""The asset graph: zones, per-service trips, marts, and their checks."""
