"""Mode coverage: how many modes of a mixture (or classes of a dataset) a model produces.

The measure of the PacGAN synthetic experiments (Lin et al., "PacGAN: The power of two
samples in generative adversarial networks", NeurIPS 2018), after Srivastava et al.,
"VEEGAN", NeurIPS 2017: a sample is *high quality* when it lies within ``threshold``
standard deviations (Euclidean distance) of its nearest mode centre; a mode is
*captured* when at least one high-quality sample is nearest to it; ``mode_kl`` is
:math:`KL(h\\,\\|\\,U)` between the histogram h of the high-quality samples over the
modes and the uniform distribution U over the K modes, between 0 (even spread) and
:math:`\\log K` (all on one mode).

Labelled images (:func:`~pyro_vigen.diagnostics.image_metrics`) take the same three
definitions over the classes, through :func:`label_coverage`: a sample's mode is the
class a classifier gives it, and it is high quality when it is a clear image of the
data, the counterpart of "near a centre": the classifier is confident of that class
(against the others and a class of junk images) and its features lie inside the
data's k-NN manifold. Junk (blank, constant or noise images) is then no mode's sample,
and captures nothing.

Points whose modes the user knows (not a toy mixture) take the same definitions, with
the user's centres and standard deviation: :func:`user_modes`, which ``pyro-vigen
diagnose --centers FILE --std S`` uses.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from ..config import require_positive
from ..data.datasets import read_array_file
from ..errors import UserError
from .checks import Samples, as_points

_CHUNK = 65_536  # rows per distance computation: bounds memory at N x K x D


def mode_coverage(samples: Samples, centers: Samples, std: float, threshold: float = 3.0) -> dict:
    """Modes captured, high-quality fraction and mode KL of samples against known modes.

    :param samples: ``(N, D)`` model samples.
    :param centers: ``(K, D)`` mode centres.
    :param float std: per-axis standard deviation of the modes.
    :param float threshold: high quality within ``threshold * std`` of the nearest centre.
    :returns: ``num_modes``, ``modes_captured``, ``hq_fraction``, ``mode_kl`` and
        ``counts`` (high-quality samples per mode, a list of K ints). With no
        high-quality sample at all, no mode is captured and ``mode_kl`` is
        :math:`\\log K`, its largest value: a model that produces nothing near any mode
        is scored as badly as one that produces a single mode.
    :raises ValueError: dimensions that differ, NaN/inf, non-positive ``std`` or
        ``threshold``.

    Example::

        from pyro_vigen.data import ring8
        from pyro_vigen.diagnostics import mode_coverage
        mixture = ring8()
        cov = mode_coverage(mixture.sample(2000), mixture.centers, mixture.std)
        cov["modes_captured"], cov["hq_fraction"]     # (8, about 0.99)
    """
    nearest, dist2 = nearest_modes(samples, centers, distances=True)
    require_positive("std", std)
    require_positive("threshold", threshold)
    num_modes = len(as_points(centers, "centers"))
    return label_coverage(nearest, num_modes, high_quality=dist2 <= (threshold * std) ** 2)


def nearest_modes(samples: Samples, centers: Samples, *, distances: bool = False):
    """The index of the nearest centre of each sample (and, with ``distances``, the
    squared distance to it, as a second array).

    :raises ValueError: dimensions that differ, NaN/inf.
    """
    x = as_points(samples, "samples")
    c = as_points(centers, "centers")
    if x.shape[1] != c.shape[1]:
        raise UserError(f"samples have dimension {x.shape[1]} but the mode centres {c.shape[1]}")
    nearest = np.empty(len(x), dtype=np.int64)
    dist2 = np.empty(len(x))
    for start in range(0, len(x), _CHUNK):
        chunk = x[start : start + _CHUNK]
        d2 = ((chunk[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        nearest[start : start + _CHUNK] = d2.argmin(1)
        dist2[start : start + _CHUNK] = d2.min(1)
    return (nearest, dist2) if distances else nearest


def label_coverage(labels: Samples, num_modes: int, high_quality: np.ndarray | None = None) -> dict:
    """:func:`mode_coverage` from each sample's mode (or class) and its quality flag.

    Images use it with the classes a classifier predicts, a sample being high quality
    when the prediction is confident and its features lie in the data's manifold (see
    :func:`~pyro_vigen.diagnostics.image_metrics`). Only high-quality samples count:
    one that is not high quality captures no mode, whatever its label.

    :param labels: ``(N,)`` integer mode of each sample, in ``[0, num_modes)``.
    :param int num_modes: number of modes K.
    :param high_quality: ``(N,)`` flags (booleans, or 0/1); ``None`` counts every sample.
    :raises ValueError: labels outside ``[0, num_modes)``, a ``high_quality`` of
        another shape, a non-positive ``num_modes``.
    :returns: the dict of :func:`mode_coverage`.

    Example::

        import numpy as np
        from pyro_vigen.diagnostics import label_coverage
        cov = label_coverage(np.array([0, 0, 1, 3]), num_modes=4)
        cov["modes_captured"], cov["counts"]    # (3, [2, 1, 0, 1])
    """
    require_positive("num_modes", num_modes, integer=True)
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_modes):
        raise UserError(f"labels must lie in [0, {num_modes}), got {labels.min()}..{labels.max()}")
    if high_quality is None:
        hq = np.ones(labels.shape, dtype=bool)
    else:
        hq = np.asarray(high_quality).reshape(-1)
        if hq.shape != labels.shape:
            raise UserError(
                f"high_quality must hold one flag per label: {hq.size} flags, {labels.size} labels"
            )
        # As flags, never as indices: 0/1 integers would otherwise pick labels by position.
        hq = hq.astype(bool)
    counts = np.bincount(labels[hq], minlength=num_modes)
    total = int(counts.sum())
    if total == 0:
        mode_kl = math.log(num_modes)
    else:
        h = counts[counts > 0] / total  # 0 log 0 = 0
        mode_kl = float((h * np.log(h * num_modes)).sum())
    return {
        "num_modes": int(num_modes),
        "modes_captured": int((counts > 0).sum()),
        "hq_fraction": total / len(labels) if len(labels) else 0.0,
        "mode_kl": mode_kl,
        "counts": [int(n) for n in counts],
    }


def load_centers(path: str | os.PathLike) -> np.ndarray:
    """Mode centres from a file: a ``K x D`` array in a format ``--data`` reads.

    :param path: a file of the suffixes :func:`~pyro_vigen.data.load_dataset` reads
        (``.npy``, ``.csv`` and the others), one centre per row.
    :returns: the ``(K, D)`` centres as float64.
    :raises ValueError: naming the file: missing, empty, unreadable, or not a finite
        ``K x D`` array of real numbers.
    """
    array = read_array_file(path, "mode centres file")
    return _checked_centers(array, str(path))


def _checked_centers(centers: Samples, what: str) -> np.ndarray:
    """``centers`` as a float64 ``(K, D)`` array, refused with ``what`` named unless finite."""
    array = centers.detach().cpu().numpy() if isinstance(centers, torch.Tensor) else centers
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise UserError(f"{what}: mode centres must be real numbers, got dtype {array.dtype}")
    if array.ndim != 2 or 0 in array.shape:
        raise UserError(
            f"{what}: expected a K x D array of mode centres (one per row), got shape {array.shape}"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        raise UserError(
            f"{what}: {int(bad.sum())} centre coordinate(s) are NaN or inf "
            f"(first in centre {int(np.argwhere(bad)[0, 0])})"
        )
    return array.astype(np.float64)


def user_modes(
    centers: str | os.PathLike | Samples | None, std: float | None, data_shape: tuple[int, ...]
) -> tuple[np.ndarray, float, str] | None:
    """The known modes a user gives for :func:`mode_coverage`, checked against the data.

    :func:`~pyro_vigen.diagnostics.diagnose` scores mode coverage with them exactly as
    with a built-in mixture's: ``std`` is the per-axis standard deviation of each mode,
    and a sample within ``3 * std`` of its nearest centre is high quality.

    :param centers: a file (see :func:`load_centers`) or a ``(K, D)`` array of mode
        centres; ``None`` for none.
    :param float std: the modes' standard deviation; needed with ``centers``, and only
        with them.
    :param tuple data_shape: shape of one data point: ``(D,)``, the centres' dimension.
    :returns: ``(centres, std, source)``, source a line saying where the centres come
        from, for ``metrics.json``; ``None`` without ``centers``.
    :raises ValueError: ``std`` without ``centers`` or ``centers`` without ``std``, a
        ``std`` that is not a finite number > 0, a bad centres file, centres of another
        dimension than the data, or image data (whose modes are classes).
    """
    if centers is None:
        if std is not None:
            raise UserError(
                "std is the spread of known mode centres; give their file with centers too",
                field="centers",
            )
        return None
    if std is None:
        raise UserError(
            "centers need std, the modes' standard deviation, which "
            "sets the high-quality radius (3 std)",
            field="std",
        )
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std):
        raise UserError(f"std must be a finite number > 0, got {std!r}", field="std")
    require_positive("std", std)
    if len(data_shape) != 1:
        raise UserError(
            f"centers apply to points; this data is images of shape {data_shape}, "
            "whose modes are the classes of the feature classifier"
        )
    if isinstance(centers, (str, os.PathLike)):
        array, source = load_centers(centers), str(centers)
    else:
        array, source = _checked_centers(centers, "centers"), "the centres given"
    if array.shape[1] != data_shape[0]:
        raise UserError(
            f"{source}: the mode centres have dimension {array.shape[1]} but the data "
            f"has dimension {data_shape[0]}"
        )
    return array, float(std), f"{source} ({len(array)} centres, std {std:g})"
