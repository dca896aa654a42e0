"""Datasets: toy mixtures with exact log-density, images, and the user's own arrays."""

from .datasets import (
    DATASETS,
    DataConfig,
    Dataset,
    DatasetInfo,
    check_finite,
    list_datasets,
    load_dataset,
)
from .mixtures import GaussianMixture, grid25, ring8

__all__ = [
    "DATASETS",
    "DataConfig",
    "Dataset",
    "DatasetInfo",
    "GaussianMixture",
    "check_finite",
    "grid25",
    "list_datasets",
    "load_dataset",
    "ring8",
]
