"""Pyro model/guide pairs."""

from .aae import AAEConfig, AdversarialAutoencoder
from .ali import ALI, ALIConfig
from .gan import GANConfig, VariationalGAN, pack_rows
from .vae import VAE, VAEConfig

__all__ = [
    "AAEConfig",
    "ALI",
    "ALIConfig",
    "AdversarialAutoencoder",
    "GANConfig",
    "VAE",
    "VAEConfig",
    "VariationalGAN",
    "pack_rows",
]
