"""Pyro model/guide pairs."""

from .gan import GANConfig, VariationalGAN
from .vae import VAE, VAEConfig

__all__ = ["GANConfig", "VAE", "VAEConfig", "VariationalGAN"]
