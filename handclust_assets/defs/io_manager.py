"""The IO manager: polars frames <-> per-partition Parquet files under the storage root, behind the DuckDB catalog.

A subclass of Dagster's generic `UPathIOManager` (paths, partitions, local or object-store roots); what it adds:
- atomic replace of each partition's file (temp + rename on a disk, one PUT on an object store) and the catalog
  refresh when a table is new (`handclust_assets.lib.tables`);
- a partitioned upstream loaded into an unpartitioned (cross-clip) asset is read as ONE frame: every partition
  that has results, concatenated; partitions without results (a bad clip, a model that is unavailable) are left
  out and named in the log, so one bad clip never blocks the cross-clip graph. No partition at all -> None.
  A partition holding the same video as another (a renamed file's old partition, a second copy: equal
  `content_hash` in the `clips` table, `lib.same_video`) is left out too and named in the log (an input's metadata
  cannot be given here: Dagster asks it for one partition key), so the cross-clip graph pools every video once;
  where the partition pooled in a group's place has no results in that table, the first of the group that has some
  stands in (`lib.same_video.stand_ins`): no footage drops out for want of its stand-in's results;
- an output that covers several partitions (a single-run backfill / automation run) is split by its `clip`
  column into one file per partition.
"""

import dagster as dg
import polars as pl
from upath import UPath

from handclust_assets.defs.resources import StorageResource
from handclust_assets.lib import tables
from handclust_assets.lib.same_video import EVERY_PARTITION, SAME_VIDEO, left_out_duplicates, stand_ins
from handclust_assets.lib.storage import Storage


def table_name(asset_key: dg.AssetKey) -> str:
    return "__".join(asset_key.path)


class PolarsParquetIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def __init__(self, store: Storage) -> None:
        self.store = store
        self._same: dict[tuple[str, ...], dict[str, str]] = {}  # `left_out_duplicates` by partition set: read once
        # per run (every step of a run pools the same clips, and an object store is asked once, not per input)
        super().__init__(base_path=UPath(store.uri(tables.TABLES), **store.storage_options))

    def get_asset_relative_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        return UPath(table_name(context.asset_key))

    def get_path_for_partition(self, context: dg.InputContext | dg.OutputContext, path: UPath, partition: str
                               ) -> UPath:
        return path / partition

    def _get_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:  # unpartitioned: <asset>/_all
        return self._base_path / table_name(context.asset_key) / f"{tables.UNPARTITIONED}{self.extension}"

    def get_metadata(self, context: dg.OutputContext, obj: pl.DataFrame) -> dict[str, dg.MetadataValue]:
        return {"rows": dg.MetadataValue.int(obj.height)}

    # ---- writing -----------------------------------------------------------------------------------------------
    def dump_to_path(self, context: dg.OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a polars DataFrame, got {type(obj)}")
        tables.write_table(obj, self.store, table_name(context.asset_key), path.stem if
                           context.has_asset_partitions else None)

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | None) -> None:
        if obj is None:
            return
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else []
        if len(keys) <= 1:
            return super().handle_output(context, obj)
        name = table_name(context.asset_key)  # one output for several clip partitions: one file per clip
        for k in keys:
            tables.write_table(obj.filter(pl.col("clip") == k), self.store, name, k)
        context.add_output_metadata({"rows": dg.MetadataValue.int(obj.height), "partitions":
                                     dg.MetadataValue.int(len(keys))})

    # ---- reading -----------------------------------------------------------------------------------------------
    def load_from_path(self, context: dg.InputContext, path: UPath) -> pl.DataFrame:  # pragma: no cover
        raise NotImplementedError("load_input reads through handclust_assets.lib.tables")

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | None:
        if not context.has_asset_partitions:  # a cross-clip table; None when it was never materialized
            name = table_name(context.asset_key)
            return tables.read_table(self.store, name) if tables.table_partitions(
                self.store, name, include_unpartitioned=True) else None
        if context.has_partition_key:  # the same clip's partition of a per-clip table
            key = context.asset_partition_key
            try:
                return tables.read_table(self.store, table_name(context.asset_key), [key])
            except FileNotFoundError as e:
                raise FileNotFoundError(f"{table_name(context.asset_key)}: partition {key!r} has no results "
                                        "(materialize it first)") from e
        name = table_name(context.asset_key)
        keys = list(context.asset_partition_keys)
        have = set(tables.table_partitions(self.store, name))
        present = [k for k in keys if k in have]
        missing = [k for k in keys if k not in have]
        if missing:
            context.log.warning(f"{name}: left out {len(missing)} of {len(keys)} clip partition(s) without results: "
                                f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        every = (context.definition_metadata or {}).get(SAME_VIDEO) == EVERY_PARTITION[SAME_VIDEO]
        wanted = tuple(sorted(keys))
        if not every and wanted not in self._same:
            self._same[wanted] = left_out_duplicates(self.store, wanted)
        same = {} if every else stand_ins(self._same[wanted], present)
        if dropped := [k for k in present if k in same]:
            pairs = [f"{k} (= {same[k]})" for k in dropped]
            context.log.warning(f"{name}: left out {len(dropped)} clip partition(s) holding the same video as another "
                                f"(renamed or copied; `handclust forget <clip>` deletes one's results): "
                                f"{', '.join(pairs[:10])}{' ...' if len(pairs) > 10 else ''}")
            present = [k for k in present if k not in same]
        return tables.read_table(self.store, name, present) if present else None


class TablesIOManager(dg.ConfigurableIOManagerFactory):
    """Result tables as per-partition Parquet under the storage root (a folder or an object-store URI)."""

    storage: StorageResource

    def create_io_manager(self, context: dg.InitResourceContext) -> PolarsParquetIOManager:
        return PolarsParquetIOManager(self.storage.store())
