"""VI quality on the linear-Gaussian VAE (probabilistic PCA), whose every quantity is known.

With decoder x = W z + b + N(0, S), S = diag(s^2), and z ~ N(0, I):
p(x) = N(b, W W^T + S); the posterior is N(M^-1 W^T S^-1 (x - b), M^-1) with
M = I + W^T S^-1 W. Choosing W = S^(1/2) U diag(lam) with orthonormal U makes
M = I + diag(lam^2) diagonal, so the VAE's mean-field guide can equal the posterior.
"""

import math

import numpy as np
import pytest
import torch

from pyro_vigen.diagnostics import psis_khat, vi_metrics, vi_quality
from pyro_vigen.models import VAE, VAEConfig

D, L = 4, 2


def ppca_vae(*, scale_factor=1.0, loc_shift=0.0, dtype=torch.float32, seed=0):
    """A linear VAE with known posterior; the guide's scale is the exact one times
    ``scale_factor`` and its location is off by ``loc_shift`` posterior std."""
    rng = np.random.default_rng(seed)
    s = np.array([0.5, 0.7, 0.6, 0.8])
    u, _ = np.linalg.qr(rng.normal(size=(D, L)))
    w = np.diag(s) @ u @ np.diag([1.5, 0.8])
    b = rng.normal(size=D)
    m_inv = np.linalg.inv(np.eye(L) + w.T @ np.diag(s**-2) @ w)
    a = m_inv @ w.T @ np.diag(s**-2)  # posterior mean = a (x - b)
    post_std = np.sqrt(np.diag(m_inv))
    vae = VAE(VAEConfig(data_shape=(D,), hidden=(), latent_dim=L))
    enc_w = np.zeros((2 * L, D))
    enc_w[:L] = a
    enc_b = np.zeros(2 * L)
    enc_b[:L] = -a @ b + loc_shift * post_std
    # scale = softplus(raw) + 1e-5, so raw = softplus^-1(std - 1e-5) = log(expm1(std - 1e-5)).
    enc_b[L:] = np.log(np.expm1(scale_factor * post_std - 1e-5))
    with torch.no_grad():
        vae.decoder[0].weight.copy_(torch.as_tensor(w))
        vae.decoder[0].bias.copy_(torch.as_tensor(b))
        vae.log_scale.copy_(torch.as_tensor(np.log(s)))
        vae.encoder[0].weight.copy_(torch.as_tensor(enc_w))
        vae.encoder[0].bias.copy_(torch.as_tensor(enc_b))
    vae = vae.to(dtype)
    cov = w @ w.T + np.diag(s**2)
    x = rng.multivariate_normal(b, cov, size=200)
    diff = x - b
    exact = -0.5 * (
        np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
        + np.log(np.linalg.det(cov))
        + D * math.log(2 * math.pi)
    )
    return vae, torch.as_tensor(x, dtype=dtype), exact


def test_log_prob_with_the_exact_posterior_is_exact():
    vae, x, exact = ppca_vae()
    est = vae.log_prob(x, num_particles=1000).double().numpy()
    np.testing.assert_allclose(est, exact, rtol=1e-4)


def test_log_prob_with_1000_particles_within_half_a_percent():
    torch.manual_seed(0)
    vae, x, exact = ppca_vae(scale_factor=1.25, loc_shift=0.3)
    est = vae.log_prob(x, num_particles=1000).double().numpy()
    assert est.sum() == pytest.approx(exact.sum(), rel=0.005)
    assert np.abs(est - exact).max() < 0.1


def test_elbo_and_iwae_bound_the_log_likelihood():
    torch.manual_seed(0)
    vae, x, exact = ppca_vae(scale_factor=1.25, loc_shift=0.3)
    m = vi_quality(vae, x, 1000)
    assert m["iwae_particles"] == 1000
    assert m["elbo"] < m["iwae"]
    assert m["iwae"] == pytest.approx(exact.mean(), rel=0.005)
    # With the exact guide every weight is p(x), so the ELBO is the log-likelihood.
    vae, x, exact = ppca_vae()
    m = vi_quality(vae, x, 100, data_entropy=1.5)
    assert m["elbo"] == pytest.approx(exact.mean(), rel=1e-4)
    assert m["joint_kl"] == pytest.approx(-m["elbo"] - 1.5)


def test_importance_sample_draws_from_the_guide():
    torch.manual_seed(0)
    vae, x, _ = ppca_vae()
    z, log_w = vae.importance_sample(x[:3], 4000)
    assert z.shape == (4000, 3, L) and log_w.shape == (4000, 3)
    loc, scale = vae.encode(x[:3])
    torch.testing.assert_close(z.mean(0), loc, atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), scale, atol=0.02, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_khat_is_low_for_the_exact_posterior(dtype):
    torch.manual_seed(0)
    vae, x, _ = ppca_vae(dtype=dtype)
    m = vi_quality(vae, x, 1000)
    assert m["khat_mean"] < 0.5
    assert m["khat_frac_over_0_7"] == 0.0
    assert np.all(np.isfinite(m["khat"]))


def test_khat_is_high_for_a_guide_too_narrow():
    torch.manual_seed(0)
    vae, x, _ = ppca_vae(scale_factor=0.3)
    m = vi_quality(vae, x, 1000)
    assert m["khat_mean"] > 0.7
    assert m["khat_frac_over_0_7"] > 0.5


def test_psis_khat_of_a_known_tail():
    # Log-weights Exponential(1/k') are Pareto weights with shape k' = 0.9 (very heavy)
    # versus a light-tailed Normal (bounded below 0.5).
    rng = np.random.default_rng(0)
    heavy = rng.exponential(0.9, size=(4000, 20))
    light = 0.3 * rng.normal(size=(4000, 20))
    assert np.mean(psis_khat(heavy)) == pytest.approx(0.9, abs=0.15)
    assert np.max(psis_khat(light)) < 0.5


def test_vi_metrics_bad_input():
    with pytest.raises(ValueError, match="shape"):
        vi_metrics(torch.zeros(10))
    with pytest.raises(ValueError, match="NaN or inf"):
        vi_metrics(torch.tensor([[0.0, float("-inf")], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="at least 2 particles"):
        psis_khat(np.zeros((1, 5)))
