import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import (
    SVI,
    JitTrace_ELBO,
    Predictive,
    RenyiELBO,
    Trace_ELBO,
    TraceMeanField_ELBO,
)
from torch import nn

from pyro_vigen.models import VAE, VAEConfig


def points_vae(**kw):
    return VAE(VAEConfig(data_shape=(2,), hidden=(16,), **kw))


@pytest.mark.parametrize(
    "shape, likelihood",
    [
        ((2,), "normal"),
        ((5,), "normal"),
        ((1, 8, 8), "bernoulli"),
        ((1, 28, 28), "bernoulli"),
        ((1, 8, 8), "discretized_logistic"),
        ((1, 28, 28), "discretized_logistic"),
        ((1, 8, 8), "continuous_bernoulli"),
        ((1, 8, 8), "normal"),
    ],
)
def test_shapes(shape, likelihood):
    vae = VAE(VAEConfig(data_shape=shape, likelihood=likelihood, latent_dim=3))
    x = torch.rand(4, *shape).round()
    loc, scale = vae.encode(x)
    assert loc.shape == scale.shape == (4, 3) and (scale > 0).all()
    assert vae.sample(6).shape == (6, *shape)
    assert vae.reconstruct(x).shape == x.shape
    assert vae.log_prob(x, num_particles=3).shape == (4,)
    assert vae.log_weights(x, num_particles=5).shape == (5, 4)


def test_likelihood_defaults_follow_the_data():
    assert VAEConfig(data_shape=(2,)).likelihood == "normal"
    assert VAEConfig(data_shape=(1, 8, 8)).likelihood == "discretized_logistic"


class FixedLogits(nn.Module):
    """A decoder that ignores the code: every point gets the same logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(z.shape[0], *self.logits.shape)


# Continuous-Bernoulli parameters: both tails, the Taylor region of torch's normaliser
# around 1/2 (0.499 to 0.501) and 1/2 itself, where C(1/2) = 2 is a limit.
LAMBDAS = torch.tensor([0.02, 0.2, 0.4995, 0.5, 0.7, 0.999], dtype=torch.float64)


def continuous_bernoulli_vae(lam: torch.Tensor = LAMBDAS) -> VAE:
    vae = VAE(VAEConfig(data_shape=(len(lam),), hidden=(8,), likelihood="continuous_bernoulli"))
    vae.decoder = FixedLogits(torch.logit(lam).float())
    return vae


def log_normaliser(lam: torch.Tensor) -> torch.Tensor:
    """log C(lambda), C = 2 artanh(1 - 2 lambda) / (1 - 2 lambda), and C(1/2) = 2."""
    t = 1 - 2 * lam
    c = torch.where(t == 0, torch.full_like(t, 2.0), 2 * torch.atanh(t) / torch.where(t == 0, 1, t))
    return c.log()


def test_continuous_bernoulli_log_density_is_the_papers_formula():
    vae = continuous_bernoulli_vae()
    # Exactly 0 and 1 (the ends of the support), and grey levels in between.
    x = torch.tensor([[0.0] * 6, [1.0] * 6, [0.3, 0.9, 0.5, 0.25, 1.0, 0.0]])
    px = vae.likelihood(torch.zeros(3, vae.config.latent_dim))
    by_hand = (
        log_normaliser(LAMBDAS) + x.double() * LAMBDAS.log() + (1 - x.double()) * (-LAMBDAS).log1p()
    )
    assert torch.allclose(px.base_dist.log_prob(x).double(), by_hand, rtol=1e-4, atol=1e-5)
    assert torch.allclose(px.log_prob(x).double(), by_hand.sum(-1), rtol=1e-4, atol=1e-4)
    # A density on [0, 1], not a probability: it exceeds 1 near a confident pixel's end,
    # and at lambda = 1/2 it is the uniform density, log(2 * 1/2) = 0 everywhere.
    assert by_hand[0, 0] > 0 and torch.allclose(by_hand[:, 3], torch.zeros(3, dtype=torch.float64))


def test_continuous_bernoulli_draws_and_means():
    vae = continuous_bernoulli_vae()
    # The paper's mean, lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)); 1/2 at 1/2.
    t = 1 - 2 * LAMBDAS
    mean = torch.where(t == 0, 0.5, LAMBDAS / -torch.where(t == 0, 1, t) + 1 / (2 * torch.atanh(t)))
    means = vae.sample(5, generator=torch.Generator().manual_seed(0), noise=False)
    assert torch.allclose(means.double(), mean.expand(5, -1), atol=1e-5)
    draws = vae.sample(20_000, generator=torch.Generator().manual_seed(0))
    again = vae.sample(20_000, generator=torch.Generator().manual_seed(0))
    other = vae.sample(20_000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(draws, again) and not torch.equal(draws, other)
    assert draws.min() >= 0 and draws.max() <= 1
    # The standard deviation is at most 1/sqrt(12) < 0.29: the mean of 20,000 draws is
    # within 0.01 of the true mean with overwhelming probability.
    assert torch.allclose(draws.double().mean(0), mean, atol=0.01)
    # Grey levels, not the Bernoulli's 0 or 1.
    assert ((draws > 0.05) & (draws < 0.95)).float().mean() > 0.3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"data_shape": (2,), "latent_dim": 0}, "latent_dim"),
        ({"data_shape": (2,), "likelihood": "poisson"}, "unknown likelihood"),
        ({"data_shape": (2,), "scale": -1.0}, "scale"),
        ({"data_shape": (1, 9, 9)}, r"\(C, 8, 8\) and \(C, 28, 28\)"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(VAEConfig(**kwargs))


def test_vae_needs_a_data_shape():
    with pytest.raises(ValueError, match="data_shape must be set"):
        VAE(VAEConfig())


def test_config_json_round_trip():
    cfg = VAEConfig(data_shape=(1, 8, 8), hidden=(32,), scale=0.5, likelihood="normal")
    assert VAEConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="no setting"):
        VAEConfig.from_dict({"data_shape": [2], "latent": 3})


@pytest.mark.parametrize(
    "elbo",
    [
        Trace_ELBO(),
        TraceMeanField_ELBO(),
        JitTrace_ELBO(),
        RenyiELBO(alpha=0.0, num_particles=4, vectorize_particles=True, max_plate_nesting=1),
    ],
    ids=["trace", "meanfield", "jit", "iwae"],
)
def test_stock_elbos_train_both_nets(elbo):
    vae = points_vae()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), elbo)
    x = torch.randn(32, 2)
    losses = [svi.step(x) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    moved = {k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("encoder") for k in moved)
    assert any(k.startswith("decoder") for k in moved)
    assert "log_scale" in moved


def test_fixed_scale_has_no_scale_parameter():
    vae = points_vae(scale=0.2)
    assert not hasattr(vae, "log_scale")
    assert torch.allclose(
        vae.likelihood(torch.zeros(3, 2)).base_dist.scale, torch.full((3, 2), 0.2)
    )


def test_plate_scales_the_likelihood_to_the_data_size():
    vae = points_vae()
    x = torch.randn(10, 2)
    trace = pyro.poutine.trace(vae.model).get_trace(x, num_data=1000)
    trace.compute_log_prob()
    site = trace.nodes["x"]
    assert site["scale"] == pytest.approx(100.0)
    assert torch.allclose(site["log_prob"], 100.0 * site["unscaled_log_prob"])


def test_two_models_in_one_process_do_not_share_parameters():
    pyro.set_rng_seed(1)
    a = points_vae()
    pyro.set_rng_seed(1)
    b = points_vae()
    assert a.name != b.name
    b_before = {k: v.clone() for k, v in b.state_dict().items()}
    svi_a = SVI(a.model, a.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    svi_b = SVI(b.model, b.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    x = torch.randn(16, 2)
    for _ in range(3):
        svi_a.step(x)
    assert all(torch.equal(v, b_before[k]) for k, v in b.state_dict().items())
    svi_b.step(x)
    assert not all(torch.equal(v, b_before[k]) for k, v in b.state_dict().items())
    names = set(pyro.get_param_store().keys())
    assert any(n.startswith(a.name + "$$$") for n in names) and any(
        n.startswith(b.name + "$$$") for n in names
    )


def test_sample_is_reproducible_with_a_generator_and_noise_switch():
    vae = points_vae(scale=0.5)
    s1 = vae.sample(100, generator=torch.Generator().manual_seed(0))
    s2 = vae.sample(100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s1, s2)
    means = vae.sample(100, generator=torch.Generator().manual_seed(0), noise=False)
    # With noise the draws sit around the decoder means with the fixed scale.
    assert (s1 - means).std().item() == pytest.approx(0.5, rel=0.2)


# A linear-Gaussian VAE: z ~ N(0, I), x = W z + b + s * eps, so p(x) = N(b, W W^T + diag(s^2))
# and p(z|x) = N(S W^T D^-1 (x - b), S) with S = (I + W^T D^-1 W)^-1, D = diag(s^2).
# The columns of W are orthogonal in the metric D^-1, so S is diagonal and the guide, a
# diagonal Normal, can be the exact posterior.
LINEAR_W = np.array([[1.2, -0.5], [0.6, 0.64], [0.0, 0.5]])
LINEAR_B = np.array([0.3, -1.0, 2.0])
LINEAR_S = np.array([0.5, 0.4, 0.8])


def linear_vae() -> VAE:
    vae = VAE(VAEConfig(data_shape=(3,), hidden=(), latent_dim=2))
    (linear,) = vae.decoder
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(LINEAR_W))
        linear.bias.copy_(torch.tensor(LINEAR_B))
        vae.log_scale.copy_(torch.tensor(np.log(LINEAR_S)))
    return vae


def exact_posterior():
    """Posterior mean map (A, c: mean = A x + c) and the posterior standard deviations."""
    dinv = np.diag(LINEAR_S**-2.0)
    post_cov = np.linalg.inv(np.eye(2) + LINEAR_W.T @ dinv @ LINEAR_W)
    assert abs(post_cov[0, 1]) < 1e-12  # diagonal, as the choice of W makes it
    a = post_cov @ LINEAR_W.T @ dinv
    return a, -a @ LINEAR_B, np.sqrt(np.diag(post_cov))


def set_guide(vae: VAE, a, c, std) -> None:
    """Make q(z|x) = N(a x + c, diag(std^2)): a linear loc, a constant scale."""
    (linear,) = vae.encoder
    raw = np.log(np.expm1(np.asarray(std) - 1e-5))  # softplus(raw) + 1e-5 = std
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(np.r_[a, np.zeros((2, 3))]))
        linear.bias.copy_(torch.tensor(np.r_[c, raw]))


def closed_form_log_px(x: torch.Tensor) -> np.ndarray:
    cov = LINEAR_W @ LINEAR_W.T + np.diag(LINEAR_S**2)
    r = x.double().numpy() - LINEAR_B
    maha = np.einsum("ni,ij,nj->n", r, np.linalg.inv(cov), r)
    return -0.5 * (maha + np.linalg.slogdet(cov)[1] + 3 * math.log(2 * math.pi))


def log_normal(v, loc, scale):
    """log N(v; loc, diag(scale^2)), written out and summed over the last dimension."""
    return (-0.5 * ((v - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


# The last point lies far out (log p(x) = -238.6): its weights exp(-238.6) underflow in
# float32, so their average must be taken in log space.
LINEAR_X = torch.tensor(
    [[0.3, -1.0, 2.0], [2.0, 0.5, 1.0], [-1.5, -2.5, 2.8], [0.0, 0.0, 0.0], [8.0, -9.0, 12.0]]
)


# 100,000 particles for 5 points pass through importance_sample's chunks (2^18 pairs of a
# particle and a point at a time): two, the last one partial.
@pytest.mark.parametrize("num_particles", [1, 7, 100_000])
def test_log_prob_with_the_exact_posterior_is_the_closed_form_marginal(num_particles):
    # With q(z|x) = p(z|x) every log-weight is log p(x), whatever z is drawn: the estimate
    # is exact for any number of particles.
    vae = linear_vae()
    set_guide(vae, *exact_posterior())
    lp = vae.log_prob(LINEAR_X, num_particles=num_particles)
    expected = closed_form_log_px(LINEAR_X)
    assert np.allclose(lp.double().numpy(), expected, rtol=1e-5, atol=2e-4), (lp, expected)


def test_log_prob_of_an_inexact_guide_by_hand_and_in_the_limit():
    # A guide 25% too wide and off-centre.
    a, c, std = exact_posterior()
    shift = np.array([0.15, -0.1])
    vae = linear_vae()
    set_guide(vae, a, c + shift, 1.25 * std)
    x = LINEAR_X
    # One particle: the log-weight log p(z) + log p(x|z) - log q(z|x) at
    # z = loc + scale * eps, eps the standard normal draws of the same seed, every
    # density written out from the nets' known weights.
    torch.manual_seed(3)
    one = vae.log_prob(x, num_particles=1)
    torch.manual_seed(3)
    eps = torch.randn(len(x), 2).double()
    loc = x.double() @ torch.tensor(a).T + torch.tensor(c + shift)
    scale = torch.tensor(1.25 * std).expand_as(loc)
    z = loc + scale * eps
    mean_x = z @ torch.tensor(LINEAR_W).T + torch.tensor(LINEAR_B)
    by_hand = (
        log_normal(z, torch.zeros_like(z), torch.ones_like(z))
        + log_normal(x.double(), mean_x, torch.tensor(LINEAR_S).expand_as(mean_x))
        - log_normal(z, loc, scale)
    )
    assert torch.allclose(one.double(), by_hand, rtol=1e-5, atol=1e-4), (one, by_hand)
    expected = closed_form_log_px(x)
    assert np.abs(one.double().numpy() - expected).max() > 0.05  # one particle is not exact
    # Many particles: the weights' relative variance is about 0.29, so with 20,000 the
    # estimate's standard error is sqrt(0.29 / 20,000) = 0.004 nats (its bias, 0.29 /
    # 40,000, is negligible): 0.02 is five of them.
    torch.manual_seed(0)
    many = vae.log_prob(x, num_particles=20_000).double().numpy()
    assert np.abs(many - expected).max() < 0.02, (many, expected)
    assert np.isfinite(many).all()


def discretized_logistic(loc, scale, levels=256):
    from pyro_vigen.models.likelihoods import DiscretizedLogistic

    return DiscretizedLogistic(torch.as_tensor(loc), torch.as_tensor(scale), levels)


@pytest.mark.parametrize("loc, scale", [(0.3, 0.05), (-0.2, 0.1), (1.4, 0.3), (0.5, 1e-3)])
def test_discretized_logistic_against_the_logistic_cdf(loc, scale):
    """Each level's probability, the mean and the draws, from the logistic CDF by hand."""
    levels = 256
    v = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    h = 0.5 / (levels - 1)
    cdf = lambda t: 1 / (1 + math.exp(-(t - loc) / scale))  # noqa: E731
    expected = [cdf(h)] + [cdf(x + h) - cdf(x - h) for x in v[1:-1].tolist()] + [1 - cdf(1 - h)]
    expected = torch.tensor(expected, dtype=torch.float64)
    px = discretized_logistic(torch.full((levels,), loc, dtype=torch.float64), scale)
    got = px.log_prob(v).exp()
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-12)
    assert got.sum().item() == pytest.approx(1.0, abs=1e-9)
    mean = discretized_logistic(torch.tensor([loc], dtype=torch.float64), scale).mean
    assert mean.item() == pytest.approx(float((v * expected).sum()), abs=1e-7)
    # Inverse-CDF draws land on the levels with these probabilities.
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    draws = discretized_logistic(torch.full((200_000,), loc, dtype=torch.float64), scale).icdf(u)
    counts = torch.bincount((draws * (levels - 1)).round().long(), minlength=levels)
    assert (counts / 200_000 - expected).abs().max() < 0.01


def test_discretized_logistic_log_prob_is_finite_in_the_tails():
    # Values far from the location: the difference of two CDFs underflows, its log must not.
    px = discretized_logistic(torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1e-3, 1e-3, 1e-3]))
    lp = px.log_prob(torch.tensor([0.5, 0.5, 1.0]))
    assert torch.isfinite(lp).all() and (lp < -100).all()
    # The logistic density times the bin width, where the bin is narrow against the scale.
    far = discretized_logistic(torch.tensor([0.0]), torch.tensor([1.0]))
    x, w = 0.5, 1.0 / 255
    density = math.exp(-x) / (1 + math.exp(-x)) ** 2
    assert far.log_prob(torch.tensor([x])).item() == pytest.approx(math.log(density * w), rel=1e-3)


def test_predictive_without_data_draws_from_the_prior_and_the_decoder():
    # A linear decoder makes p(x) exact: z ~ N(0, I), x = W z + b + s eps is
    # N(b, W W^T + s^2 I), independent of how the model draws it.
    vae = VAE(VAEConfig(data_shape=(2,), hidden=(), latent_dim=3, scale=0.3))
    (linear,) = vae.decoder
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.2]]))
        linear.bias.copy_(torch.tensor([2.0, -1.0]))
    num_samples = 20_000
    draws = Predictive(vae.model, num_samples=num_samples)(None)
    assert draws["x"].shape == (num_samples, 1, 2)
    assert draws["z"].shape == (num_samples, 1, 3)
    x = draws["x"][:, 0].double()
    w, b = linear.weight.detach().double(), linear.bias.detach().double()
    cov = w @ w.T + 0.3**2 * torch.eye(2, dtype=torch.float64)
    stderr = (cov.diagonal() / num_samples).sqrt()
    assert ((x.mean(0) - b).abs() < 4 * stderr).all()
    # The sample covariance's relative error is about sqrt(2 / S) = 1%.
    assert torch.allclose(torch.cov(x.T), cov, rtol=0.05, atol=0.02)


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)])
def test_predictive_without_data_takes_a_batch_size(shape):
    vae = VAE(VAEConfig(data_shape=shape, hidden=(8,), latent_dim=3))
    draws = Predictive(vae.model, num_samples=4)(None, batch_size=5)
    assert draws["x"].shape == (4, 5, *shape)
    assert draws["z"].shape == (4, 5, 3)
    assert vae.model(None, batch_size=5).shape == (5, *shape)


def test_one_point_without_batch_dimension_is_a_batch_of_one():
    vae = points_vae()
    x0 = torch.tensor([0.7, -1.3])
    trace = pyro.poutine.trace(vae.model).get_trace(x0)
    trace.compute_log_prob()
    z = trace.nodes["z"]["value"]
    assert z.shape == (1, 2) and trace.nodes["x"]["value"].shape == (1, 2)
    # log N(x0; decoder(z), s^2) and log N(z; 0, I), written out by hand.
    loc, log_s = vae.decoder(z)[0], vae.log_scale
    log_lik = (-0.5 * ((x0 - loc) / log_s.exp()) ** 2 - log_s - 0.5 * math.log(2 * math.pi)).sum()
    log_prior = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum()
    assert trace.nodes["x"]["log_prob_sum"].item() == pytest.approx(log_lik.item(), rel=1e-5)
    assert trace.nodes["z"]["log_prob_sum"].item() == pytest.approx(log_prior.item(), rel=1e-5)
    guide_trace = pyro.poutine.trace(vae.guide).get_trace(x0)
    assert guide_trace.nodes["z"]["value"].shape == (1, 2)
    pyro.set_rng_seed(5)
    one = Trace_ELBO().loss(vae.model, vae.guide, x0)
    pyro.set_rng_seed(5)
    assert Trace_ELBO().loss(vae.model, vae.guide, x0[None]) == pytest.approx(one)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda vae: vae.model(torch.zeros(3)),
            r"x must be a batch of shape \(N, 2\) or one point",
        ),
        (lambda vae: vae.guide(torch.zeros(4, 2, 2)), r"shape \(N, 2\) .* got shape \(4, 2, 2\)"),
        (lambda vae: vae.model(torch.zeros(4, 2), batch_size=4), "batch_size only applies when x"),
        (lambda vae: vae.model(None, batch_size=0), "batch_size must be positive"),
        (lambda vae: vae.guide(None), r"VAE.guide needs data x .* Predictive\(vae.model"),
    ],
)
def test_model_and_guide_refuse_what_they_cannot_score(call, message):
    with pytest.raises(ValueError, match=message):
        call(points_vae())
