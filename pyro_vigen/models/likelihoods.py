r"""The VAE's likelihoods: the data each one sees, and the discretised logistic for grey
levels in [0, 1]."""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution, constraints
from torch.nn import functional as F

from ..data import Dataset
from ..errors import UserError

#: Grey levels of an 8-bit image.
LEVELS = 256


def model_data(dataset: Dataset, likelihood: str) -> torch.Tensor:
    """The data as the likelihood sees it.

    ``"bernoulli"`` is a Bernoulli on images binarised at 0.5: its pixels are 0 or 1,
    so the grey levels are thresholded here. ``"discretized_logistic"`` and
    ``"continuous_bernoulli"`` model the grey levels in [0, 1] as they are, and
    ``"normal"`` any real data as it is.

    :param Dataset dataset: the data.
    :param str likelihood: the VAE's likelihood (:data:`~pyro_vigen.models.vae.LIKELIHOODS`).
    :returns: the tensor the model is trained and measured on.
    :raises ValueError: ``"discretized_logistic"`` or ``"continuous_bernoulli"`` on data
        outside [0, 1], which they do not model.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.models.likelihoods import model_data
        digits = load_dataset("digits")
        model_data(digits, "bernoulli").unique()                          # tensor([0., 1.])
        model_data(digits, "continuous_bernoulli").equal(digits.x)        # True
    """
    if likelihood == "bernoulli":
        return (dataset.x > 0.5).to(torch.get_default_dtype())
    if likelihood in ("continuous_bernoulli", "discretized_logistic"):
        lo, hi = dataset.x.min().item(), dataset.x.max().item()
        if lo < 0 or hi > 1:
            raise UserError(
                f"likelihood {likelihood!r} needs data in [0, 1], but {dataset.name!r} "
                f"spans [{lo:.3g}, {hi:.3g}]; use likelihood 'normal'"
            )
    return dataset.x


class DiscretizedLogistic(TorchDistribution):
    r"""A logistic distribution rounded to the grey levels :math:`v_k = k/(K-1)`, k = 0..K-1.

    Level :math:`v_k` gets the logistic's mass over its bin
    :math:`[v_k - h, v_k + h)`, :math:`h = 1/(2(K-1))`, and the two end levels the tails:

    .. math::

        P(v_k) = \sigma\Big(\frac{v_k + h - \mu}{s}\Big) - \sigma\Big(\frac{v_k - h - \mu}{s}\Big),
        \quad P(0) = \sigma\Big(\frac{h - \mu}{s}\Big),
        \quad P(1) = 1 - \sigma\Big(\frac{1 - h - \mu}{s}\Big),

    as in PixelCNN++ [1] and the VAEs of [2]. Unlike a density, a probability is at most
    one, so a scale shrinking on pixels that are always black cannot drive the
    likelihood to infinity; unlike the continuous Bernoulli, whose mean stays within
    about [0.06, 0.94], its mean reaches 0 and 1 (black backgrounds stay black). A value
    between levels is scored by the bin of width :math:`2h` centred on it (the
    ``digits``' 17 grey levels are read as 8-bit values).

    :param torch.Tensor loc: :math:`\mu`, any real.
    :param torch.Tensor scale: :math:`s > 0`.
    :param int levels: K, the grey levels.

    References:
    [1] Salimans, Karpathy, Chen and Kingma, "PixelCNN++: Improving the PixelCNN with
    Discretized Logistic Mixture Likelihood and Other Modifications", ICLR 2017.
    [2] Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling, "Improved Variational
    Inference with Inverse Autoregressive Flow", NeurIPS 2016.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, loc, scale, levels: int = LEVELS, validate_args=None) -> None:
        self.loc, self.scale = torch.broadcast_tensors(torch.as_tensor(loc), torch.as_tensor(scale))
        self.levels = levels
        super().__init__(self.loc.shape, validate_args=validate_args)

    @property
    def _half_bin(self) -> float:
        return 0.5 / (self.levels - 1)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return DiscretizedLogistic(
            self.loc.expand(batch_shape), self.scale.expand(batch_shape), self.levels
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        h = self._half_bin
        plus = (value + h - self.loc) / self.scale
        minus = (value - h - self.loc) / self.scale
        # sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - exp(b - a)): finite in both tails.
        inner = F.logsigmoid(plus) + F.logsigmoid(-minus) + torch.log(-torch.expm1(minus - plus))
        lowest = torch.where(value < h, F.logsigmoid(plus), inner)
        return torch.where(value > 1 - h, F.logsigmoid(-minus), lowest)

    @property
    def mean(self) -> torch.Tensor:
        # E[X] = sum over k >= 1 of (v_k - v_{k-1}) P(X >= v_k); one level at a time, so
        # memory stays that of one image batch.
        step = 1.0 / (self.levels - 1)
        total = torch.zeros_like(self.loc)
        for k in range(1, self.levels):
            total += torch.sigmoid((self.loc - (k * step - self._half_bin)) / self.scale)
        return total * step

    def icdf(self, u: torch.Tensor) -> torch.Tensor:
        """The level a uniform ``u`` falls to: the logistic's quantile, rounded to a level."""
        x = self.loc + self.scale * (torch.log(u) - torch.log1p(-u))
        return (torch.round(x * (self.levels - 1)) / (self.levels - 1)).clamp(0.0, 1.0)

    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
            return self.icdf(u.clamp(1e-7, 1 - 1e-7))
