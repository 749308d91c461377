import dagster as dg

from handclust_assets.defs.modalities import body, checks, embeddings, motion

defs = dg.Definitions(assets=[*motion.assets, *embeddings.assets, *body.assets], asset_checks=checks.model_checks)
