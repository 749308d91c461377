import dagster as dg

from handclust_assets.defs.evaluation import anomalies, assets, cost

defs = dg.Definitions(assets=[*assets.assets, *anomalies.assets, *cost.assets], asset_checks=assets.checks)
