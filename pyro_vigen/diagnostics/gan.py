r"""What a GAN's discriminator itself says about the two KL directions and the JSD.

The discriminator's logit :math:`f(x)` estimates :math:`\log p_{data}(x)/p_g(x)`
(exactly so at the optimal discriminator of the balanced logistic loss), so

- ``disc_kl_forward`` = :math:`E_{data}[f(x)] \approx KL(p_{data}\,\|\,p_g)`,
- ``disc_kl_reverse`` = :math:`E_{g}[-f(x)] \approx KL(p_g\,\|\,p_{data})`,
- ``jsd`` = :math:`\log 2 - L/2`, with the discriminator's loss
  :math:`L = -E_{data}[\log D(x)] - E_g[\log(1 - D(x))]`, :math:`D = \sigma(f)`: at the
  optimal discriminator :math:`L = 2\log 2 - 2\,JSD(p_{data}\,\|\,p_g)` (Goodfellow et
  al., 2014, theorem 1).

Each comes with a 95% interval, ``<key>_interval``: the estimate :math:`\pm 1.96`
standard errors of its sample means over the scored points. It is the sampling noise of
those points given the trained discriminator; how far the discriminator is from optimal
is not in it.

They are the discriminator's view, not independent measurements: a discriminator that
has fallen behind its generator underestimates all three, and ``jsd`` is negative when
it does worse than chance. Compare them with the sample-based ``kl_forward`` and
``kl_reverse``.

A packed GAN's discriminator (PacGAN, ``GANConfig.pack`` = m > 1) scores packs of m
points: its logit estimates :math:`\log p_{data}(x_1, \dots, x_m) / p_g(x_1, \dots, x_m)
= \sum_i \log p_{data}(x_i)/p_g(x_i)`, whose means are m times the per-point KLs, so the
two KL estimates divide by m and stay per point. Its loss, though, measures the JSD of
the product distributions :math:`p_{data}^m` and :math:`p_g^m`, which is not a
per-point JSD (it grows with m towards :math:`\log 2`): it is reported as
``pack_jsd``, in place of ``jsd``.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch.nn import functional as F

from ..config import require_positive
from ..errors import UserError
from ..models import pack_rows

_CHUNK = 8192
#: The standard normal's 97.5% quantile: 95% intervals.
_Z95 = 1.959963984540054
#: How the intervals are made, in words (``interval_method`` of ``metrics.json``).
INTERVAL_METHOD = (
    "mean +- 1.96 standard errors over the scored points, given the trained discriminator"
)


class Discriminating(Protocol):
    """What these estimates need of a GAN: the discriminator's logit of each row."""

    def logits(self, x: torch.Tensor) -> torch.Tensor: ...


@torch.no_grad()
def discriminator_estimates(
    gan: Discriminating,
    data: torch.Tensor,
    generated: torch.Tensor,
    *,
    pack: int = 1,
    seed: int = 0,
) -> dict:
    """``disc_kl_forward``, ``disc_kl_reverse`` and ``jsd`` (see the module) in nats.

    With ``pack`` = m > 1 the points are shuffled (so sorted data still gives packs of
    independent draws), the last ``len % m`` dropped, and the rest cut into packs of m
    consecutive points for ``gan.logits``; the KL estimates are the packs' divided by m
    (per point), and the JSD is the packs' own, ``pack_jsd`` (see the module).

    :param gan: a model with ``logits(x) -> (N,)``, e.g.
        :class:`~pyro_vigen.models.VariationalGAN`; packed, it takes packs as
        :meth:`~pyro_vigen.models.VariationalGAN.packs` makes them.
    :param data: data points as the discriminator was trained on them.
    :param generated: points drawn from the generator.
    :param int pack: points per pack of the discriminator, ``gan.config.pack``.
    :param int seed: seed of the shuffle before packing (unused with ``pack`` = 1).
    :raises ValueError: fewer points than one pack, or logits that are NaN or inf.
    :returns: ``{"disc_kl_forward": float, "disc_kl_reverse": float, "jsd": float}``, with
        ``pack_jsd`` for ``jsd`` when ``pack`` > 1, and for each its 95% interval
        ``<key>_interval``, ``[lo, hi]`` (see the module; ``None`` with one point or pack
        on a side).

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import discriminator_estimates
        from pyro_vigen.infer import load_run
        config, gan = load_run("runs/gan")
        est = discriminator_estimates(gan, load_dataset("ring8").x, gan.sample(5000))
        est["disc_kl_forward"], est["disc_kl_reverse"], est["jsd"]
    """
    require_positive("pack", pack, integer=True)
    gen = torch.Generator().manual_seed(seed)
    real = _logits(gan, _packs(data, pack, gen, "data"), "data")
    fake = _logits(gan, _packs(generated, pack, gen, "generated"), "generated")
    # -log D = softplus(-f) and -log(1 - D) = softplus(f), stable for any logit.
    loss_real, loss_fake = F.softplus(-real), F.softplus(fake)
    jsd = "jsd" if pack == 1 else "pack_jsd"
    # (estimate, its variance): sample means of independent points, so variances add.
    estimates = {
        "disc_kl_forward": (real.mean() / pack, _var_of_mean(real) / pack**2),
        "disc_kl_reverse": (-fake.mean() / pack, _var_of_mean(fake) / pack**2),
        jsd: (
            math.log(2) - (loss_real.mean() + loss_fake.mean()) / 2,
            (_var_of_mean(loss_real) + _var_of_mean(loss_fake)) / 4,
        ),
    }
    out = {}
    for key, (value, var) in estimates.items():
        value, half = float(value), _Z95 * math.sqrt(var)
        out[key] = value
        out[f"{key}_interval"] = [value - half, value + half] if math.isfinite(half) else None
    return out


def _var_of_mean(x: torch.Tensor) -> float:
    """The variance of ``x.mean()`` (NaN for one value)."""
    return float(x.var()) / len(x) if len(x) > 1 else math.nan


def _packs(x: torch.Tensor, pack: int, gen: torch.Generator, what: str) -> torch.Tensor:
    """``x`` shuffled and cut into packs; ``x`` itself when ``pack`` is 1."""
    if pack == 1:
        return x
    if x.shape[0] < pack:
        raise UserError(f"{x.shape[0]} {what} point(s) do not fill one pack of {pack}")
    n = x.shape[0] // pack * pack
    return pack_rows(x[torch.randperm(x.shape[0], generator=gen)[:n]], pack)


def _logits(gan: Discriminating, x: torch.Tensor, what: str) -> torch.Tensor:
    if x.shape[0] == 0:
        raise UserError(f"no {what} points to score")
    out = torch.cat([gan.logits(x[s : s + _CHUNK]).double() for s in range(0, len(x), _CHUNK)])
    if not torch.isfinite(out).all():
        raise UserError(
            f"the discriminator gives NaN or inf logits on {int((~torch.isfinite(out)).sum())} "
            f"{what} point(s); its training has diverged"
        )
    return out
