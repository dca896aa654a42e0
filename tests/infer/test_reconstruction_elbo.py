import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI

from pyro_vigen.errors import UserError
from pyro_vigen.infer import ReconstructionELBO
from pyro_vigen.models import VAE, VAEConfig

LOG_2PI = math.log(2 * math.pi)


def small_vae(**kw):
    return VAE(VAEConfig(data_shape=(2,), hidden=(8,), **kw))


def hand_loss(vae, x, eps, scale=None):
    """-sum_i log N(x_i; decoder(loc_i + sigma_i * eps_i), s), written out from the nets.

    ``scale`` is the likelihood's fixed s; ``None`` reads the learned ``log_scale``.
    """
    loc, raw = vae.encoder(x).chunk(2, dim=-1)
    sigma = torch.nn.functional.softplus(raw) + 1e-5
    mean = vae.decoder(loc + sigma * eps)
    s = vae.log_scale.exp() if scale is None else torch.full_like(mean, scale)
    return (0.5 * ((x - mean) / s) ** 2 + s.log() + 0.5 * LOG_2PI).sum()


def test_loss_is_the_gaussian_reconstruction_term_by_hand():
    vae = small_vae()
    x = torch.randn(16, 2)
    # The guide's z is its only draw: after the same seed, its noise is torch.randn's.
    pyro.set_rng_seed(3)
    eps = torch.randn(16, 2)
    expected = hand_loss(vae, x, eps).item()
    elbo = ReconstructionELBO()
    with pyro.validation_enabled(True):  # the guide's check passes a reparameterised z
        pyro.set_rng_seed(3)
        assert elbo.loss(vae.model, vae.guide, x) == pytest.approx(expected, rel=1e-5)
        pyro.set_rng_seed(3)
        got = elbo.differentiable_loss(vae.model, vae.guide, x)
    assert got.requires_grad
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # No KL term: the full (Trace_ELBO) loss on the same draw is larger by KL > 0.
    pyro.set_rng_seed(3)
    full = pyro.infer.Trace_ELBO().loss(vae.model, vae.guide, x)
    assert full - expected > 0.1


def test_fixed_scale_and_minibatch_scaling_by_hand():
    vae = small_vae(scale=0.5)
    x = torch.randn(8, 2)
    pyro.set_rng_seed(1)
    eps = torch.randn(8, 2)
    expected = hand_loss(vae, x, eps, scale=0.5).item()
    pyro.set_rng_seed(1)
    # A minibatch of 8 out of 32 points: the plate scales the sum by 32 / 8.
    got = ReconstructionELBO().loss(vae.model, vae.guide, x, num_data=32)
    assert got == pytest.approx(4 * expected, rel=1e-5)


def test_gradient_reaches_encoder_and_decoder_as_by_hand():
    vae = small_vae()
    x = torch.randn(16, 2)
    pyro.set_rng_seed(5)
    eps = torch.randn(16, 2)
    params = list(vae.parameters())
    expected = torch.autograd.grad(hand_loss(vae, x, eps), params)
    pyro.set_rng_seed(5)
    ReconstructionELBO().loss_and_grads(vae.model, vae.guide, x)
    for (name, p), g in zip(vae.named_parameters(), expected, strict=True):
        assert p.grad is not None, name
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-5), name
        assert p.grad.abs().sum() > 0, name
    names = {name.split(".")[0] for name, _ in vae.named_parameters()}
    assert {"encoder", "decoder"} <= names


def test_num_particles_average_the_particles():
    vae = small_vae()
    x = torch.randn(10, 2)
    with torch.no_grad():
        pyro.set_rng_seed(4)
        singles = [float(hand_loss(vae, x, torch.randn(10, 2))) for _ in range(3)]
        pyro.set_rng_seed(4)
        got = ReconstructionELBO(num_particles=3).loss(vae.model, vae.guide, x)
        assert got == pytest.approx(sum(singles) / 3, rel=1e-5)
        assert max(singles) - min(singles) > 1.0  # the average is not one of them
        # Vectorised particles: one draw of shape (particles, N, latent).
        pyro.set_rng_seed(4)
        batched = [float(hand_loss(vae, x, e)) for e in torch.randn(3, 10, 2)]
        pyro.set_rng_seed(4)
        elbo = ReconstructionELBO(num_particles=3, vectorize_particles=True, max_plate_nesting=1)
        assert elbo.loss(vae.model, vae.guide, x) == pytest.approx(sum(batched) / 3, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stock_svi_reduces_the_loss(seed):
    pyro.set_rng_seed(seed)
    x = torch.randn(256, 2) * 0.2 + torch.randn(256, 1).sign() * torch.tensor([1.5, -0.5])
    s = 0.3
    vae = small_vae(scale=s)
    # Reconstructing every point by the data's mean, the best constant decoder.
    constant = 0.5 * ((x - x.mean(0)) ** 2).sum(1) / s**2 + 2 * (math.log(s) + 0.5 * LOG_2PI)
    constant = float(constant.mean())

    def per_point():
        pyro.set_rng_seed(100)
        return ReconstructionELBO(num_particles=10).loss(vae.model, vae.guide, x) / len(x)

    before = per_point()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), ReconstructionELBO())
    for _ in range(200):
        svi.step(x)
    after = per_point()
    # From about 14 nats a point to about 0: far better than the constant decoder.
    assert after < before - 8
    assert after < constant - 8


def bernoulli_model(x):
    b = pyro.sample("b", dist.Bernoulli(torch.tensor(0.5)))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(b, 1.0), obs=x)


def bernoulli_guide(x):
    p = pyro.param("p", torch.tensor(0.3), constraint=dist.constraints.unit_interval)
    pyro.sample("b", dist.Bernoulli(p))


def test_refuses_a_guide_that_is_not_reparameterised():
    x = torch.randn(5)
    with pyro.validation_enabled(True), pytest.raises(UserError, match="reparameterised"):
        ReconstructionELBO().loss(bernoulli_model, bernoulli_guide, x)
    svi = SVI(bernoulli_model, bernoulli_guide, pyro.optim.Adam({"lr": 0.1}), ReconstructionELBO())
    with pyro.validation_enabled(True), pytest.raises(UserError, match="'b'"):
        svi.step(x)


@pytest.mark.filterwarnings("ignore:Found vars in model but not guide")
def test_refuses_a_model_without_observations():
    vae = small_vae()
    with pytest.raises(UserError, match="observed site"):
        ReconstructionELBO().loss(
            lambda x: vae.model(None, batch_size=4), lambda x: vae.guide(x), torch.randn(4, 2)
        )
