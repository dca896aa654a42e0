"""pyro_vigen: the VAE and the GAN in one variational-inference frame, in Pyro."""

__version__ = "0.1.0"
