import dagster as dg

from handclust_assets.defs.clusters import assets, timeline

defs = dg.Definitions(assets=[*assets.assets, *timeline.assets], asset_checks=assets.checks)
