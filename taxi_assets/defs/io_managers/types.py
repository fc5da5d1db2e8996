"""The types a user's asset may ask for, by annotation, and the conversions to them.

Every form is built from one lazy source (a pyarrow dataset over the lake's files, or a SELECT the
warehouse runs), so nothing is read before the asset asks, and the streaming forms never hold more
than a batch.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from taxi_assets.storage.handles import BATCH_ROWS

#: What every store can hand over, with the name an error message lists.
READABLE: dict[type, str] = {
    pd.DataFrame: "pandas.DataFrame",
    pa.Table: "pyarrow.Table",
    pa.RecordBatchReader: "pyarrow.RecordBatchReader (streamed, a batch at a time)",
}


def wanted_type(context: dg.InputContext) -> object:
    """The input's annotation; None when it has none (Any)."""
    typing_type = context.dagster_type.typing_type if context.dagster_type else typing.Any
    return None if typing_type in (typing.Any, object, None) else typing_type


def unsupported(context: dg.InputContext, wanted: object, store: str, names: list[str]) -> TypeError:
    shown = getattr(wanted, "__name__", repr(wanted))
    return TypeError(
        f"{context.asset_key.to_user_string()} cannot be loaded as {shown} by the {store} IO manager; "
        f"annotate the input as one of: {', '.join(names)}"
    )


def from_dataset(dataset: ds.Dataset, wanted: type) -> object:
    """A lake selection (one month, a range, every month) as the wanted type."""
    if wanted is ds.Dataset:
        return dataset
    if wanted is duckdb.DuckDBPyRelation:
        # DuckDB scans the dataset itself, pushing column selection and filters into the parquet reads.
        return duckdb.connect().from_arrow(dataset)
    if wanted is pa.RecordBatchReader:
        return dataset.scanner(batch_size=BATCH_ROWS).to_reader()
    table = dataset.to_table()
    return table.to_pandas() if wanted is pd.DataFrame else table


def from_reader(open_reader: Callable[[], pa.RecordBatchReader], wanted: type) -> object:
    """A warehouse selection, streamed from the engine, as the wanted type."""
    reader = open_reader()
    if wanted is pa.RecordBatchReader:
        return reader
    table = reader.read_all()
    return table.to_pandas() if wanted is pd.DataFrame else table


def to_arrow(obj: object) -> pa.Table | pa.RecordBatchReader | None:
    """A user's output as Arrow (a DataFrame's index is dropped); None for a type that is not rows."""
    if isinstance(obj, pd.DataFrame):
        # pandas' schema metadata would make every store think the schema changed between batches.
        return pa.Table.from_pandas(obj, preserve_index=False).replace_schema_metadata(None)
    if isinstance(obj, (pa.Table, pa.RecordBatchReader)):
        return obj
    if isinstance(obj, duckdb.DuckDBPyRelation):
        return obj.to_arrow_reader(BATCH_ROWS)
    return None


OUTPUT_TYPES = "pandas.DataFrame, pyarrow.Table, pyarrow.RecordBatchReader, duckdb.DuckDBPyRelation"
