import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from pyro_vigen.data import grid25, ring8


@pytest.mark.parametrize(
    "factory, num_modes, std",
    [(ring8, 8, 0.01), (grid25, 25, 0.05)],
)
def test_layout(factory, num_modes, std):
    mix = factory()
    assert mix.num_modes == num_modes and mix.std == std and mix.dim == 2


def test_ring8_centers_on_unit_circle():
    c = ring8().centers.double()
    assert torch.allclose(c.norm(dim=1), torch.ones(8, dtype=torch.float64), atol=1e-6)
    angles = torch.atan2(c[:, 1], c[:, 0]).remainder(2 * math.pi).sort().values
    assert torch.allclose(angles, torch.arange(8, dtype=torch.float64) * math.pi / 4, atol=1e-6)


def test_grid25_centers():
    got = {tuple(p) for p in grid25().centers.tolist()}
    assert got == {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}


@pytest.mark.parametrize("factory", [ring8, grid25])
def test_log_prob_matches_scipy(factory):
    mix = factory()
    x = mix.sample(50, torch.Generator().manual_seed(1)).double()
    x = torch.cat([x, torch.tensor([[0.3, -0.2]], dtype=torch.float64)])  # a point between modes
    comps = [
        multivariate_normal(c.numpy(), mix.std**2 * np.eye(2)).logpdf(x.numpy())
        for c in mix.centers.double()
    ]
    expected = logsumexp(np.stack(comps), axis=0) - math.log(mix.num_modes)
    np.testing.assert_allclose(mix.log_prob(x).numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("factory", [ring8, grid25])
def test_samples_are_near_their_modes(factory):
    mix = factory()
    x, labels = mix.sample(20_000, torch.Generator().manual_seed(0), return_labels=True)
    resid = x - mix.centers[labels]
    assert abs(resid.std().item() - mix.std) < 0.02 * mix.std
    counts = torch.bincount(labels, minlength=mix.num_modes).double()
    assert (counts / counts.sum() - 1 / mix.num_modes).abs().max() < 0.01


@pytest.mark.parametrize("factory", [ring8, grid25])
def test_entropy_matches_separated_mode_formula(factory):
    mix = factory()
    est, se = mix.entropy(num_samples=100_000)
    # Modes are far apart relative to std, so H = log K + (D/2) log(2 pi e s^2).
    expected = math.log(mix.num_modes) + math.log(2 * math.pi * math.e * mix.std**2)
    assert 0 < se < 0.01
    assert abs(est - expected) < 4 * se + 1e-3


def test_sampling_is_reproducible():
    a = ring8().sample(10, torch.Generator().manual_seed(3))
    b = ring8().sample(10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
