import dagster as dg

from handclust_assets.defs.counting import assets

defs = dg.Definitions(assets=assets.assets)
