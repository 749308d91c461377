import dagster as dg

from handclust_assets.defs.segments import assets

defs = dg.Definitions(assets=assets.assets, asset_checks=assets.checks)
