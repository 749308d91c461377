"""Clips as dynamic partitions: one per video file, added by the video folder sensor."""

import dagster as dg

clip_partitions = dg.DynamicPartitionsDefinition(name="clips")
