"""Data: read rating files, build the Interactions matrix, split it, load named data sets, or make synthetic ones."""
from irgan.data.datasets import DEFAULT_MIN_RATING, load_dataset
from irgan.data.interactions import Interactions
from irgan.data.netflix import read_netflix
from irgan.data.readers import from_dataframe, kcore, read_ratings
from irgan.data.splits import (
    Split,
    interactions_from_dataframe,
    leave_one_out,
    random_holdout,
    temporal_split,
    validation_split,
)
from irgan.data.synthetic import synthetic  # the function now shadows its module as irgan.data.synthetic
from irgan.errors import DataError

__all__ = [
    "DEFAULT_MIN_RATING",
    "DataError",
    "Interactions",
    "Split",
    "from_dataframe",
    "interactions_from_dataframe",
    "kcore",
    "leave_one_out",
    "load_dataset",
    "random_holdout",
    "read_netflix",
    "read_ratings",
    "synthetic",
    "temporal_split",
    "validation_split",
]
