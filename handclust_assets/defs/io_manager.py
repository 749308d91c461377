"""Dagster IO manager: polars frames <-> per-partition Parquet files behind the DuckDB catalog."""


import dagster as dg
import polars as pl

from handclust_assets.lib import tables


def table_name(asset_key: dg.AssetKey) -> str:
    return "__".join(asset_key.path)


class DuckDBParquetIOManager(dg.ConfigurableIOManager):
    """Stores each asset partition's polars frame as `tables/<asset>/<partition>.parquet` (atomic replace).

    Loading a partitioned upstream into an unpartitioned (cross-clip) asset concatenates every partition
    that exists; partitions that failed (a bad clip) are skipped with a warning, so one bad clip never
    blocks the cross-clip results.
    """

    root: str = ""

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a polars DataFrame, got {type(obj)}")
        part = context.asset_partition_key if context.has_asset_partitions else None
        path = tables.write_table(obj, self.root or None, table_name(context.asset_key), part)
        context.add_output_metadata(
            {"rows": dg.MetadataValue.int(obj.height), "path": dg.MetadataValue.path(str(path))}
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        name = table_name(context.asset_key)
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            df = None
            try:
                df = tables.read_table(self.root or None, name, keys)
            except FileNotFoundError:
                pass
            if df is None:
                raise FileNotFoundError(f"no materialized partition of {name} among {keys[:5]}...")
            got = set(df["clip"].unique().to_list()) if "clip" in df.columns else set(keys)
            missing = [k for k in keys if k not in got]
            if missing:
                context.log.warning(f"{name}: skipping {len(missing)} partition(s) without results: {missing[:10]}")
            return df
        return tables.read_table(self.root or None, name)
