"""Materialization metadata that reads well in the Dagster UI: schemas, previews, rule counts."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


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
