"""Datasets: toy mixtures with exact log-density, images, stacked digits (1,000 modes),
and the user's own arrays."""

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
from .stacked import stack_images, triple_codes

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
    "stack_images",
    "triple_codes",
]
