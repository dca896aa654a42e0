"""The adversarial autoencoder: the VAE's model/guide pair, and a GAN on z."""

from __future__ import annotations

import dataclasses

import pyro
import pyro.distributions as dist
import torch

from ..errors import UserError
from ..flags import setting
from ..nets import MLP
from .naming import register_parts, unique_name
from .vae import VAE, VAEConfig


@dataclasses.dataclass
class AAEConfig(VAEConfig):
    """Architecture of an :class:`AdversarialAutoencoder`: a :class:`VAEConfig` and the
    latent discriminator's widths.

    :param tuple disc_hidden: hidden widths of the MLP discriminator on z.

    The other fields are :class:`VAEConfig`'s.

    Example::

        from pyro_vigen.models import AAEConfig, AdversarialAutoencoder
        aae = AdversarialAutoencoder(AAEConfig(data_shape=(2,), disc_hidden=(64, 64)))
    """

    disc_hidden: tuple[int, ...] = setting((128, 128), help="latent discriminator widths")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.disc_hidden = tuple(self.disc_hidden)


class LatentGAN:
    """The adversarial part of an :class:`AdversarialAutoencoder`, as a GAN on z.

    What :class:`~pyro_vigen.infer.GANIteration` trains: ``model`` and ``guide`` are the
    AAE's :meth:`~AdversarialAutoencoder.latent_model` and
    :meth:`~AdversarialAutoencoder.latent_guide`, the generator phase moves the
    ``generator`` (the encoder) and the discriminator phase the ``discriminator``.
    """

    generator_rows = "generated"

    def __init__(self, aae: AdversarialAutoencoder) -> None:
        self.model = aae.latent_model
        self.guide = aae.latent_guide
        self.generator = aae.encoder
        self.discriminator = aae.discriminator


class AdversarialAutoencoder(VAE):
    r"""The adversarial autoencoder (AAE [1]) as the VAE with one KL replaced by inference over y.

    The VAE fits :math:`q_\phi(x,z) = p_{data}(x)\,q_\phi(z|x)` to
    :math:`p_\theta(x,z) = p(z)\,p_\theta(x|z)` by the joint KL, which splits as

    .. math::
        KL(q\,\|\,p) = \mathbb{E}_{q}\big[-\log p_\theta(x|z)\big]
            + I_q(x; z) + KL\big(q_\phi(z)\,\|\,p(z)\big) - H(p_{data}),

    :math:`q_\phi(z) = \mathbb{E}_{p_{data}(x)}[q_\phi(z|x)]` the aggregate posterior and
    :math:`I_q` the mutual information of x and z under q. The AAE keeps the
    reconstruction term (:class:`~pyro_vigen.infer.ReconstructionELBO` on :meth:`model`
    and :meth:`guide`, the VAE's own), drops the mutual information (which the VAE's
    per-point KL penalises, blurring the codes together), and replaces the intractable
    :math:`KL(q_\phi(z)\,\|\,p(z))` by a GAN on z: :meth:`latent_model` labels draws of
    :math:`p(z)` y = 1 and codes of data points y = 0, :meth:`latent_guide` is the
    discriminator :math:`q_\psi(y|z)`, and the GAN's two phases
    (:class:`~pyro_vigen.infer.DiscriminatorELBO`, :class:`~pyro_vigen.infer.GeneratorELBO`)
    train it, the encoder being the generator. At the optimal discriminator the
    generator phase minimises :math:`KL(q_\phi(z)\,\|\,p(z)) - 2\,\mathrm{JSD}`, so the
    aggregate posterior is pushed onto the prior and :meth:`sample` (decoding draws of
    :math:`p(z)`) lands on the data.

    :param AAEConfig config: the architecture.
    :param str name: the Pyro name its parameters are registered under (unique by default).

    References:
    [1] Makhzani et al., "Adversarial Autoencoders", ICLR 2016 workshop, arXiv:1511.05644.
    [2] Su, "Variational Inference: A Unified Framework of Generative Models and Some
    Revelations", arXiv:1807.05936.
    """

    def __init__(self, config: AAEConfig, *, name: str | None = None) -> None:
        if config.data_shape is None:
            raise UserError(
                "AAEConfig.data_shape must be set to build an AAE, e.g. AAEConfig(data_shape=(2,))"
            )
        super().__init__(config, name=name or unique_name("aae"))
        self.discriminator = MLP(config.latent_dim, config.disc_hidden, 1, config.activation)
        self.latent_gan = LatentGAN(self)

    def latent_model(self, x_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled batch of codes: draws of :math:`p(z)` (y = 1), then codes of ``x_real`` (y = 0).

        Sample sites ``z_prior`` (plate ``prior``) and ``eps``, the encoder's
        standard-normal noise (plate ``data``), the code being
        :math:`\\mu_\\phi(x) + \\sigma_\\phi(x)\\,\\epsilon` (deterministic ``z_post``), so
        that replaying a snapshot fixes the noise while the code follows the encoder.

        :param x_real: a batch of data, shape ``(N, *data_shape)``.
        :returns: ``(z, y)``: ``z`` of shape ``(2N, latent_dim)``, ``y`` its labels.
        """
        x_real = self._batch(x_real, None)
        register_parts(self.name, self, ("encoder",))
        n = x_real.shape[0]
        loc = x_real.new_zeros((n, self.config.latent_dim))
        with pyro.plate("prior", n):
            z_prior = pyro.sample("z_prior", dist.Normal(loc, torch.ones_like(loc)).to_event(1))
        with pyro.plate("data", n):
            eps = pyro.sample("eps", dist.Normal(loc, torch.ones_like(loc)).to_event(1))
            mean, scale = self.encode(x_real)
            z_post = pyro.deterministic("z_post", mean + scale * eps, event_dim=1)
        return torch.cat([z_prior, z_post]), torch.cat([loc.new_ones(n), loc.new_zeros(n)])

    def latent_guide(self, z: torch.Tensor) -> None:
        """:math:`q_\\psi(y|z) = \\mathrm{Bernoulli}(\\sigma(D_\\psi(z)))`: prior draw or code."""
        if z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise UserError(
                f"AdversarialAutoencoder.latent_guide needs codes of shape "
                f"(N, {self.config.latent_dim}), got {tuple(z.shape)}"
            )
        register_parts(self.name, self, ("discriminator",))
        logits = self.discriminator(z).squeeze(-1)
        with pyro.plate("labelled", logits.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=logits))
