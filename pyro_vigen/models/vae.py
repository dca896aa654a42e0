"""The variational autoencoder as a Pyro model/guide pair."""

from __future__ import annotations

import dataclasses
import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ..config import Config, require_positive
from ..errors import UserError
from ..flags import setting
from ..nets import decoder_net, encoder_net
from ..nets.mlp import ACTIVATIONS
from .likelihoods import DiscretizedLogistic
from .naming import register_parts, unique_name

LIKELIHOODS = ("normal", "bernoulli", "continuous_bernoulli", "discretized_logistic")
#: Likelihoods of grey levels in [0, 1], with a learned or fixed scale.
_SCALED = ("normal", "discretized_logistic")
#: Dimension of z when :class:`VAEConfig` leaves it to the data.
DEFAULT_LATENT_DIM = {"points": 2, "images": 16}


@dataclasses.dataclass
class VAEConfig(Config):
    """Architecture of a :class:`VAE`.

    :param tuple data_shape: shape of one data point, ``(D,)`` or ``(C, H, W)``; training
        fills it from the data when it is ``None``.
    :param int latent_dim: dimension of z; ``None`` picks
        :data:`DEFAULT_LATENT_DIM`: 2 for points (a latent space one can plot), 16 for
        images (digits need more than 2 dimensions to be reconstructed at all).
    :param tuple hidden: hidden widths of the MLP encoder and decoder; ``()`` makes both
        linear (the linear-Gaussian VAE, which can represent probabilistic PCA exactly).
        Images use the small conv nets of :mod:`pyro_vigen.nets` instead.
    :param str likelihood: ``"normal"`` for continuous data; ``"discretized_logistic"``
        for grey levels in [0, 1], modelled as they are, as 8-bit levels
        (:class:`~pyro_vigen.models.likelihoods.DiscretizedLogistic`); ``"continuous_bernoulli"``,
        a density on [0, 1] (Loaiza-Ganem and Cunningham, 2019) whose mean never gets
        below about 0.06 or above 0.94, so its backgrounds are grey; ``"bernoulli"`` for
        a Bernoulli on images binarised at 0.5 (training binarises the data:
        :func:`~pyro_vigen.models.likelihoods.model_data`). ``None`` picks
        ``"discretized_logistic"`` for images and ``"normal"`` for points.
    :param float scale: fixed scale of the Normal (its standard deviation) or of the
        discretised logistic; ``None`` learns one per data dimension.
    :param str activation: hidden activation of the MLPs.

    Example::

        from pyro_vigen.models import VAE, VAEConfig
        config = VAEConfig(data_shape=(1, 8, 8), latent_dim=8)
        config.likelihood                 # 'discretized_logistic', picked for images
        vae = VAE(config)
    """

    # No flag: training takes it from the data.
    data_shape: tuple[int, ...] | None = None
    latent_dim: int | None = setting(None, help="dimension of z (default: 2; 16 for images)")
    hidden: tuple[int, ...] = setting(
        (128, 128), help="MLP hidden widths; '' for a linear encoder and decoder"
    )
    likelihood: str | None = setting(
        None,
        choices=LIKELIHOODS,
        help="normal; bernoulli (a Bernoulli on images binarised at 0.5); "
        "continuous_bernoulli or discretized_logistic (grey levels in [0, 1] as they are). "
        "(default: discretized_logistic for images, normal otherwise)",
    )
    scale: float | None = setting(
        None,
        help="fixed scale of the normal or discretized_logistic likelihood (default: learned)",
    )
    activation: str = setting("relu", choices=ACTIVATIONS, help="hidden activation of the MLPs")

    def __post_init__(self) -> None:
        if self.data_shape is not None:
            self.data_shape = tuple(self.data_shape)
            image = len(self.data_shape) == 3
            if self.likelihood is None:
                self.likelihood = "discretized_logistic" if image else "normal"
            if self.latent_dim is None:
                self.latent_dim = DEFAULT_LATENT_DIM["images" if image else "points"]
        self.hidden = tuple(self.hidden)
        if self.latent_dim is not None:
            require_positive("latent_dim", self.latent_dim, integer=True)
        if self.likelihood is not None and self.likelihood not in LIKELIHOODS:
            raise UserError(
                f"unknown likelihood {self.likelihood!r}; use one of {', '.join(LIKELIHOODS)}"
            )
        if self.scale is not None:
            require_positive("scale", self.scale)


class VAE(nn.Module):
    r"""Variational autoencoder: a Pyro ``model``/``guide`` pair over observed x and latent z.

    The generative model is :math:`p(z) = \mathcal{N}(0, I)`,
    :math:`p_\theta(x|z) = \mathcal{N}(\mu_\theta(z), \mathrm{diag}(s^2))`,
    :math:`\mathcal{CB}(\mathrm{logits}_\theta(z))` (continuous Bernoulli, a density on
    :math:`[0, 1]` per pixel [3]) or :math:`\mathrm{Bernoulli}(\mathrm{logits}_\theta(z))`
    (a probability on :math:`\{0, 1\}` per pixel); the guide is the amortised
    :math:`q_\phi(z|x) = \mathcal{N}(m_\phi(x), \mathrm{diag}(\sigma_\phi(x)^2))` with
    :math:`\sigma_\phi = \mathrm{softplus}(\cdot) + 10^{-5}` of the encoder's second half.
    Averaged over the data, the ELBO is :math:`-KL(q_\phi(x,z)\,\|\,p_\theta(x,z)) - H[p_{data}]`:
    the model stands in the second slot of the KL (mode covering).

    The continuous Bernoulli's log-density can be positive (up to about 2.77 nats per
    pixel in float32, where the parameter saturates), so its ELBO and log-likelihoods are
    on another scale from the Bernoulli's and are not comparable with them.

    Both methods take ``(x, num_data=None)``: ``x`` a minibatch, ``num_data`` the size of
    the full data set, which scales the likelihood through ``pyro.plate`` so that the ELBO
    of a minibatch is an unbiased estimate of the full-data ELBO. They work with stock
    :class:`pyro.infer.SVI` and any stock ELBO::

        vae = VAE(VAEConfig(data_shape=(2,)))
        svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), TraceMeanField_ELBO())
        svi.step(x_batch, num_data=len(x))

    With ``x=None`` the model draws from the prior and the decoder instead (see
    :meth:`model`), so that ``Predictive(vae.model, num_samples=S)(None)`` works.

    :param VAEConfig config: the architecture.
    :param str name: the Pyro name its parameters are registered under; unique by default,
        so two models in one process never share parameters.

    References:
    [1] Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    [2] Su, "Variational Inference: A Unified Framework of Generative Models and Some
    Revelations", arXiv:1807.05936.
    [3] Loaiza-Ganem and Cunningham, "The continuous Bernoulli: fixing a pervasive error
    in variational autoencoders", NeurIPS 2019.
    """

    def __init__(self, config: VAEConfig, *, name: str | None = None) -> None:
        super().__init__()
        if config.data_shape is None:
            raise UserError(
                "VAEConfig.data_shape must be set to build a VAE, e.g. VAEConfig(data_shape=(2,))"
            )
        self.config = config
        self.name = name or unique_name("vae")
        shape = config.data_shape
        self.encoder = encoder_net(shape, 2 * config.latent_dim, config.hidden, config.activation)
        self.decoder = decoder_net(config.latent_dim, shape, config.hidden, config.activation)
        if config.likelihood in _SCALED and config.scale is None:
            self.log_scale = nn.Parameter(torch.full(shape, math.log(0.1)))
        # The model registers the decoder's parameters and the guide the encoder's (with
        # the names pyro.module(name, self) would give), so stock SVI still finds all.
        self._model_parts = ("decoder", "log_scale") if hasattr(self, "log_scale") else ("decoder",)

    @property
    def event_dim(self) -> int:
        return len(self.config.data_shape)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of :math:`q_\\phi(z|x)`."""
        loc, raw = self.encoder(x).chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-5

    def likelihood(self, z: torch.Tensor) -> dist.TorchDistribution:
        """:math:`p_\\theta(x|z)` for codes of any batch shape, the data dimensions as event."""
        # Conv decoders take one batch dimension: fold extra ones (particles) in and out.
        out = self.decoder(z.reshape(-1, z.shape[-1]))
        out = out.reshape(*z.shape[:-1], *self.config.data_shape)
        if self.config.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(self.event_dim)
        if self.config.likelihood == "continuous_bernoulli":
            return dist.ContinuousBernoulli(logits=out).to_event(self.event_dim)
        scale = (
            self.log_scale.exp()
            if self.config.scale is None
            else torch.full_like(out, self.config.scale)
        ).expand_as(out)
        if self.config.likelihood == "discretized_logistic":
            return DiscretizedLogistic(out, scale).to_event(self.event_dim)
        return dist.Normal(out, scale).to_event(self.event_dim)

    def prior(self, batch_shape: torch.Size, like: torch.Tensor) -> dist.TorchDistribution:
        zeros = like.new_zeros((*batch_shape, self.config.latent_dim))
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)

    def _batch(self, x: torch.Tensor, batch_size: int | None) -> torch.Tensor:
        """``x`` with its batch dimension: one point without it is a batch of one.

        :raises ValueError: ``x`` is neither one point nor a batch of points, or
            ``batch_size`` (which sizes draws without data) is given with it.
        """
        if batch_size is not None:
            raise UserError("batch_size only applies when x is None; a batch x has its own size")
        shape = self.config.data_shape
        batched = x.dim() == len(shape) + 1
        # Sizes are traced values under torch.jit (JitTrace_ELBO), whose first run, not
        # traced, has checked them already.
        if not (batched or x.dim() == len(shape)) or (
            not torch.jit.is_tracing() and tuple(x.shape[int(batched) :]) != shape
        ):
            batch = ", ".join(("N", *map(str, shape)))
            raise UserError(
                f"x must be a batch of shape ({batch}) or one point of shape {shape}, "
                f"got shape {tuple(x.shape)}"
            )
        return x if batched else x.unsqueeze(0)

    def _plate(self, n: int, num_data: int | None, device: torch.device) -> pyro.plate:
        # The subsample indices are never used to index anything: they only tell the
        # plate the minibatch size, so that it scales log-likelihoods by num_data / n.
        return pyro.plate("data", size=num_data or n, subsample=torch.arange(n, device=device))

    def model(
        self,
        x: torch.Tensor | None = None,
        num_data: int | None = None,
        *,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """:math:`p(z)\\,p_\\theta(x|z)`, with ``x`` observed or, when ``x`` is ``None``, drawn.

        Without data the model generates, as Pyro models do with ``x=None``, so that
        :class:`pyro.infer.Predictive` draws from the prior and the decoder::

            draws = Predictive(vae.model, num_samples=1000)(None, batch_size=10)
            draws["x"].shape    # (1000, 10, *data_shape); draws["z"]: (1000, 10, latent_dim)

        With data and the guide, ``Predictive`` returns the observed ``x`` itself, as for
        any Pyro model; draws of :math:`p_\\theta(x|z)`, :math:`z \\sim q_\\phi(z|x)`
        (noisy reconstructions) come from the model with its observation removed::

            recon = Predictive(poutine.uncondition(vae.model), guide=vae.guide, num_samples=10)(x)

        :param x: a batch of shape ``(N, *data_shape)``, or one point of shape
            ``data_shape``, which the model treats as a batch of one (its sites then
            have a batch dimension of size 1); ``None`` to draw ``batch_size`` points.
        :param int num_data: the size of the full data set (see the class); ``None``
            takes the batch's size.
        :param int batch_size: how many points to draw when ``x`` is ``None`` (default 1).
        :returns: the batch: ``x`` (with its batch dimension) or the points drawn.
        :raises ValueError: ``x`` of another shape, or ``batch_size`` given with ``x``.
        """
        register_parts(self.name, self, self._model_parts)
        if x is None:
            n = 1 if batch_size is None else batch_size
            require_positive("batch_size", n, integer=True)
            like = next(self.parameters())
        else:
            x = like = self._batch(x, batch_size)
            n = x.shape[0]
        with self._plate(n, num_data, like.device):
            z = pyro.sample("z", self.prior((n,), like))
            return pyro.sample("x", self.likelihood(z), obs=x)

    def guide(
        self,
        x: torch.Tensor | None = None,
        num_data: int | None = None,
        *,
        batch_size: int | None = None,
    ) -> None:
        """:math:`q_\\phi(z|x)`, the amortised Normal encoder.

        Takes the model's arguments, ``x`` as there (one point is a batch of one);
        ``batch_size`` only so that the two share a signature, as stock inference needs.

        :raises ValueError: ``x`` is ``None`` (:math:`q_\\phi(z|x)` needs data), of
            another shape, or given with ``batch_size``.
        """
        if x is None:
            raise UserError(
                "VAE.guide needs data x to encode; to draw from the prior, run the model "
                "alone, e.g. Predictive(vae.model, num_samples=S)(None), or call vae.sample(n)"
            )
        register_parts(self.name, self, ("encoder",))
        x = self._batch(x, batch_size)
        with self._plate(x.shape[0], num_data, x.device):
            loc, scale = self.encode(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, noise: bool = True
    ) -> torch.Tensor:
        """Draw ``n`` points from the model :math:`p_\\theta(x)`.

        :param int n: how many points.
        :param generator: the source of every random number (``None``: torch's global one).
        :param bool noise: include the observation noise (a true draw of x); ``False``
            returns the likelihood's mean (sharper images, not a sample of p(x)). The
            continuous Bernoulli's mean lies in [0.063, 0.937] in float32 (its
            parameter saturates at about 16 in logits), so no mean is pure black or white.
        :returns: tensor of shape ``(n, *data_shape)``.
        """
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=device)
        px = self.likelihood(z).base_dist
        if not noise:
            return px.mean
        if self.config.likelihood == "bernoulli":
            return torch.bernoulli(px.probs, generator=generator)
        if self.config.likelihood in ("continuous_bernoulli", "discretized_logistic"):
            # Their sample() takes no generator: invert the CDF at uniforms drawn with
            # ours. Rounding in icdf can step a hair outside [0, 1].
            shape = px.batch_shape
            u = torch.rand(shape, generator=generator, device=device).clamp(1e-7, 1 - 1e-7)
            return px.icdf(u).clamp(0.0, 1.0)
        return px.loc + px.scale * torch.randn(px.loc.shape, generator=generator, device=device)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The likelihood's mean at the encoder's mean code of each ``x``."""
        loc, _ = self.encode(x)
        return self.likelihood(loc).base_dist.mean

    @torch.no_grad()
    def importance_sample(
        self, x: torch.Tensor, num_particles: int, *, chunk: int = 2**18
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws :math:`z_k \\sim q_\\phi(z|x)` and their log-weights
        :math:`\\log p_\\theta(x, z_k) - \\log q_\\phi(z_k|x)`.

        :param int chunk: at most this many (particle, data point) pairs are decoded at once.
        :returns: ``(z, log_w)`` of shapes ``(K, N, latent_dim)`` and ``(K, N)``.
        """
        require_positive("num_particles", num_particles, integer=True)
        loc, scale = self.encode(x)
        q = dist.Normal(loc, scale).to_event(1)
        per_chunk = max(1, chunk // max(x.shape[0], 1))
        zs, log_ws = [], []
        for start in range(0, num_particles, per_chunk):
            z = q.sample((min(per_chunk, num_particles - start),))  # (k, N, L)
            zs.append(z)
            log_ws.append(
                self.likelihood(z).log_prob(x)
                + self.prior(z.shape[:2], z).log_prob(z)
                - q.log_prob(z)
            )
        return torch.cat(zs), torch.cat(log_ws)

    @torch.no_grad()
    def log_weights(self, x: torch.Tensor, num_particles: int) -> torch.Tensor:
        """Importance log-weights of :meth:`importance_sample` alone, shape ``(K, N)``."""
        return self.importance_sample(x, num_particles)[1]

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, num_particles: int = 1000) -> torch.Tensor:
        """Importance-weighted estimate of :math:`\\log p_\\theta(x)` for each row of ``x``.

        :math:`\\log \\frac{1}{K}\\sum_k p_\\theta(x, z_k)/q_\\phi(z_k|x)` with
        :math:`z_k \\sim q_\\phi(z|x)`: a lower bound in expectation (the IWAE bound) that
        tightens as ``num_particles`` grows.

        :returns: tensor of shape ``(N,)``.
        """
        lw = self.log_weights(x, num_particles)
        return torch.logsumexp(lw, 0) - math.log(num_particles)
