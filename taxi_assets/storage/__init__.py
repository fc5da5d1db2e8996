"""Bytes and tables: HTTP downloads, the lake, and the warehouses behind one small interface.

Knows no Dagster and no TLC column: what a table is keyed and indexed on arrives as a TableSpec.
"""
