"""Toy Gaussian mixtures with exact log-density (the PacGAN synthetic experiments)."""

from __future__ import annotations

import math

import torch

from ..errors import UserError


class GaussianMixture:
    """An equal-weight mixture of isotropic Gaussians with a common standard deviation.

    Mode-dropping experiments need a data distribution whose density is known exactly,
    so that both directions of the KL divergence to a model can be estimated without
    density-estimation error on the data side.

    :param str name: name used in reports.
    :param torch.Tensor centers: ``(K, D)`` component means.
    :param float std: per-axis standard deviation of every component.

    Example::

        import torch
        from pyro_vigen.data import GaussianMixture
        pair = GaussianMixture("pair", torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), std=0.1)
        x, labels = pair.sample(500, torch.Generator().manual_seed(0), return_labels=True)
        pair.log_prob(x).shape                        # torch.Size([500])
    """

    def __init__(self, name: str, centers: torch.Tensor, std: float) -> None:
        if centers.dim() != 2 or centers.shape[0] < 1:
            raise UserError(f"centers must be a (K, D) tensor, got shape {tuple(centers.shape)}")
        if not std > 0:
            raise UserError(f"std must be positive, got {std}")
        self.name = name
        self.centers = centers.to(torch.get_default_dtype())
        self.std = float(std)

    @property
    def num_modes(self) -> int:
        return self.centers.shape[0]

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    def sample(
        self, n: int, generator: torch.Generator | None = None, *, return_labels: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` points; with ``return_labels`` also the index of each point's mode."""
        labels = torch.randint(self.num_modes, (n,), generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        x = self.centers[labels] + self.std * noise
        return (x, labels) if return_labels else x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density of each row of ``x`` (shape ``(N, D)``), in nats."""
        centers = self.centers.to(x)
        sq = torch.cdist(x, centers).pow(2)  # (N, K)
        log_norm = -0.5 * self.dim * math.log(2 * math.pi * self.std**2)
        return (
            torch.logsumexp(-0.5 * sq / self.std**2, dim=-1) + log_norm - math.log(self.num_modes)
        )

    def entropy(
        self, num_samples: int = 200_000, generator: torch.Generator | None = None
    ) -> tuple[float, float]:
        """Monte Carlo estimate of the differential entropy and its standard error.

        A mixture's entropy has no closed form; with well-separated modes it is close to
        :math:`\\log K + \\tfrac{D}{2}\\log(2\\pi e\\sigma^2)`, which the estimate should match.

        :returns: ``(estimate, standard_error)`` in nats.
        """
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        lp = self.log_prob(self.sample(num_samples, generator)).double()
        return float(-lp.mean()), float(lp.std() / math.sqrt(num_samples))


def ring8() -> GaussianMixture:
    """8 Gaussians evenly spaced on the unit circle, standard deviation 0.01 per axis.

    :returns: the :class:`GaussianMixture`, named ``"ring8"``.

    Example::

        from pyro_vigen.data import ring8
        mixture = ring8()
        x = mixture.sample(1000)           # (1000, 2)
        mixture.entropy(20_000)            # about (-4.29, 0.007): log 8 + log(2 pi e 0.01^2) = -4.29
    """
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    centers = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)
    return GaussianMixture("ring8", centers.float(), 0.01)


def grid25() -> GaussianMixture:
    """25 Gaussians on the grid {-4, -2, 0, 2, 4}^2, standard deviation 0.05 per axis.

    :returns: the :class:`GaussianMixture`, named ``"grid25"``.

    Example::

        from pyro_vigen.data import grid25
        mixture = grid25()
        mixture.num_modes, mixture.dim    # (25, 2)
        x = mixture.sample(1000)          # (1000, 2)
    """
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    centers = torch.cartesian_prod(axis, axis)
    return GaussianMixture("grid25", centers, 0.05)
