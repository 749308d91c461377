"""HandClust: label-free activity discovery in egocentric work video, as a Dagster asset graph."""

__version__ = "0.1.0"
