"""The lake IO manager: publishes files and months atomically, hands back what the input asks for.

Where an asset's data lives is declared in its definition metadata: `lake_key` (one parquet file a
month), `lake_folder` (a folder a month holding the file as published), `lake_dataset` (a month of
`pickup_date=` folders behind a manifest). A user's asset without any of them is stored at
`assets/<asset key>/<partition>.parquet` (unpartitioned: `assets/<asset key>.parquet`).
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from taxi_assets.defs.io_managers.selection import input_partitions, output_partition
from taxi_assets.defs.io_managers.types import OUTPUT_TYPES, READABLE, from_dataset, to_arrow, unsupported, wanted_type
from taxi_assets.defs.metadata import parquet_metadata
from taxi_assets.defs.resources import LakeResource
from taxi_assets.storage.handles import LakeFile, LakeMonthDataset, StagedFile, StagedPartitionedMonth
from taxi_assets.storage.lake import HIVE_NULL, Lake, parquet_write_options
from taxi_assets.tlc.months import month_label, parse_month

_LAKE_TYPES = {**READABLE, ds.Dataset: "pyarrow.dataset.Dataset (lazy)", duckdb.DuckDBPyRelation: "duckdb.DuckDBPyRelation (lazy)"}
_LABEL = re.compile(r"\d{4}-\d{2}")


class LakeIOManager(dg.ConfigurableIOManager):
    """Publishes lake assets atomically in the lake (local folder or gs://) and loads them as the
    input's annotation asks: pandas, Arrow, a streamed reader, a pyarrow dataset or a DuckDB relation,
    for one month, the months a partition mapping gives, or every landed month."""

    lake: LakeResource

    # -- writes ----------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        meta = context.definition_metadata or {}
        lake = self.lake.lake
        if isinstance(obj, StagedFile) and "lake_folder" in meta:
            folder = _format(meta["lake_folder"], output_partition(context))
            key = f"{folder}/{obj.path.name}"
            lake.put_file(obj.path, key)
            # A month's raw file is one object; a format switch must not leave the other behind.
            for other in _files_in(lake, folder):
                if other != key:
                    lake.delete(other)
        elif isinstance(obj, StagedFile) and "lake_key" in meta:
            key = _format(meta["lake_key"], output_partition(context))
            context.add_output_metadata(parquet_metadata(pq.ParquetFile(obj.path)))
            lake.put_file(obj.path, key)
        elif isinstance(obj, StagedPartitionedMonth) and "lake_dataset" in meta:
            self._publish_dated_month(context, lake, meta["lake_dataset"], obj)
            return
        elif (rows := to_arrow(obj)) is not None and not {"lake_folder", "lake_dataset"} & set(meta):
            key = _format(self._template(context.asset_key, context.has_asset_partitions, meta), output_partition(context))
            with lake.staging_dir() as tmp:
                staged = tmp / "part.parquet"
                _write_parquet(rows, staged)
                context.add_output_metadata(parquet_metadata(pq.ParquetFile(staged)))
                lake.put_file(staged, key)  # atomic: readers see the old file or the new one
        else:
            raise TypeError(
                f"{context.asset_key.to_user_string()}: the lake IO manager cannot store {type(obj).__name__} "
                f"with metadata {sorted(meta)}; return one of {OUTPUT_TYPES}"
            )
        context.add_output_metadata({"dagster/uri": lake.display(key), "bytes": lake.size(key)})

    def _publish_dated_month(self, context: dg.OutputContext, lake: Lake, dataset: str, obj: StagedPartitionedMonth) -> None:
        month = month_label(parse_month(output_partition(context)))
        manifest = lake.publish_staged_month(dataset, month, obj.file_prefix, obj.folder, obj.version, expected_rows=obj.rows)
        if manifest.files:
            context.add_output_metadata(parquet_metadata(lake.parquet_file(f"{dataset}/{manifest.files[0].path}")))
        context.add_output_metadata(
            {
                "dagster/uri": lake.display(dataset),
                "dagster/row_count": manifest.rows,
                "files": len(manifest.files),
                "pickup_dates": len({e.path.split("/")[0] for e in manifest.files}),
                "version": manifest.version,
                "manifest": lake.display(lake.manifest_key(dataset, month)),
            }
        )

    @staticmethod
    def _template(key: dg.AssetKey, partitioned: bool, meta: dict) -> str:
        """Where an asset's partitions are stored: its `lake_key`, else under assets/<asset key>/."""
        if "lake_key" in meta:
            return meta["lake_key"]
        base = "assets/" + "/".join(key.path)
        return f"{base}/{{month}}.parquet" if partitioned else f"{base}.parquet"

    # -- reads -----------------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> object:
        upstream = context.upstream_output
        meta = upstream.definition_metadata or {}
        lake = self.lake.lake
        wanted = wanted_type(context)
        keys = input_partitions(context)
        if wanted in (None, LakeFile, LakeMonthDataset):
            if keys is None and context.has_asset_partitions:
                raise unsupported(context, "every month as one handle", "lake", list(_LAKE_TYPES.values()))
            if keys is not None and len(keys) > 1:
                raise unsupported(context, f"{len(keys)} months as one handle", "lake", list(_LAKE_TYPES.values()))
            return self._handle(lake, meta, upstream.asset_key, context.has_asset_partitions, keys[0] if keys else None)
        if wanted not in _LAKE_TYPES:
            raise unsupported(context, wanted, "lake", list(_LAKE_TYPES.values()) + ["LakeFile / LakeMonthDataset (one month)"])
        return from_dataset(self._dataset(context, lake, meta, keys), wanted)

    def month_handle(self, key: dg.AssetKey, meta: dict, partition: str) -> LakeFile | LakeMonthDataset:
        """What an unannotated input of one month of the asset gets, without an input context
        (a ranged run's chain reads each month through this: assets/ranged.py)."""
        return self._handle(self.lake.lake, meta, key, True, partition)

    def _handle(self, lake: Lake, meta: dict, key: dg.AssetKey, partitioned: bool, partition: str | None) -> LakeFile | LakeMonthDataset:
        name = key.to_user_string()
        where = f" {_format('{month}', partition)}" if partition is not None else ""
        if "lake_folder" in meta:
            folder = _format(meta["lake_folder"], partition)
            files = _files_in(lake, folder)
            if not files:
                raise FileNotFoundError(f"{name}{where} is not in the lake ({lake.display(folder)}): materialize it first")
            return LakeFile(lake, files[0])
        if "lake_dataset" in meta:
            return LakeMonthDataset(lake, meta["lake_dataset"], month_label(parse_month(partition)), meta.get("partition_column", "pickup_date"))
        path = _format(self._template(key, partitioned, meta), partition)  # a `lake_key`, or where a user's asset was stored
        if not lake.exists(path):
            raise FileNotFoundError(f"{name}{where} is not in the lake ({lake.display(path)}): materialize it first")
        return LakeFile(lake, path)

    def _dataset(self, context: dg.InputContext, lake: Lake, meta: dict, keys: list[str] | None) -> ds.Dataset:
        """The selected partitions' files as one lazy dataset; every landed one when `keys` is None."""
        name = context.upstream_output.asset_key.to_user_string()
        if "lake_dataset" in meta:
            dataset, column = meta["lake_dataset"], meta.get("partition_column", "pickup_date")
            months = [month_label(parse_month(k)) for k in keys] if keys is not None else _landed(lake, f"{dataset}/_manifests", ".json")
            manifests = {m: lake.read_manifest(dataset, m) for m in months}  # a month's published version, read once
            _refuse_missing(name, months, [m for m, manifest in manifests.items() if manifest is None])
            files = [f"{dataset}/{e.path}" for m in months for e in manifests[m].files]
            partitioning = ds.HivePartitioning(pa.schema([(column, pa.date32())]), null_fallback=HIVE_NULL)
            return _files_dataset(lake, files, "parquet", partitioning=partitioning, base=lake.path(dataset))
        if "lake_folder" in meta and "{month}" not in meta["lake_folder"]:
            files = _files_in(lake, meta["lake_folder"])
            return _files_dataset(lake, files, "csv" if files and ".csv" in files[0] else "parquet")
        if "lake_folder" in meta:
            template = meta["lake_folder"]
            parts = _partitions(lake, template, keys, folders=True)
            found = {p: _files_in(lake, _format(template, p)) for p in parts}
            _refuse_missing(name, parts, [p for p in parts if not found[p]])
            files = [f for p in parts for f in found[p]]
            return _files_dataset(lake, files, "csv" if files and ".csv" in files[0] else "parquet")
        template = self._template(context.asset_key, context.has_asset_partitions, meta)
        if keys is None and "{month}" not in template:
            files = [template] if lake.exists(template) else []
        else:
            parts = _partitions(lake, template, keys, folders=False)
            files = [_format(template, p) for p in parts]
            if keys is not None:  # (listed partitions exist)
                _refuse_missing(name, parts, [p for p, f in zip(parts, files) if not lake.exists(f)])
        return _files_dataset(lake, files, "parquet")


# -- helpers ---------------------------------------------------------------------------------
def _format(template: str, partition: str | None) -> str:
    if "{month}" not in template:
        return template
    if partition is None:
        raise ValueError(f"lake path {template!r} needs a partition")
    return template.format(month=month_label(parse_month(partition)) if _is_month(partition) else partition)


def _is_month(partition: str) -> bool:
    try:
        parse_month(partition)
        return True
    except ValueError:
        return False


def _partitions(lake: Lake, template: str, keys: list[str] | None, folders: bool) -> list[str]:
    """The given partitions, or every one found in the lake (the labels in the template's place)."""
    if keys is not None:
        return keys
    parent, _, leaf = template.rpartition("/")
    if "{month}" in parent:
        raise ValueError(f"lake path {template!r}: the partition must be in the last part to list every partition")
    prefix, _, suffix = leaf.partition("{month}")
    pattern = re.compile(re.escape(prefix) + r"(.+)" + re.escape(suffix) + r"\Z")
    # Folders are found through the files in them: a bucket has no folders of its own to list.
    infos = lake.fs.get_file_info(pafs.FileSelector(lake.path(parent), allow_not_found=True, recursive=folders))
    prefix = lake.path(parent) + "/"
    names = {
        i.path[len(prefix):].split("/")[0] if folders else i.base_name
        for i in infos
        if i.type == pafs.FileType.File and ".tmp-" not in i.base_name and (folders or "/" not in i.path[len(prefix):])
    }
    return sorted(m.group(1) for name in names if (m := pattern.match(name)))


def _landed(lake: Lake, folder: str, suffix: str) -> list[str]:
    infos = lake.fs.get_file_info(pafs.FileSelector(lake.path(folder), allow_not_found=True))
    return sorted(
        i.base_name[: -len(suffix)] for i in infos if i.base_name.endswith(suffix) and _LABEL.fullmatch(i.base_name[: -len(suffix)])
    )


def _refuse_missing(name: str, parts: list[str], missing: list[str]) -> None:
    if missing:
        shown = [month_label(parse_month(p)) if _is_month(p) else p for p in missing]
        raise FileNotFoundError(
            f"{name}: {len(missing)} of the {len(parts)} partitions asked for are not in the lake "
            f"({', '.join(shown[:6])}{'...' if len(shown) > 6 else ''}): materialize them first"
        )


def _files_dataset(lake: Lake, keys: list[str], fmt: str, partitioning=None, base: str | None = None) -> ds.Dataset:
    """One dataset over the files; a column some months lack (an older schema era) reads as null."""
    if not keys:
        return ds.dataset([], schema=pa.schema([]), format=fmt)
    paths = [lake.path(k) for k in keys]
    schemas = [ds.dataset(lake.path(k), filesystem=lake.fs, format=fmt).schema for k in _one_per_month(keys)]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    if partitioning is not None:
        schema = pa.unify_schemas([schema, partitioning.schema])
    return ds.dataset(paths, schema=schema, filesystem=lake.fs, format=fmt, partitioning=partitioning, partition_base_dir=base)


def _one_per_month(keys: list[str]) -> list[str]:
    """One file of each month (files of a month share a schema): a schema read per month, not per file."""
    seen, picked = set(), []
    for key in keys:
        label = _LABEL.search(key)
        mark = label.group(0) if label else key
        if mark not in seen:
            seen.add(mark)
            picked.append(key)
    return picked


def _files_in(lake: Lake, folder: str) -> list[str]:
    infos = lake.fs.get_file_info(pafs.FileSelector(lake.path(folder), allow_not_found=True))
    prefix = lake.path(folder) + "/"
    return sorted(
        f"{folder}/{i.path[len(prefix):]}" for i in infos if i.type == pafs.FileType.File and ".tmp-" not in i.base_name
    )


def _write_parquet(rows: pa.Table | pa.RecordBatchReader, path: Path) -> None:
    reader = rows.to_reader() if isinstance(rows, pa.Table) else rows
    with pq.ParquetWriter(path, reader.schema, **parquet_write_options(reader.schema)) as writer:
        for batch in reader:
            writer.write_batch(batch)
