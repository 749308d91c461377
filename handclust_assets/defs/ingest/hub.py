"""Optional hub fetch: named tar shards of a gated Hugging Face dataset into the watched folder.

The `fetch_hub_shards` job downloads the shards configured on the `hub_shards` resource (or given in the run
config) with `lib.shards.fetch_shards`; the folder sensor then adds their video members as clips. Without a token,
in huggingface_hub's offline mode, or when the endpoint cannot be reached, the run succeeds having fetched
nothing and says why (a warning in the run's log); a shard that cannot be fetched (no access,
not in the dataset) fails the run with each name and reason, after the others were fetched.
"""

import dagster as dg
from pydantic import Field

from handclust_assets.defs.resources import HandclustSettings, ShardHubResource


class FetchShardsConfig(dg.Config):
    shards: list[str] = Field(default=[], description="Shard paths to fetch now; empty: the hub_shards resource's.")


@dg.op(description="Download named tar shards of the configured hub dataset into the watched folder (skipped, "
       "with the reason, when offline or without a token).")
def fetch_shards_op(context: dg.OpExecutionContext, config: FetchShardsConfig, hub_shards: ShardHubResource,
                    settings: HandclustSettings) -> None:
    from handclust_assets.lib.shards import fetch_shards

    names, repo = list(config.shards) or hub_shards.shard_names(), hub_shards.repo()
    if not repo or not names:
        context.log.warning("nothing to fetch: set the hub_shards resource's repo_id and shards "
                            "($HANDCLUST_HUB_REPO, $HANDCLUST_HUB_SHARDS) or give shards in the run config")
        return
    res = fetch_shards(repo, names, settings.videos(), token=hub_shards.token or None,
                       endpoint=hub_shards.endpoint or None, revision=hub_shards.revision or None,
                       timeout_s=hub_shards.timeout_s)
    for path in res.fetched:
        context.log.info(f"fetched {path}")
    if res.skipped:
        context.log.warning(f"{repo}: {res.skipped}")
    if res.errors:
        lines = "\n".join(f"- {name}: {why}" for name, why in res.errors.items())
        raise dg.Failure(description=f"{len(res.errors)} of {len(names)} shard(s) from {repo} not fetched:\n{lines}",
                         metadata={"fetched": dg.MetadataValue.int(len(res.fetched))})


@dg.job(description="Fetch the configured tar shards of a gated hub dataset (e.g. Egocentric-10K) into the watched "
        "folder; the video folder sensor then ingests their members. Offline it is skipped with the reason.",
        tags={"handclust/kind": "fetch"})
def fetch_hub_shards() -> None:
    fetch_shards_op()


jobs = [fetch_hub_shards]
