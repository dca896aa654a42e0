"""Objectives, training loops, and loading a trained model back."""

from .discriminator_elbo import DiscriminatorELBO
from .gan_jit import JitDiscriminatorELBO, JitGeneratorELBO
from .gan_training import GANIteration, GANTrainConfig, train_gan
from .generator_elbo import GeneratorELBO
from .loading import MODEL_KINDS, load_run
from .loop import BatchSampler, TrainingDiverged, fit, resolve_device
from .module_svi import ModuleSVI
from .vae_training import VAETrainConfig, make_elbo, train_vae, vae_svi

__all__ = [
    "BatchSampler",
    "DiscriminatorELBO",
    "GANIteration",
    "GANTrainConfig",
    "GeneratorELBO",
    "JitDiscriminatorELBO",
    "JitGeneratorELBO",
    "MODEL_KINDS",
    "ModuleSVI",
    "TrainingDiverged",
    "VAETrainConfig",
    "fit",
    "load_run",
    "make_elbo",
    "resolve_device",
    "train_gan",
    "train_vae",
    "vae_svi",
]
