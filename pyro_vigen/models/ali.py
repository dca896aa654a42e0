"""ALI/BiGAN as a Pyro model/guide pair over the real/fake label of (x, z) pairs."""

from __future__ import annotations

import dataclasses

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ..config import Config, require_positive
from ..errors import UserError
from ..flags import setting
from ..nets import MLP
from ..nets.mlp import ACTIVATIONS
from .naming import register_parts, unique_name


@dataclasses.dataclass
class ALIConfig(Config):
    """Architecture of an :class:`ALI`: three MLPs, on points.

    :param tuple data_shape: shape of one data point, ``(D,)``; training fills it from
        the data when it is ``None``.
    :param int latent_dim: dimension of z.
    :param tuple hidden: hidden widths of the encoder and the decoder.
    :param tuple disc_hidden: hidden widths of the discriminator on pairs; ``None``
        takes ``hidden``.
    :param str activation: hidden activation of the MLPs.

    Example::

        from pyro_vigen.models import ALI, ALIConfig
        ali = ALI(ALIConfig(data_shape=(2,), latent_dim=2))
        ali.sample(100).shape             # torch.Size([100, 2])
    """

    # No flag: training takes it from the data.
    data_shape: tuple[int, ...] | None = None
    latent_dim: int = setting(2, help="dimension of z")
    hidden: tuple[int, ...] = setting((128, 128), help="encoder and decoder MLP widths")
    disc_hidden: tuple[int, ...] | None = setting(
        None, help="discriminator widths (default: --hidden)"
    )
    activation: str = setting("relu", choices=ACTIVATIONS, help="hidden activation of the MLPs")

    def __post_init__(self) -> None:
        if self.data_shape is not None:
            self.data_shape = tuple(self.data_shape)
            if len(self.data_shape) != 1:
                raise UserError(
                    f"ALI takes points of shape (D,), got data of shape {self.data_shape}; "
                    "on images, train the gan, vae or aae family"
                )
        require_positive("latent_dim", self.latent_dim, integer=True)
        self.hidden = tuple(self.hidden)
        if self.disc_hidden is not None:
            self.disc_hidden = tuple(self.disc_hidden)


class ALI(nn.Module):
    r"""Adversarially learned inference (ALI [1], BiGAN [2]) as variational inference over y.

    The VAE fits the joint :math:`q_\phi(x,z) = p_{data}(x)\,q_\phi(z|x)` to
    :math:`p_\theta(x,z) = p(z)\,p_\theta(x|z)` by :math:`KL(q\,\|\,p)`. ALI labels
    the two joints instead, y = 1 for :math:`(x, z) \sim q_\phi(x,z)` and y = 0 for
    :math:`(x, z) \sim p_\theta(x,z)`, and runs the GAN's two phases on the pairs: the
    discriminator :math:`D_\psi(x, z)` infers y, and the generator phase moves *both*
    joints to fool it. :meth:`model` returns that labelled batch of pairs, each row
    :math:`(x, z)` concatenated, and :meth:`guide` scores y, so the GAN's objectives
    train it with stock :class:`pyro.infer.SVI`: the
    :class:`~pyro_vigen.infer.DiscriminatorELBO` unchanged and the
    :class:`~pyro_vigen.infer.GeneratorELBO` with ``rows="both"`` (the encoder makes the
    real rows depend on the model's parameters too). At the optimal discriminator the
    generator phase minimises the Jensen-Shannon divergence of the two joints, whose
    minimum :math:`q_\phi(x,z) = p_\theta(x,z)` makes the encoder invert the decoder.

    :math:`p_\theta(x|z)` is a point mass at the decoder's :math:`G_\theta(z)`, and
    :math:`q_\phi(z|x) = \mathcal{N}(\mu_\phi(x), \sigma_\phi(x)^2)` is drawn as
    :math:`\mu + \sigma\,\epsilon` with :math:`\epsilon` its own sample site, so that
    replaying a snapshot (the data prior) fixes the noise while the pair still follows
    the encoder. The generator phase's parameters, encoder and decoder, are
    :attr:`generator`; the discriminator's are :attr:`discriminator`.

    **Reduction to the GAN.** With a discriminator that reads only x,
    :math:`D_\psi(x, z) = D_\psi(x)`, the discriminator phase's loss is the GAN
    discriminator's on the same points (the model draws the generated z first, as
    :class:`~pyro_vigen.models.VariationalGAN` does, so one seed gives both the same
    z), and the non-saturating generator loss is the GAN's plus
    :math:`-\frac1n\sum_i \log(1 - D(x_i))` over the real points, which no parameter of
    the decoder reaches: the decoders' gradients are equal, and the encoder gets none.

    :param ALIConfig config: the architecture.
    :param str name: the Pyro name its parameters are registered under (unique by default).

    References:
    [1] Dumoulin et al., "Adversarially Learned Inference", ICLR 2017.
    [2] Donahue, Krähenbühl and Darrell, "Adversarial Feature Learning", ICLR 2017.
    [3] Hu et al., "On Unifying Deep Generative Models", ICLR 2018.
    """

    #: The generator phase scores both labels' rows (:class:`~pyro_vigen.infer.GeneratorELBO`).
    generator_rows = "both"

    def __init__(self, config: ALIConfig, *, name: str | None = None) -> None:
        super().__init__()
        if config.data_shape is None:
            raise UserError(
                "ALIConfig.data_shape must be set to build ALI, e.g. ALIConfig(data_shape=(2,))"
            )
        self.config = config
        self.name = name or unique_name("ali")
        (dim,) = config.data_shape
        act = config.activation
        disc_hidden = config.hidden if config.disc_hidden is None else config.disc_hidden
        self.generator = nn.ModuleDict(
            {
                "decoder": MLP(config.latent_dim, config.hidden, dim, act),
                "encoder": MLP(dim, config.hidden, 2 * config.latent_dim, act),
            }
        )
        self.discriminator = MLP(dim + config.latent_dim, disc_hidden, 1, act)

    @property
    def decoder(self) -> nn.Module:
        """:math:`G_\\theta`: z to x."""
        return self.generator["decoder"]

    @property
    def encoder(self) -> nn.Module:
        """x to the location and (raw) scale of :math:`q_\\phi(z|x)`."""
        return self.generator["encoder"]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of :math:`q_\\phi(z|x)`."""
        loc, raw = self.encoder(x).chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-5

    def _check_batch(self, x: torch.Tensor | None, needs: str) -> None:
        width = self.config.data_shape[0]
        if x is None or x.dim() != 2 or x.shape[1] != width:
            got = "None" if x is None else f"shape {tuple(x.shape)}"
            raise UserError(f"{needs} of shape (N, {width}), got {got}")

    def model(self, x_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled batch of pairs: ``(x_real, z ~ q(z|x_real))`` and as many ``(G(z), z ~ p(z))``.

        Sample sites: ``z`` (plate ``generated``, drawn first) and ``eps``, the
        encoder's standard-normal noise (plate ``data``); deterministic ``x_gen`` and
        ``z_enc``.

        :param x_real: a batch of real points, shape ``(N, D)``.
        :returns: ``(pairs, y)``: ``pairs`` of shape ``(2N, D + latent_dim)``, the real
            pairs first; ``y`` 1 for them, 0 for the generated ones.
        :raises ValueError: ``x_real`` is not a batch of points.
        """
        self._check_batch(x_real, "ALI.model needs a batch of real points x_real")
        register_parts(self.name, self, ("generator",))
        n, k = x_real.shape[0], self.config.latent_dim
        with pyro.plate("generated", n):
            loc = x_real.new_zeros((n, k))
            z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc)).to_event(1))
            x_gen = pyro.deterministic("x_gen", self.decoder(z), event_dim=1)
        with pyro.plate("data", n):
            eps = pyro.sample("eps", dist.Normal(loc, torch.ones_like(loc)).to_event(1))
            mean, scale = self.encode(x_real)
            z_enc = pyro.deterministic("z_enc", mean + scale * eps, event_dim=1)
        pairs = torch.cat([torch.cat([x_real, z_enc], -1), torch.cat([x_gen, z], -1)])
        return pairs, torch.cat([x_real.new_ones(n), x_real.new_zeros(n)])

    def guide(self, pairs: torch.Tensor) -> None:
        """:math:`q_\\psi(y|x,z) = \\mathrm{Bernoulli}(\\sigma(D_\\psi(x, z)))`, a ``y`` site per pair."""
        width = self.config.data_shape[0] + self.config.latent_dim
        if pairs.dim() != 2 or pairs.shape[1] != width:
            raise UserError(
                f"ALI.guide needs pairs of shape (N, {width}), got {tuple(pairs.shape)}"
            )
        register_parts(self.name, self, ("discriminator",))
        logits = self.discriminator(pairs).squeeze(-1)
        with pyro.plate("labelled", logits.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=logits))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points :math:`G_\\theta(z)`, :math:`z \\sim \\mathcal{N}(0, I)`."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=device)
        return self.decoder(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`G_\\theta(\\mu_\\phi(x))`: each point decoded from its mean code."""
        return self.decoder(self.encode(x)[0])
