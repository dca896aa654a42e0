"""Pyro model/guide pairs."""

from .gan import GANConfig, VariationalGAN, pack_rows
from .vae import VAE, VAEConfig

__all__ = ["GANConfig", "VAE", "VAEConfig", "VariationalGAN", "pack_rows"]
