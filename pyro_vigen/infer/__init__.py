"""Objectives, training loops, and loading a trained model back."""

from .aae_training import AAE_FAMILY, AAEIteration, AAETrainConfig
from .ali_training import ALI_FAMILY
from .discriminator_elbo import DiscriminatorELBO
from .family import Family, TrainingStep, families, get_family, register, train
from .gan_jit import JitDiscriminatorELBO, JitGeneratorELBO
from .gan_training import GAN_FAMILY, GANIteration, GANTrainConfig
from .generator_elbo import GeneratorELBO
from .loading import load_run, run_family
from .loop import BatchSampler, TrainingDiverged, fit, resolve_device
from .module_svi import ModuleSVI
from .reconstruction_elbo import ReconstructionELBO
from .vae_training import VAE_FAMILY, VAETrainConfig, make_elbo, vae_svi

__all__ = [
    "AAE_FAMILY",
    "AAEIteration",
    "AAETrainConfig",
    "ALI_FAMILY",
    "ReconstructionELBO",
    "Family",
    "GAN_FAMILY",
    "TrainingStep",
    "VAE_FAMILY",
    "families",
    "get_family",
    "register",
    "run_family",
    "train",
    "BatchSampler",
    "DiscriminatorELBO",
    "GANIteration",
    "GANTrainConfig",
    "GeneratorELBO",
    "JitDiscriminatorELBO",
    "JitGeneratorELBO",
    "ModuleSVI",
    "TrainingDiverged",
    "VAETrainConfig",
    "fit",
    "load_run",
    "make_elbo",
    "resolve_device",
    "vae_svi",
]
