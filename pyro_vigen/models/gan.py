"""The GAN as a Pyro model/guide pair over the real/fake label."""

from __future__ import annotations

import dataclasses

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..config import Config, require_positive
from ..nets import decoder_net, encoder_net
from .naming import register_parts, unique_name


@dataclasses.dataclass
class GANConfig(Config):
    """Architecture of a :class:`VariationalGAN`.

    :param tuple data_shape: shape of one data point, ``(D,)`` or ``(C, H, W)``; training
        fills it from the data when it is ``None``.
    :param int noise_dim: dimension of the generator's input noise z.
    :param tuple hidden: hidden widths of the MLP generator and discriminator (points);
        images use the small conv nets of :mod:`pyro_vigen.nets` instead.
    :param str activation: hidden activation of the MLPs.
    :param float obs_scale: standard deviation of Gaussian observation noise around
        :math:`G_\\theta(z)`; ``None`` (the classic GAN) makes the generator deterministic
        given z.

    Example::

        from pyro_vigen.models import GANConfig, VariationalGAN
        config = GANConfig(data_shape=(2,), noise_dim=4, obs_scale=0.05)
        gan = VariationalGAN(config)
        gan.sample(100).shape             # torch.Size([100, 2])
    """

    data_shape: tuple[int, ...] | None = None
    noise_dim: int = 2
    hidden: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    obs_scale: float | None = None

    def __post_init__(self) -> None:
        if self.data_shape is not None:
            self.data_shape = tuple(self.data_shape)
        self.hidden = tuple(self.hidden)
        require_positive("noise_dim", self.noise_dim, integer=True)
        if self.obs_scale is not None:
            require_positive("obs_scale", self.obs_scale)


class VariationalGAN(nn.Module):
    r"""The GAN written as variational inference over the label y (1 = real, 0 = generated).

    The "generative" side is :math:`p_\theta(x|y)\,p(y)` with :math:`p(y)` uniform,
    :math:`p_\theta(x|y=1) = p_{data}(x)` and :math:`p_\theta(x|y=0) = p_g(x)`, the law of
    :math:`G_\theta(z)`, :math:`z \sim \mathcal{N}(0, I)` (plus
    :math:`\mathcal{N}(0, s^2 I)` noise when ``obs_scale`` = s is set). The
    "inference" side is the discriminator
    :math:`q_\phi(y|x) = \mathrm{Bernoulli}(\sigma(D_\phi(x)))`. With x latent and y
    observed, the two GAN phases are the objectives
    :class:`~pyro_vigen.infer.DiscriminatorELBO` and
    :class:`~pyro_vigen.infer.GeneratorELBO`; both work with stock
    :class:`pyro.infer.SVI`::

        gan = VariationalGAN(GANConfig(data_shape=(2,)))
        adam = {"lr": 1e-3, "betas": (0.5, 0.999)}
        svi_d = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), DiscriminatorELBO())
        svi_g = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), GeneratorELBO())
        svi_d.step(x_batch)
        svi_g.step(x_batch)

    The generator's parameters are registered only by ``model`` and the discriminator's
    only by ``guide``, under ``<name>$$$generator.*`` and ``<name>$$$discriminator.*``
    (the names ``pyro.module(name, gan)`` would give), so each phase can hand just its
    own parameters to its optimiser.

    :param GANConfig config: the architecture.
    :param str name: the Pyro name its parameters are registered under; unique by default,
        so two models in one process never share parameters.

    References:
    [1] Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
    [2] Hu et al., "On Unifying Deep Generative Models", ICLR 2018.
    [3] Su, "Variational Inference: A Unified Framework of Generative Models and Some
    Revelations", arXiv:1807.05936.
    """

    def __init__(self, config: GANConfig, *, name: str | None = None) -> None:
        super().__init__()
        if config.data_shape is None:
            raise ValueError(
                "GANConfig.data_shape must be set to build a GAN, e.g. GANConfig(data_shape=(2,))"
            )
        self.config = config
        self.name = name or unique_name("gan")
        shape = config.data_shape
        generator = decoder_net(config.noise_dim, shape, config.hidden, config.activation)
        # Images live in [0, 1]; points are unconstrained.
        self.generator = nn.Sequential(generator, nn.Sigmoid()) if len(shape) == 3 else generator
        self.discriminator = encoder_net(shape, 1, config.hidden, config.activation)

    @property
    def event_dim(self) -> int:
        return len(self.config.data_shape)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminator's logit :math:`D_\\phi(x)` of each row, shape ``(N,)``.

        At the optimal discriminator it equals :math:`\\log p_{data}(x) / p_g(x)`, so it is
        also a density-ratio estimate. Differentiable (the guide uses it); wrap it in
        ``torch.no_grad()`` for evaluation.
        """
        return self.discriminator(x).squeeze(-1)

    def model(self, x_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`p_\\theta(x|y)\\,p(y)`: the labelled batch of ``x_real`` and as many generated points.

        The expectation over the uniform :math:`p(y)` is stratified: the batch holds each
        label equally often. Sample sites: ``z`` (and ``noise`` with ``obs_scale``), and
        the deterministic ``x_gen``, all in the plate ``generated``.

        :returns: ``(x, y)``: ``x`` is ``x_real`` followed by the generated points, ``y``
            is 1 for the real rows and 0 for the generated ones.
        """
        register_parts(self.name, self, ("generator",))
        n = x_real.shape[0]
        with pyro.plate("generated", n):
            loc = x_real.new_zeros((n, self.config.noise_dim))
            z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc)).to_event(1))
            x_gen = self.generator(z)
            if self.config.obs_scale is not None:
                # Noise as its own site (not a Normal site for x_gen itself), so that
                # replaying a trace fixes z and the noise while x_gen still follows theta.
                scale = torch.full_like(x_gen, self.config.obs_scale)
                noise = pyro.sample(
                    "noise", dist.Normal(torch.zeros_like(x_gen), scale).to_event(self.event_dim)
                )
                x_gen = x_gen + noise
            x_gen = pyro.deterministic("x_gen", x_gen, event_dim=self.event_dim)
        y = torch.cat([x_real.new_ones(n), x_real.new_zeros(n)])
        return torch.cat([x_real, x_gen]), y

    def guide(self, x: torch.Tensor) -> None:
        """:math:`q_\\phi(y|x) = \\mathrm{Bernoulli}(\\sigma(D_\\phi(x)))`, a ``y`` site per row of ``x``.

        The objectives run it on the model's labelled batch with ``y`` conditioned on the
        labels; called on its own it draws labels for ``x``.
        """
        register_parts(self.name, self, ("discriminator",))
        with pyro.plate("labelled", x.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=self.logits(x)))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points from the generator's distribution :math:`p_g(x)`."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.noise_dim, generator=generator, device=device)
        x = self.generator(z)
        if self.config.obs_scale is not None:
            noise = torch.randn(x.shape, generator=generator, device=device)
            x = x + self.config.obs_scale * noise
        return x
