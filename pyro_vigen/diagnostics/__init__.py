"""Diagnostics: both KL directions, mode coverage (also over stacked digits' 1,000 modes),
VI quality, image features, run export.

:func:`diagnose` writes a run's ``metrics.json`` (its keys are listed there) and
``diagnostics.nc``.
"""

from .classifier import classifier_kl, classifier_kl_both, cross_fitted_logits
from .gan import discriminator_estimates
from .images import (
    FeatureClassifier,
    classifier_key,
    dataset_digest,
    density_coverage,
    feature_classifier,
    feature_kl,
    image_metrics,
    precision_recall,
    shuffled_images,
    train_feature_classifier,
)
from .kl import (
    KL_METHODS,
    KLEstimate,
    gaussian_fit_kl_both,
    gaussian_kl,
    kl_directions,
    mc_kl,
)
from .knn import knn_kl, knn_kl_both
from .modes import label_coverage, mode_coverage
from .run import diagnose
from .stacked import (
    DigitLabeller,
    channel_labels,
    digit_labeller,
    stacked_modes,
    train_digit_labeller,
)
from .vi_quality import psis_khat, vi_metrics, vi_quality

__all__ = [
    "FeatureClassifier",
    "KLEstimate",
    "KL_METHODS",
    "classifier_kl",
    "classifier_kl_both",
    "classifier_key",
    "cross_fitted_logits",
    "dataset_digest",
    "density_coverage",
    "diagnose",
    "discriminator_estimates",
    "feature_classifier",
    "feature_kl",
    "gaussian_fit_kl_both",
    "gaussian_kl",
    "image_metrics",
    "kl_directions",
    "knn_kl",
    "knn_kl_both",
    "label_coverage",
    "mc_kl",
    "mode_coverage",
    "precision_recall",
    "psis_khat",
    "shuffled_images",
    "train_feature_classifier",
    "vi_metrics",
    "vi_quality",
    "DigitLabeller",
    "channel_labels",
    "digit_labeller",
    "stacked_modes",
    "train_digit_labeller",
]
