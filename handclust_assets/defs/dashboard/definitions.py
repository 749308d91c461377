import dagster as dg

from handclust_assets.defs.dashboard import assets

defs = dg.Definitions(assets=assets.assets)
