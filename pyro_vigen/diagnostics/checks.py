"""Checks shared by the estimators: sample arrays as finite ``(N, D)`` float64 arrays."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError

#: What the estimators accept as a sample set: ``(N, D)`` points, ``(N, C, H, W)`` images
#: (flattened to ``(N, C*H*W)``) or ``(N,)`` scalars, as a tensor or an array.
Samples = torch.Tensor | np.ndarray


def as_points(x: Samples, what: str) -> np.ndarray:
    """``x`` as a float64 ``(N, D)`` array, one row per sample.

    :param str what: the argument's name, for error messages.
    :raises ValueError: not real numbers, no samples, or NaN/inf values.
    """
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise UserError(f"{what} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 0 or array.shape[0] == 0:
        raise UserError(f"{what} holds no samples (shape {array.shape})")
    array = array.reshape(array.shape[0], -1).astype(np.float64, copy=False)
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise UserError(
            f"{what}: {int(bad.sum())} value(s) are NaN or inf (first in sample {row}); "
            "a model that produces them has diverged, so there is nothing to measure"
        )
    return array


def as_point_pair(p: Samples, q: Samples, names: tuple[str, str] = ("p", "q")) -> tuple:
    """Both sample sets as checked ``(N, D)`` arrays of the same dimension ``D``."""
    a, b = as_points(p, names[0]), as_points(q, names[1])
    if a.shape[1] != b.shape[1]:
        raise UserError(
            f"{names[0]} has samples of dimension {a.shape[1]} but {names[1]} of dimension "
            f"{b.shape[1]}; both must come from the same space"
        )
    return a, b


def check_count(array: np.ndarray, at_least: int, what: str, why: str) -> None:
    if array.shape[0] < at_least:
        raise UserError(f"{what} has {array.shape[0]} samples; {why} needs at least {at_least}")
