r"""How good a VAE's amortised guide is: ELBO, IWAE bound, joint KL and PSIS k-hat.

For each data point x the importance log-weights
:math:`\log w_k = \log p_\theta(x, z_k) - \log q_\phi(z_k|x)`, :math:`z_k \sim q_\phi(z|x)`,
give

- the ELBO, :math:`\frac1K\sum_k \log w_k`, and the IWAE bound,
  :math:`\log\frac1K\sum_k w_k` (Burda et al., 2016), both lower bounds of
  :math:`\log p_\theta(x)`, the second tighter;
- the joint KL, :math:`KL(q_\phi(x,z)\,\|\,p_\theta(x,z)) = -E_{p_{data}}[ELBO] - H[p_{data}]`
  (the VAE's joint KL), where the data entropy is known;
- the Pareto k-hat of the weights (Vehtari et al., 2024): the shape of the fitted
  generalised Pareto tail. Below 0.5 the importance estimate of
  :math:`p_\theta(x)` is reliable, above 0.7 it is not (the guide is too narrow or
  misplaced where the posterior has mass); Yao et al. (2018) use it to check
  variational approximations.

References:
[1] Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
[2] Yao, Vehtari, Simpson and Gelman, "Yes, but Did It Work?: Evaluating Variational
Inference", ICML 2018.
[3] Vehtari, Simpson, Gelman, Yao and Gabry, "Pareto Smoothed Importance Sampling",
JMLR 25(72), 2024.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..errors import UserError
from ..models import VAE

#: k-hat above which importance sampling (and hence the guide) is deemed unreliable.
KHAT_THRESHOLD = 0.7


def psis_khat(log_weights: torch.Tensor | np.ndarray) -> np.ndarray:
    """Pareto k-hat of each data point's importance weights, by :func:`arviz.psislw`.

    :param log_weights: ``(K, N)``: K particles for each of N data points.
    :returns: ``(N,)`` k-hat values. Where a point's log-weights agree to within
        rounding (100 units in the last place of their magnitude: the guide is the exact
        posterior), the weights are constant, there is no tail to fit, and ArviZ's fit of
        the rounding noise returns anything up to inf; such points get 0 ("reliable").

    Example::

        import torch
        from pyro_vigen.diagnostics import psis_khat
        log_w = torch.randn(1000, 5) * 0.5     # 1000 particles at each of 5 points
        psis_khat(log_w)                       # 5 values, all below 0.5: reliable
    """
    import arviz

    if isinstance(log_weights, torch.Tensor):
        log_weights = log_weights.detach().cpu().numpy()
    lw = np.asarray(log_weights)
    eps = np.finfo(lw.dtype if np.issubdtype(lw.dtype, np.floating) else np.float64).eps
    lw = lw.astype(np.float64).T  # arviz wants the samples last
    if lw.shape[1] < 2:
        raise UserError(f"k-hat needs at least 2 particles per data point, got {lw.shape[1]}")
    with warnings.catch_warnings():
        # arviz warns when k-hat is large; the caller reports k-hat itself.
        warnings.simplefilter("ignore", UserWarning)
        _, khat = arviz.psislw(lw)
    khat = np.asarray(khat, dtype=np.float64)
    rounding = 100 * eps * np.maximum(np.abs(lw).max(axis=1), 1.0)
    khat[np.ptp(lw, axis=1) <= rounding] = 0.0
    return khat


def vi_metrics(log_weights: torch.Tensor, *, data_entropy: float | None = None) -> dict:
    """ELBO, IWAE bound, joint KL and k-hat from ``(K, N)`` importance log-weights.

    :param float data_entropy: :math:`H[p_{data}]` in nats, where known; the x's must
        then be draws from :math:`p_{data}` for the joint KL to mean what it says.
    :returns: ``elbo`` and ``iwae`` (means over the N points), ``iwae_particles`` (K),
        ``khat_mean``, ``khat_frac_over_0_7``, ``khat`` (the ``(N,)`` array) and, with
        ``data_entropy``, ``joint_kl``.
    :param log_weights: ``(K, N)`` log-weights, K particles for each of N data points.

    Example::

        from pyro_vigen.diagnostics import vi_metrics
        log_w = vae.log_weights(x[:200], 100)    # (100, 200): vae from load_run, x its data
        m = vi_metrics(log_w)
        m["elbo"] <= m["iwae"], m["khat_mean"]   # (True, ...)
    """
    lw = torch.as_tensor(log_weights, dtype=torch.float64)
    if lw.dim() != 2:
        raise UserError(f"log_weights must have shape (K, N), got {tuple(lw.shape)}")
    if not torch.isfinite(lw).all():
        raise UserError(
            f"{int((~torch.isfinite(lw)).sum())} importance log-weight(s) are NaN or inf: "
            "the model or the guide gives a zero or non-finite density"
        )
    num_particles = lw.shape[0]
    elbo = float(lw.mean(0).mean())
    iwae = float((torch.logsumexp(lw, 0) - math.log(num_particles)).mean())
    khat = psis_khat(log_weights)  # in the input's precision, which sets the rounding
    metrics = {
        "elbo": elbo,
        "iwae": iwae,
        "iwae_particles": num_particles,
        "khat_mean": float(khat.mean()),
        "khat_frac_over_0_7": float((khat > KHAT_THRESHOLD).mean()),
        "khat": khat,
    }
    if data_entropy is not None:
        metrics["joint_kl"] = -elbo - data_entropy
    return metrics


def vi_quality(
    vae: VAE, x: torch.Tensor, num_particles: int = 1000, *, data_entropy: float | None = None
) -> dict:
    """:func:`vi_metrics` of ``vae`` at the data points ``x``.

    :param x: ``(N, ...)`` data points as the model sees them (binarised for a
        Bernoulli likelihood); draws of :math:`p_{data}` for ``joint_kl``.
    :param int num_particles: importance samples per point (K).
    :param VAE vae: the trained model.
    :param float data_entropy: :math:`H[p_{data}]` in nats, where known (gives ``joint_kl``).
    :returns: the dict of :func:`vi_metrics`.

    Example::

        from pyro_vigen.data import load_dataset, ring8
        from pyro_vigen.diagnostics import vi_quality
        from pyro_vigen.infer import load_run
        config, vae = load_run("runs/vae")
        x, entropy = load_dataset("ring8").x[:200], ring8().entropy()[0]
        vi_quality(vae, x, num_particles=100, data_entropy=entropy)["joint_kl"]
    """
    return vi_metrics(vae.log_weights(x, num_particles), data_entropy=data_entropy)
