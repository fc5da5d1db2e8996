"""Materialization metadata that reads well in the Dagster UI: schemas, previews, rule counts."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from taxi_assets.storage.warehouse.base import TableSpec, Warehouse
from taxi_assets.tlc.columns import describe_column
from taxi_assets.tlc.normalize import canonical_name


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The columns with their types and what they mean; a raw file's source names are described by
    the canonical column they feed."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f.name, str(f.type), description=describe_column(f.name) or describe_column(canonical_name(f.name) or ""))
            for f in schema
        ]
    )


def markdown_preview(table: pa.Table | pa.RecordBatch, rows: int = 10) -> str:
    """The first rows as a markdown table (the UI renders it; no pandas needed)."""
    table = table.slice(0, rows)
    names = table.schema.names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in table.to_pylist():
        lines.append("| " + " | ".join("" if row[n] is None else str(row[n]) for n in names) + " |")
    return "\n".join(lines)


def rejects_markdown(counts: dict[str, int]) -> str:
    lines = ["| rule | rows rejected |", "|---|---:|"]
    lines += [f"| {rule} | {n:,} |" for rule, n in counts.items()]
    return "\n".join(lines)


def table_metadata(schema: pa.Schema, preview: pa.Table | pa.RecordBatch | None) -> dict[str, object]:
    """The column schema and a preview, as every materialization shows them."""
    meta: dict[str, object] = {"dagster/column_schema": column_schema(schema)}
    if preview is not None:
        meta["preview"] = dg.MetadataValue.md(markdown_preview(preview))
    return meta


def parquet_metadata(parquet: pq.ParquetFile, rows: int = 10) -> dict[str, object]:
    """Schema and first rows of a parquet file, reading only its first rows."""
    first = next(parquet.iter_batches(batch_size=rows), None)
    return table_metadata(parquet.schema_arrow, first)


def source_metadata(result) -> dict[str, object]:
    """Where a downloaded file came from and what it was (a download.DownloadResult)."""
    return {
        "source_url": dg.MetadataValue.url(result.url),
        "bytes": result.bytes,
        "sha256": result.sha256,
        "etag": result.etag or "",
        "last_modified": result.last_modified or "",
    }


def warehouse_table_metadata(warehouse: Warehouse, spec: TableSpec, month: dt.date | None = None) -> dict[str, object]:
    """Column schema and the first rows of a table (or of one month), for the UI."""
    preview = warehouse.query(f"{warehouse.select_months(spec, [month] if month else None)} LIMIT 10")
    return table_metadata(preview.schema, preview)
