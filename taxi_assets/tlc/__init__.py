"""The TLC domain: services, schema eras, months, normalisation, cleaning, zones, marts.

Knows what the TLC publishes and how it is made analytics-ready; imports neither Dagster nor any store.
"""
