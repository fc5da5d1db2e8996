"""The Dagster wiring: resources, IO managers, partitions, policies, assets, checks, jobs, automation."""
