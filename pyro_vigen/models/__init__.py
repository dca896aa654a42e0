"""Pyro model/guide pairs."""

from .vae import VAE, VAEConfig

__all__ = ["VAE", "VAEConfig"]
