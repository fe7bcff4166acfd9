"""Data: read rating files, build the Interactions matrix, split it and load named data sets."""
from irgan.data.datasets import load_dataset
from irgan.data.interactions import Interactions
from irgan.data.readers import from_dataframe, kcore, read_ratings
from irgan.data.splits import (
    Split,
    interactions_from_dataframe,
    leave_one_out,
    random_holdout,
    temporal_split,
    validation_split,
)
from irgan.errors import DataError

__all__ = [
    "DataError",
    "Interactions",
    "Split",
    "from_dataframe",
    "interactions_from_dataframe",
    "kcore",
    "leave_one_out",
    "load_dataset",
    "random_holdout",
    "read_ratings",
    "temporal_split",
    "validation_split",
]
