"""The AAE family: an :class:`~pyro_vigen.models.AdversarialAutoencoder` trained in three phases.

Its declaration, :data:`AAE_FAMILY`; :func:`~pyro_vigen.infer.train` trains it
(``train("aae", ...)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from ..config import require_positive
from ..flags import setting
from ..models import AAEConfig, AdversarialAutoencoder
from .family import TRAIN_HELP, Family, TrainingStep, register
from .gan_training import GANIteration, GANTrainConfig, adversarial_label
from .loop import BatchSampler
from .module_svi import ModuleSVI
from .reconstruction_elbo import ReconstructionELBO
from .vae_training import decoder_means, vae_data


@dataclasses.dataclass
class AAETrainConfig(GANTrainConfig):
    """Optimisation settings of an AAE run: a :class:`GANTrainConfig` for the GAN on z
    (its generator is the encoder) and the reconstruction phase's learning rate.

    :param float lr: Adam's learning rate of the reconstruction phase, over the
        encoder and the decoder.

    The other fields are :class:`GANTrainConfig`'s, with fewer steps by default: an
    iteration trains the autoencoder as well as the GAN on z.

    Example::

        from pyro_vigen.infer import AAETrainConfig
        train = AAETrainConfig(steps=2000, lr=3e-3)
    """

    steps: int = setting(5000, help=TRAIN_HELP["steps"])
    lr: float = setting(1e-3, help="Adam learning rate of the reconstruction phase")

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive("lr", self.lr)


class AAEIteration:
    r"""One training iteration of the AAE family, its three phases.

    The reconstruction phase: one step of :class:`ReconstructionELBO` on the AAE's
    :meth:`~pyro_vigen.models.VAE.model` and :meth:`~pyro_vigen.models.VAE.guide`, one
    Adam over the encoder and the decoder (and the likelihood's scale). Then the
    regularisation phases: one :class:`GANIteration` of the GAN on z
    (:class:`~pyro_vigen.models.aae.LatentGAN`), the discriminator telling draws of
    :math:`p(z)` from codes of the data and the encoder, as generator, moving its codes
    towards the prior; each phase on a fresh minibatch, as in [1].

    :param AdversarialAutoencoder aae: the model.
    :param AAETrainConfig train: the settings.

    References:
    [1] Makhzani et al., "Adversarial Autoencoders", arXiv:1511.05644, section 2.
    """

    def __init__(self, aae: AdversarialAutoencoder, train: AAETrainConfig) -> None:
        params = [p for name, p in aae.named_parameters() if not name.startswith("discriminator.")]
        self.reconstruction = ModuleSVI(
            aae.model, aae.guide, torch.optim.Adam(params, lr=train.lr), ReconstructionELBO()
        )
        self.adversarial = GANIteration(aae.latent_gan, train)

    def __call__(self, next_batch: Callable[[], torch.Tensor]) -> dict[str, float]:
        """Run the iteration on minibatches drawn from ``next_batch()``.

        :returns: ``recon_loss``, the reconstruction loss per point, and the GAN on z's
            ``disc_loss``, ``gen_loss`` and ``penalty`` (:class:`GANIteration`).
        """
        batch = next_batch()
        recon = self.reconstruction.step(batch) / batch.shape[0]
        return {"recon_loss": recon, **self.adversarial(next_batch)}


def aae_step(
    aae: AdversarialAutoencoder, train: AAETrainConfig, x: torch.Tensor, sampler: BatchSampler
) -> TrainingStep:
    """One AAE training step: one :class:`AAEIteration` on minibatches of ``x``."""
    iteration = AAEIteration(aae, train)
    return TrainingStep(
        lambda _: iteration(lambda: x[sampler.next().to(x.device)]),
        {
            "reconstruction": iteration.reconstruction.optim,
            "disc": iteration.adversarial.optim_disc,
            "gen": iteration.adversarial.optim_gen,
        },
        ["recon_loss", "disc_loss", "gen_loss", "penalty"],
    )


def aae_label(config: dict[str, Any]) -> str:
    """``AAE``, and the GAN on z's prior and generator steps."""
    return adversarial_label("AAE", config["train"])


#: The AAE family: the VAE's likelihoods and nets (images too), a GAN on z. Its runs
#: get reconstruction quality and the aggregate posterior's KL to the prior.
AAE_FAMILY = register(
    Family(
        name="aae",
        help="train an adversarial autoencoder (the VAE with a GAN on z)",
        model_config=AAEConfig,
        train_config=AAETrainConfig,
        model=AdversarialAutoencoder,
        build_step=aae_step,
        label=aae_label,
        data=vae_data,
        images=decoder_means,
        images_are="decoder means",
        diagnostics=("reconstruction", "latent"),
    )
)
