r"""Diagnostics of a model with an encoder: reconstructions and the aggregate posterior.

A family with an encoder (the AAE, ALI; see
:data:`~pyro_vigen.diagnostics.run.EXTRA_DIAGNOSTICS`) is a generator *and* an
inference network. Two questions the KL between the data and the samples cannot answer:

- **Reconstruction** (:func:`reconstruction_metrics`): does x -> z -> x come back to x?
  An AAE is trained to; ALI only through the joint match, and its reconstructions are
  known to be faithful in kind (the same mode) rather than in place [1].
- **Aggregate posterior** (:func:`latent_metrics`): does
  :math:`q(z) = \mathbb{E}_{p_{data}(x)}[q(z|x)]` match the prior :math:`p(z)`, as
  sampling by decoding draws of :math:`p(z)` assumes? The AAE's GAN on z targets
  exactly :math:`KL(q(z)\,\|\,p(z))`.

References:
[1] Dumoulin et al., "Adversarially Learned Inference", ICLR 2017, section 4.
[2] Makhzani et al., "Adversarial Autoencoders", arXiv:1511.05644.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..errors import UserError
from .checks import Samples, as_points
from .kl import kl_directions
from .modes import nearest_modes


def reconstruction_metrics(
    x: Samples, reconstructions: Samples, centers: Samples | None = None
) -> dict:
    """How far reconstructions land from their points.

    :param x: ``(N, ...)`` data points (or images), a tensor or an array.
    :param reconstructions: the model's reconstruction of each, same shape.
    :param centers: ``(K, D)`` known mode centres of points, or ``None``.
    :returns: ``recon_mse``, the mean squared error per dimension;
        ``recon_rel_error``, the mean squared distance over the data's total variance
        (0: exact; 1: as far as the data's mean is on average); with ``centers``,
        ``recon_same_mode``, the share of points whose reconstruction is nearest to
        the same centre as the point.
    :raises ValueError: no batch dimension, shapes that differ, fewer than 2 points, NaN/inf.

    Example::

        import torch
        from pyro_vigen.diagnostics.autoencoding import reconstruction_metrics
        x = torch.randn(1000, 2)
        reconstruction_metrics(x, torch.zeros_like(x))["recon_rel_error"]   # about 1
    """
    x, reconstructions = torch.as_tensor(x), torch.as_tensor(reconstructions)
    if x.dim() < 2:
        raise UserError(f"points must have a batch dimension, (N, ...), got shape {tuple(x.shape)}")
    if x.shape != reconstructions.shape:
        raise UserError(
            f"reconstructions have shape {tuple(reconstructions.shape)}, the points {tuple(x.shape)}"
        )
    flat = as_points(x.flatten(1), "points")
    rec = as_points(reconstructions.flatten(1), "reconstructions")
    if len(flat) < 2:
        raise UserError("reconstruction metrics need at least 2 points")
    dist2 = ((flat - rec) ** 2).sum(1)
    total_var = float(flat.var(0, ddof=1).sum())
    metrics = {
        "recon_mse": float(dist2.mean() / flat.shape[1]),
        "recon_rel_error": float(dist2.mean() / total_var) if total_var > 0 else float("nan"),
    }
    if centers is not None:
        same = nearest_modes(flat, centers) == nearest_modes(rec, centers)
        metrics["recon_same_mode"] = float(np.mean(same))
    return metrics


def latent_metrics(
    encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    *,
    seed: int = 0,
) -> dict:
    r"""Both KL directions between the aggregate posterior :math:`q(z)` and the prior :math:`\mathcal{N}(0, I)`.

    One code :math:`z_i \sim q(z|x_i) = \mathcal{N}(\mu(x_i), \sigma(x_i)^2)` per point
    is a draw of :math:`q(z)`; as many draws of the prior are compared with them by
    :func:`~pyro_vigen.diagnostics.kl_directions` (k-NN up to 3 dimensions, classifier
    above), the prior in the data's place.

    :param encode: ``x -> (loc, scale)`` of :math:`q(z|x)`.
    :param x: the points to encode (one code each).
    :param int seed: seed of the codes' noise, the prior's draws and the estimator.
    :returns: ``latent_kl_forward``, :math:`KL(p(z)\,\|\,q(z))`; ``latent_kl_reverse``,
        :math:`KL(q(z)\,\|\,p(z))`, the term the AAE's GAN on z minimises; their
        ``_interval`` s; ``latent_kl_method``.

    Example::

        import torch
        from pyro_vigen.diagnostics.autoencoding import latent_metrics
        def encode(x):   # q(z|x) = N(0, 1) whatever x: q(z) is the prior
            return torch.zeros(len(x), 2), torch.ones(len(x), 2)
        latent_metrics(encode, torch.randn(5000, 2))["latent_kl_reverse"]   # about 0
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        loc, scale = encode(x)
    loc, scale = loc.cpu(), scale.cpu()
    codes = loc + scale * torch.randn(loc.shape, generator=gen)
    prior = torch.randn(loc.shape, generator=gen)
    kl = kl_directions(prior, codes, seed=seed)
    return {
        "latent_kl_forward": kl["forward"],
        "latent_kl_reverse": kl["reverse"],
        "latent_kl_forward_interval": kl["forward_interval"],
        "latent_kl_reverse_interval": kl["reverse_interval"],
        "latent_kl_method": kl["method"],
        "latent_interval_method": kl["interval_method"],
    }
