import numpy as np
import pytest
import torch

from pyro_vigen.diagnostics.autoencoding import latent_metrics, reconstruction_metrics
from pyro_vigen.diagnostics.modes import nearest_modes
from pyro_vigen.errors import UserError


def test_a_constant_offset_gives_its_square_as_the_error():
    x = torch.randn(200, 3, dtype=torch.float64) * torch.tensor(
        [1.0, 2.0, 0.5], dtype=torch.float64
    )
    offset = 0.3
    out = reconstruction_metrics(x, x + offset)
    assert set(out) == {"recon_mse", "recon_rel_error"}  # no centres, no mode share
    # Every coordinate is off by the offset: the mean square per dimension is offset^2.
    assert out["recon_mse"] == pytest.approx(offset**2, rel=1e-9)
    # Squared distance of each point, 3 offset^2, over the data's total (sample) variance.
    total_var = np.var(x.numpy(), axis=0, ddof=1).sum()
    assert out["recon_rel_error"] == pytest.approx(3 * offset**2 / total_var, rel=1e-9)


def test_errors_of_points_and_images_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 1, 2, 3))
    rec = x + rng.normal(scale=0.2, size=x.shape)
    out = reconstruction_metrics(torch.from_numpy(x), torch.from_numpy(rec))
    flat, flat_rec = x.reshape(50, -1), rec.reshape(50, -1)
    assert out["recon_mse"] == pytest.approx(((flat - flat_rec) ** 2).mean(), rel=1e-9)
    dist2 = ((flat - flat_rec) ** 2).sum(1).mean()
    assert out["recon_rel_error"] == pytest.approx(
        dist2 / np.var(flat, axis=0, ddof=1).sum(), rel=1e-9
    )
    # Perfect reconstructions: 0; the data's mean for every point: about 1.
    assert reconstruction_metrics(torch.from_numpy(x), torch.from_numpy(x))["recon_mse"] == 0.0
    mean = torch.from_numpy(np.broadcast_to(x.mean(0), x.shape).copy())
    rel = reconstruction_metrics(torch.from_numpy(x), mean)["recon_rel_error"]
    assert rel == pytest.approx(49 / 50, rel=1e-9)


@pytest.mark.parametrize("moved, share", [(50, 0.5), (30, 0.7), (0, 1.0)])
def test_same_mode_share_with_hand_made_centres(moved, share):
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    gen = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(100, 2, generator=gen)  # all at centre 0
    rec = x + 0.05  # a small error: still nearest to centre 0
    rec[:moved] += torch.tensor([10.0, 0.0])  # these land on centre 1
    out = reconstruction_metrics(x, rec, centers)
    assert out["recon_same_mode"] == pytest.approx(share)
    expected = np.array([1] * moved + [0] * (100 - moved))
    assert np.array_equal(nearest_modes(rec, centers), expected)
    nearest, dist2 = nearest_modes(rec, centers.numpy(), distances=True)
    assert np.array_equal(nearest, expected)
    by_hand = ((rec.numpy()[:, None, :] - centers.numpy()[None]) ** 2).sum(-1).min(1)
    assert np.allclose(dist2, by_hand)


def test_bad_inputs_are_refused():
    x = torch.randn(10, 2)
    with pytest.raises(UserError, match="shape"):
        reconstruction_metrics(x, torch.randn(10, 3))
    with pytest.raises(UserError, match="shape"):
        reconstruction_metrics(x, torch.randn(9, 2))
    with pytest.raises(UserError, match="at least 2"):
        reconstruction_metrics(x[:1], x[:1])
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        reconstruction_metrics(x, bad)
    with pytest.raises(UserError, match="dimension"):
        reconstruction_metrics(x, x, torch.zeros(3, 5))


def constant_encoder(mu):
    """q(z|x) = N(mu, I) whatever x: the aggregate posterior is N(mu, I) too."""

    def encode(x):
        return torch.full((len(x), 2), mu), torch.ones(len(x), 2)

    return encode


def test_codes_of_the_prior_have_no_kl():
    out = latent_metrics(constant_encoder(0.0), torch.randn(5000, 2))
    assert out["latent_kl_method"] == "knn"
    assert abs(out["latent_kl_forward"]) < 0.05
    assert abs(out["latent_kl_reverse"]) < 0.05
    for key in ("latent_kl_forward_interval", "latent_kl_reverse_interval"):
        lo, hi = out[key]
        assert lo < hi


def test_shifted_codes_have_the_closed_form_kl():
    # KL(N(mu, I) || N(0, I)) = |mu|^2 / 2 = 1.0 for mu = (1, 1), both directions.
    out = latent_metrics(constant_encoder(1.0), torch.randn(5000, 2))
    assert out["latent_kl_method"] == "knn"
    assert out["latent_kl_forward"] == pytest.approx(1.0, abs=0.15)
    assert out["latent_kl_reverse"] == pytest.approx(1.0, abs=0.15)
    # The seed fixes the codes' noise, the prior's draws and the estimator.
    again = latent_metrics(constant_encoder(1.0), torch.randn(5000, 2))
    assert again["latent_kl_forward"] == out["latent_kl_forward"]
    other = latent_metrics(constant_encoder(1.0), torch.randn(5000, 2), seed=1)
    assert other["latent_kl_forward"] != out["latent_kl_forward"]


def test_latent_metrics_encode_without_gradient():
    calls = []

    def encode(x):
        calls.append(torch.is_grad_enabled())
        w = torch.ones(2, 2, requires_grad=True)
        return x @ w * 0.0, torch.ones(len(x), 2)

    out = latent_metrics(encode, torch.randn(2000, 2))
    assert calls == [False]
    assert abs(out["latent_kl_reverse"]) < 0.1
