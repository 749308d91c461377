"""The science: plain numpy/polars functions, no Dagster."""
