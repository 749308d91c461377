import dagster as dg

from handclust_assets.defs.evaluation import assets

defs = dg.Definitions(assets=assets.assets, asset_checks=assets.checks)
