import math

import pytest
import torch
from scipy import integrate, stats

from pyro_vigen.diagnostics import discriminator_estimates
from pyro_vigen.models import GANConfig, VariationalGAN


class OptimalDiscriminator:
    """Stand-in GAN for data N(0, 1) and generator N(1, 1): its logit is the exact
    log-ratio log N(x; 0, 1) - log N(x; 1, 1) = 1/2 - x."""

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 - x[:, 0]


def test_optimal_discriminator_recovers_both_kls_and_the_jsd():
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(200_000, 1, generator=gen)
    fake = 1.0 + torch.randn(200_000, 1, generator=gen)
    out = discriminator_estimates(OptimalDiscriminator(), data, fake)
    # KL between unit Gaussians one apart: (m1 - m0)^2 / 2 = 0.5, both ways.
    assert out["disc_kl_forward"] == pytest.approx(0.5, abs=0.01)
    assert out["disc_kl_reverse"] == pytest.approx(0.5, abs=0.01)
    p, q = stats.norm(0, 1), stats.norm(1, 1)

    def half_kl_to_mixture(x):
        m = 0.5 * (p.pdf(x) + q.pdf(x))
        return 0.5 * (p.pdf(x) * math.log(p.pdf(x) / m) + q.pdf(x) * math.log(q.pdf(x) / m))

    jsd = integrate.quad(half_kl_to_mixture, -12, 13)[0]
    assert out["jsd"] == pytest.approx(jsd, abs=0.005)


def test_real_gan_with_a_constant_discriminator():
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(8,)))
    last = gan.discriminator[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(0.7)
    data, fake = torch.randn(100, 2), gan.sample(50)
    out = discriminator_estimates(gan, data, fake)
    assert out["disc_kl_forward"] == pytest.approx(0.7)
    assert out["disc_kl_reverse"] == pytest.approx(-0.7)
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert out["jsd"] == pytest.approx(math.log(2) - (softplus(-0.7) + softplus(0.7)) / 2)


def test_bad_discriminator_output_is_an_error():
    class Diverged:
        def logits(self, x):
            return torch.full((len(x),), float("nan"))

    with pytest.raises(ValueError, match="diverged"):
        discriminator_estimates(Diverged(), torch.zeros(5, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="no data points"):
        discriminator_estimates(OptimalDiscriminator(), torch.zeros(0, 1), torch.zeros(5, 1))
