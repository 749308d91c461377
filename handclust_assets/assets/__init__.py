"""Thin Dagster wiring over the science modules, one module per group."""
