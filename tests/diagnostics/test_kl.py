"""KL estimators against closed forms written out here, not taken from the code under test."""

import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from pyro_vigen.data import ring8
from pyro_vigen.diagnostics import (
    classifier_kl,
    classifier_kl_both,
    discriminator_estimates,
    gaussian_fit_kl_both,
    gaussian_kl,
    kl_directions,
    knn_kl,
    knn_kl_both,
    mc_kl,
)


def hand_kl(m0, c0, m1, c1):
    """KL(N(m0, c0) || N(m1, c1)), the textbook formula with explicit inverse and determinants."""
    m0, c0, m1, c1 = (np.asarray(a, dtype=float) for a in (m0, c0, m1, c1))
    inv1 = np.linalg.inv(c1)
    dm = m1 - m0
    return 0.5 * (
        np.trace(inv1 @ c0)
        + dm @ inv1 @ dm
        - len(m0)
        + np.log(np.linalg.det(c1) / np.linalg.det(c0))
    )


def draw(mean, cov, n, seed):
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


# 2-D pairs whose two directions are both within the k-NN estimator's reach at 20,000
# samples (neither distribution much wider than the other along any axis).
PAIRS_2D = {
    "shift": ([0.0, 0.0], np.eye(2), [0.8, -0.5], np.eye(2)),
    "shift+shape": ([0.0, 0.0], np.eye(2), [0.5, -0.5], [[1.5, 0.3], [0.3, 0.8]]),
}


def pairs_10d():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(10, 10)) / math.sqrt(10)
    return {
        "scale": (np.zeros(10), np.eye(10), np.full(10, 0.2), np.diag(np.linspace(0.6, 1.6, 10))),
        "correlated": (
            np.zeros(10),
            np.eye(10),
            np.linspace(-0.3, 0.3, 10),
            0.5 * np.eye(10) + 0.5 * a @ a.T,
        ),
    }


# --- closed form -----------------------------------------------------------------------


def test_gaussian_kl_1d_textbook():
    # KL(N(m0, s0^2) || N(m1, s1^2)) = log(s1/s0) + (s0^2 + (m0-m1)^2) / (2 s1^2) - 1/2
    m0, s0, m1, s1 = 0.3, 0.7, -1.0, 1.9
    expected = math.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5
    assert gaussian_kl(m0, s0**2, m1, s1**2) == pytest.approx(expected, rel=1e-12)


def test_gaussian_kl_matches_the_hand_formula_in_5d():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    c0, c1 = a @ a.T + np.eye(5), b @ b.T + 0.5 * np.eye(5)
    m0, m1 = rng.normal(size=5), rng.normal(size=5)
    assert gaussian_kl(m0, c0, m1, c1) == pytest.approx(hand_kl(m0, c0, m1, c1), rel=1e-10)
    assert gaussian_kl(m0, c0, m0, c0) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_kl_bad_input():
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_kl([0, 0], np.eye(2), [0, 0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="shape"):
        gaussian_kl([0, 0], np.eye(2), [0, 0, 0], np.eye(3))


def test_gaussian_fit_kl_is_exact_for_the_fitted_moments():
    p, q = draw([0, 0], np.eye(2), 5000, 1), draw([1, 0], np.diag([2.0, 0.5]), 5000, 2)
    mp, cp = p.mean(0), np.cov(p, rowvar=False)
    mq, cq = q.mean(0), np.cov(q, rowvar=False)
    forward, reverse = gaussian_fit_kl_both(p, q, ridge=0.0)
    assert forward == pytest.approx(hand_kl(mp, cp, mq, cq), rel=1e-9)
    assert reverse == pytest.approx(hand_kl(mq, cq, mp, cp), rel=1e-9)


# --- Monte Carlo -------------------------------------------------------------------------


def test_mc_kl_of_ring8_against_a_gaussian_matches_the_closed_form():
    # P = ring8, 8 modes on the unit circle with std s = 0.01 (neighbours 76 s apart, so
    # the overlap is below exp(-700)), Q = N(m, c I). Written x = c_k + s e, e ~ N(0, I):
    #   log p(x) = -log 8 - log(2 pi s^2) - |e|^2 / 2,
    #   log q(x) = -log(2 pi c) - |c_k - m + s e|^2 / (2 c),
    # so KL = -log 8 - log(2 pi e s^2) + log(2 pi c) + (1 + |m|^2 + 2 s^2) / (2 c), and
    # log p - log q = const + (s^2 / 2c - 1/2) |e|^2 + |c_k - m|^2 / 2c + (s / c) (c_k - m).e
    # has variance 4 (s^2 / 2c - 1/2)^2 + |m|^2 / (2 c^2) + s^2 (1 + |m|^2) / c^2
    # (Var |e|^2 = 4; over the 8 modes |c_k - m|^2 = 1 + |m|^2 - 2 m.c_k varies by
    # 4 |m|^2 mean(cos^2) = 2 |m|^2).
    mixture = ring8()
    s, m, c = 0.01, torch.tensor([0.5, 0.0]), 0.25
    q = torch.distributions.MultivariateNormal(m, c * torch.eye(2))
    m2 = float(m @ m)
    expected = (
        -math.log(8)
        - math.log(2 * math.pi * math.e * s**2)
        + math.log(2 * math.pi * c)
        + (1 + m2 + 2 * s**2) / (2 * c)
    )
    variance = 4 * (s**2 / (2 * c) - 0.5) ** 2 + m2 / (2 * c**2) + s**2 * (1 + m2) / c**2
    n = 20_000
    stderr = math.sqrt(variance / n)  # 0.012 nats, on a KL of 7.25
    for seed in range(3):
        x = mixture.sample(n, torch.Generator().manual_seed(seed))
        est = mc_kl(x, mixture.log_prob, q.log_prob)
        assert abs(est.value - expected) < 4 * stderr, (est, expected)
        # The sample standard deviation of 20,000 terms is within about 1% of the true one.
        assert est.stderr == pytest.approx(stderr, rel=0.05)


def test_mc_kl_of_gaussians_is_within_its_standard_error():
    p = torch.distributions.Normal(0.0, 1.0)
    q = torch.distributions.Normal(1.0, 2.0)
    expected = math.log(2.0) + (1 + 1) / (2 * 4) - 0.5
    x = p.sample((50_000, 1))
    est = mc_kl(x, lambda t: p.log_prob(t[:, 0]), lambda t: q.log_prob(t[:, 0]))
    assert abs(est.value - expected) < 4 * est.stderr
    assert 0 < est.stderr < 0.01


def test_mc_kl_infinite_ratio_is_an_error():
    x = torch.zeros(10, 1)
    with pytest.raises(ValueError, match="infinite"):
        mc_kl(x, lambda t: torch.zeros(len(t)), lambda t: torch.full((len(t),), -math.inf))


# --- k-NN --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAIRS_2D)
def test_knn_kl_2d_gaussians_within_0_05_nats(name):
    m0, c0, m1, c1 = PAIRS_2D[name]
    p, q = draw(m0, c0, 20_000, 1), draw(m1, c1, 20_000, 2)
    forward, reverse = knn_kl_both(p, q)
    assert abs(forward - hand_kl(m0, c0, m1, c1)) < 0.05
    assert abs(reverse - hand_kl(m1, c1, m0, c0)) < 0.05
    assert knn_kl(p, q) == forward


def test_knn_kl_same_distribution_is_near_zero():
    p, q = draw([0, 0], np.eye(2), 20_000, 3), draw([0, 0], np.eye(2), 20_000, 4)
    assert abs(knn_kl(p, q)) < 0.03


def test_knn_kl_is_invariant_to_each_axis_units():
    # The rank transform makes the plain estimate so: a monotone map of one coordinate of
    # both sets changes nothing. The bias correction, from the samples' moments, is
    # invariant to each axis' units and origin.
    m0, c0, m1, c1 = PAIRS_2D["shift+shape"]
    p, q = draw(m0, c0, 3000, 5), draw(m1, c1, 3000, 6)

    def warp(x):
        return np.c_[1000 * x[:, 0], np.exp(x[:, 1])]

    def units(x):
        return np.c_[1000 * x[:, 0] - 3, 0.01 * x[:, 1] + 7]

    plain = knn_kl(p, q, bias_correction=False)
    assert knn_kl(warp(p), warp(q), bias_correction=False) == pytest.approx(plain, rel=1e-12)
    assert knn_kl(units(p), units(q)) == pytest.approx(knn_kl(p, q), rel=1e-9)


# Two Gaussians with diagonal covariances, rounded to a grid of 0.5: about 190 distinct
# points of 20,000 from P, each repeated about 100 times. Q is 3 times wider than P along
# one axis, where the plain k-NN estimate of KL(Q || P) is 0.1 nats low.
GRID = 0.5
GRID_P = (np.zeros(2), np.ones(2))  # mean and per-axis variances
GRID_Q = (np.array([0.4, -0.3]), np.array([3.0, 0.8]))


def grid_cells(mean, var, lim=9.0):
    """Centres of the grid cells on [-lim, lim] and the Gaussian's mass in each."""
    centres = np.arange(-lim, lim + GRID / 2, GRID)
    lo, hi = (
        (centres - GRID / 2 - mean) / math.sqrt(var),
        (centres + GRID / 2 - mean) / math.sqrt(var),
    )
    # Each tail from its own side, so that no cell's mass cancels to 0.
    mass = np.where(
        centres < mean,
        scipy_stats.norm.cdf(hi) - scipy_stats.norm.cdf(lo),
        scipy_stats.norm.sf(lo) - scipy_stats.norm.sf(hi),
    )
    return centres, mass


def grid_kl(first, second):
    """KL of the rounded distributions: the cells factorise over the axes, so it is the
    sum of the per-axis KLs of the cell masses."""
    total = 0.0
    for axis in range(2):
        _, p = grid_cells(first[0][axis], first[1][axis])
        _, q = grid_cells(second[0][axis], second[1][axis])
        total += float(np.sum(p * np.log(p / q)))
    return total


def grid_box_kl(forward):
    """KL between P rounded to the grid and dequantised (uniform in each cell) and Q
    continuous smoothed by the same box, per axis by Gauss-Legendre quadrature in each
    cell; ``forward``: KL(P || Q), else KL(Q || P)."""
    nodes, weights = np.polynomial.legendre.leggauss(48)
    total = 0.0
    for axis in range(2):
        centres, p = grid_cells(GRID_P[0][axis], GRID_P[1][axis])
        t = centres[:, None] + GRID / 2 * nodes[None]
        qm, qs = GRID_Q[0][axis], math.sqrt(GRID_Q[1][axis])
        lo, hi = (t - GRID / 2 - qm) / qs, (t + GRID / 2 - qm) / qs
        q_box = (
            np.where(
                t < qm,
                scipy_stats.norm.cdf(hi) - scipy_stats.norm.cdf(lo),
                scipy_stats.norm.sf(lo) - scipy_stats.norm.sf(hi),
            )
            / GRID
        )
        log_p = np.log(p / GRID)[:, None]
        if forward:
            total += float(np.sum(p * (np.log(p / GRID) - (np.log(q_box) @ weights) / 2)))
        else:
            total += float(np.sum((q_box * (np.log(q_box) - log_p)) @ weights * GRID / 2))
    return total


def on_grid(x):
    return np.round(x / GRID) * GRID


@pytest.mark.parametrize("both_rounded", [True, False])
def test_knn_kl_with_many_duplicates_matches_the_kl_on_the_grid(both_rounded):
    # Both on the grid, dequantised by the same box: exactly the KL of the cell masses
    # (0.306 and 0.571, where the continuous Gaussians have 0.312 and 0.587). P alone on
    # the grid: P dequantised against Q smoothed by the box (0.322 and 0.591). Measured
    # over 6 seeds the errors had standard deviations 0.006 (forward) and 0.019 to 0.022
    # (reverse), means -0.007 to 0.001 and -0.015 (P alone, reverse: the estimator's
    # bias); the plain estimate, without the bias correction, was 0.10 nats low on the
    # reverse KL.
    if both_rounded:
        forward, reverse = grid_kl(GRID_P, GRID_Q), grid_kl(GRID_Q, GRID_P)
    else:
        forward, reverse = grid_box_kl(True), grid_box_kl(False)
    errors = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        p = on_grid(GRID_P[0] + np.sqrt(GRID_P[1]) * rng.standard_normal((20_000, 2)))
        q = GRID_Q[0] + np.sqrt(GRID_Q[1]) * rng.standard_normal((20_000, 2))
        if both_rounded:
            q = on_grid(q)
        assert len(np.unique(p, axis=0)) < 250
        with pytest.warns(
            UserWarning, match=r"dequantised by uniform noise of widths \[0.5, 0.5\]"
        ):
            f, r = knn_kl_both(p, q)
        errors.append((f - forward, r - reverse))
    errors = np.array(errors)
    assert np.all(np.abs(errors) < 0.08), errors
    assert np.all(np.abs(errors.mean(0)) < 0.05), errors


def test_knn_kl_of_a_sample_with_many_duplicates_against_a_copy_of_itself_is_near_0():
    # Every point repeated about 100 times; the copy is the same distribution, KL 0. The
    # two sides get independent dequantising noise, so near 0, not exactly 0.
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 2))
    p = base[rng.integers(0, 50, size=5000)]
    with pytest.warns(UserWarning, match="dequantised"):
        values = knn_kl_both(p, p.copy())
    assert values == pytest.approx((0.0, 0.0), abs=0.05)


# --- classifier --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["scale", "correlated"])
def test_classifier_kl_10d_gaussians_within_15_percent(name):
    m0, c0, m1, c1 = pairs_10d()[name]
    p, q = draw(m0, c0, 20_000, 11), draw(m1, c1, 20_000, 12)
    forward, reverse = classifier_kl_both(p, q)
    assert forward == pytest.approx(hand_kl(m0, c0, m1, c1), rel=0.15)
    assert reverse == pytest.approx(hand_kl(m1, c1, m0, c0), rel=0.15)


def test_classifier_kl_is_seeded_and_leaves_the_global_rng_alone():
    p, q = draw(np.zeros(4), np.eye(4), 600, 1), draw(np.full(4, 0.5), np.eye(4), 400, 2)
    state = torch.get_rng_state()
    a = classifier_kl(p, q, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert classifier_kl(p, q, seed=3) == a


# --- kl_directions ---------------------------------------------------------------------


def test_kl_directions_auto_uses_knn_in_2d():
    m0, c0, m1, c1 = PAIRS_2D["shift+shape"]
    data, model = draw(m0, c0, 20_000, 21), draw(m1, c1, 20_000, 22)
    out = kl_directions(data, model)
    assert out["method"] == "knn"
    assert abs(out["forward"] - hand_kl(m0, c0, m1, c1)) < 0.05
    assert abs(out["reverse"] - hand_kl(m1, c1, m0, c0)) < 0.05


def test_kl_directions_auto_uses_the_classifier_in_10d():
    m0, c0, m1, c1 = pairs_10d()["correlated"]
    data, model = draw(m0, c0, 20_000, 23), draw(m1, c1, 20_000, 24)
    out = kl_directions(torch.as_tensor(data), torch.as_tensor(model))
    assert out["method"] == "classifier"
    assert out["forward"] == pytest.approx(hand_kl(m0, c0, m1, c1), rel=0.15)
    assert out["reverse"] == pytest.approx(hand_kl(m1, c1, m0, c0), rel=0.15)


def test_kl_directions_auto_uses_mc_with_both_densities():
    data_dist = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    model_dist = torch.distributions.MultivariateNormal(torch.tensor([0.5, 0.0]), 2 * torch.eye(2))
    torch.manual_seed(0)
    data, model = data_dist.sample((20_000,)), model_dist.sample((20_000,))
    out = kl_directions(
        data, model, data_log_prob=data_dist.log_prob, model_log_prob=model_dist.log_prob
    )
    assert out["method"] == "mc"
    forward = hand_kl([0, 0], np.eye(2), [0.5, 0], 2 * np.eye(2))
    reverse = hand_kl([0.5, 0], 2 * np.eye(2), [0, 0], np.eye(2))
    assert abs(out["forward"] - forward) < 4 * out["forward_stderr"]
    assert abs(out["reverse"] - reverse) < 4 * out["reverse_stderr"]


def test_kl_directions_gaussian_is_the_closed_form_kl_of_the_fitted_moments():
    # The Gaussians fitted to the two samples, KL by the textbook formula; and, within
    # sampling error, the KL of the Gaussians they were drawn from (0.47 and 0.75: the
    # two directions differ, so a swap shows).
    m0, c0 = [0.0, 0.0, 0.0], np.diag([1.0, 0.5, 2.0])
    m1, c1 = [0.5, -0.5, 0.2], [[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 1.5]]
    data, model = draw(m0, c0, 20_000, 31), draw(m1, c1, 20_000, 32)
    out = kl_directions(data, model, method="gaussian")
    assert out["method"] == "gaussian"
    fits = [(x.mean(0), np.cov(x, rowvar=False)) for x in (data, model)]
    # The fit adds a ridge of 1e-6 of the mean variance to each covariance.
    assert out["forward"] == pytest.approx(hand_kl(*fits[0], *fits[1]), rel=1e-4)
    assert out["reverse"] == pytest.approx(hand_kl(*fits[1], *fits[0]), rel=1e-4)
    # Over 10 seeds the errors had standard deviations 0.007 and 0.013 (means 0.005 and
    # 0.015): 0.06 is four of the larger.
    assert out["forward"] == pytest.approx(hand_kl(m0, c0, m1, c1), abs=0.06)
    assert out["reverse"] == pytest.approx(hand_kl(m1, c1, m0, c0), abs=0.06)
    for key in ("forward", "reverse"):
        lo, hi = out[f"{key}_interval"]
        assert lo < out[key] < hi and hi - lo < 0.2


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator",
    [knn_kl, classifier_kl, lambda p, q: kl_directions(p, q), gaussian_fit_kl_both],
)
def test_estimators_reject_different_dimensions(estimator):
    with pytest.raises(ValueError, match="dimension"):
        estimator(np.zeros((100, 2)), np.zeros((100, 3)))


@pytest.mark.parametrize("estimator", [knn_kl, classifier_kl, lambda p, q: kl_directions(p, q)])
def test_estimators_reject_nan_and_inf(estimator):
    good = np.random.default_rng(0).normal(size=(100, 2))
    for bad_value in (np.nan, np.inf):
        bad = good.copy()
        bad[7, 1] = bad_value
        with pytest.raises(ValueError, match="NaN or inf"):
            estimator(good, bad)


def test_knn_kl_needs_k_plus_one_points():
    x = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(ValueError, match="at least 6"):
        knn_kl(x, np.zeros((100, 2)), k=5)
    with pytest.raises(ValueError, match="at least 4"):
        knn_kl(np.zeros((100, 2)), x[:3], k=3)
    with pytest.raises(ValueError, match="k must be positive"):
        knn_kl(x, x, k=0)


def test_kl_directions_bad_method_and_missing_densities():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="unknown KL method"):
        kl_directions(x, x, method="magic")
    with pytest.raises(ValueError, match="needs both"):
        kl_directions(x, x, data_log_prob=lambda t: t.sum(1), method="mc")


def test_empty_samples_are_rejected():
    with pytest.raises(ValueError, match="no samples"):
        knn_kl(np.zeros((0, 2)), np.zeros((10, 2)))


# The k-NN estimator's corrections (quantised data, unequal spread) and the intervals of
# the KL estimates.


def pair(m0, c0, m1, c1, n, seed):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(m0, c0, size=n), rng.multivariate_normal(m1, c1, size=n)


MODEL = ([0.4, -0.3], [[1.3, 0.2], [0.2, 0.9]])


@pytest.mark.parametrize("both_rounded", [False, True])
def test_knn_kl_on_data_rounded_to_one_decimal(both_rounded):
    # 20,000 standard normal points rounded to 0.1: about 17,400 repeat another point.
    # The KL of the continuous Gaussians is the target (rounding at 0.1 barely changes it).
    forward, reverse = hand_kl([0, 0], np.eye(2), *MODEL), hand_kl(*MODEL, [0, 0], np.eye(2))
    for seed in range(3):
        data, model = pair([0, 0], np.eye(2), *MODEL, 20_000, seed)
        data = np.round(data, 1)
        assert len(np.unique(data, axis=0)) < 3000
        if both_rounded:
            model = np.round(model, 1)
        with pytest.warns(
            UserWarning, match=r"dequantised by uniform noise of widths \[0.1, 0.1\]"
        ):
            f, r = knn_kl_both(data, model)
        assert abs(f - forward) < 0.03
        assert abs(r - reverse) < 0.03


def test_kl_directions_notes_the_dequantisation():
    data, model = pair([0, 0], np.eye(2), *MODEL, 2000, 0)
    with pytest.warns(UserWarning, match="dequantised"):
        out = kl_directions(np.round(data, 1), model)
    assert "0.1" in out["note"]
    assert "note" not in kl_directions(data, model)


# One side wider, along one axis or both (variance ratio r).
WIDER = {f"axis ratio {r}": np.diag([r, 1.0]) for r in (1.5, 2.0, 3.0)}
WIDER["both axes ratio 2"] = 2 * np.eye(2)


@pytest.mark.parametrize("wider", ["P", "Q"])
def test_knn_kl_unequal_spread_within_0_03_nats(wider):
    # The plain estimator is 0.08-0.09 nats low on KL(wide || narrow) at ratio 3.
    for name, cov in WIDER.items():
        m0, c0, m1, c1 = np.zeros(2), np.eye(2), np.zeros(2), cov
        if wider == "P":
            c0, c1 = c1, c0
        forward, reverse = hand_kl(m0, c0, m1, c1), hand_kl(m1, c1, m0, c0)
        errors = []
        for seed in range(3):
            f, r = knn_kl_both(*pair(m0, c0, m1, c1, 20_000, seed))
            errors.append((f - forward, r - reverse))
        errors = np.array(errors)
        assert np.all(np.abs(errors) < 0.04), name
        assert np.all(np.abs(errors.mean(0)) < 0.02), name


def test_knn_kl_bias_correction_can_be_turned_off():
    p, q = pair(np.zeros(2), np.eye(2), np.zeros(2), np.diag([3.0, 1.0]), 20_000, 0)
    wide_narrow = hand_kl(np.zeros(2), np.diag([3.0, 1.0]), np.zeros(2), np.eye(2))
    assert knn_kl_both(p, q, bias_correction=False)[1] < wide_narrow - 0.05


def test_kl_intervals_cover_the_closed_form_and_narrow_with_more_samples():
    m0, c0, m1, c1 = [0, 0], np.eye(2), [0.5, -0.5], [[1.5, 0.3], [0.3, 0.8]]
    forward, reverse = hand_kl(m0, c0, m1, c1), hand_kl(m1, c1, m0, c0)
    covered, widths = 0, {}
    for n in (2000, 8000):
        for seed in range(5):
            out = kl_directions(*pair(m0, c0, m1, c1, n, seed), seed=seed)
            assert out["method"] == "knn" and "splits" in out["interval_method"]
            for (lo, hi), exact in (
                (out["forward_interval"], forward),
                (out["reverse_interval"], reverse),
            ):
                assert lo < out["forward" if exact == forward else "reverse"] < hi
                covered += n == 8000 and lo <= exact <= hi
                widths.setdefault(n, []).append(hi - lo)
    assert covered >= 8  # of 10
    # Variance about 1/n: a quarter of the samples, about twice the width.
    assert 1.4 < np.median(widths[2000]) / np.median(widths[8000]) < 2.8


def test_mc_kl_interval_is_its_standard_error():
    p = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    q = torch.distributions.MultivariateNormal(torch.tensor([0.5, 0.0]), 2 * torch.eye(2))
    torch.manual_seed(0)
    out = kl_directions(
        p.sample((5000,)), q.sample((5000,)), data_log_prob=p.log_prob, model_log_prob=q.log_prob
    )
    lo, hi = out["forward_interval"]
    assert (hi - lo) / 2 == pytest.approx(1.96 * out["forward_stderr"], rel=1e-3)
    assert lo < hand_kl([0, 0], np.eye(2), [0.5, 0], 2 * np.eye(2)) < hi


class ExactLogit:
    """A discriminator whose logit is the exact log p_data/p_g of two Gaussians."""

    def __init__(self, data, gen):
        self.data, self.gen = data, gen

    def logits(self, x):
        return self.data.log_prob(x) - self.gen.log_prob(x)


def test_discriminator_intervals_cover_the_exact_values():
    data = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    gen = torch.distributions.MultivariateNormal(torch.tensor([0.6, 0.0]), 1.5 * torch.eye(2))
    forward = hand_kl([0, 0], np.eye(2), [0.6, 0], 1.5 * np.eye(2))
    reverse = hand_kl([0.6, 0], 1.5 * np.eye(2), [0, 0], np.eye(2))
    covered = 0
    for seed in range(5):
        torch.manual_seed(seed)
        x, y = data.sample((4000,)), gen.sample((4000,))
        est = discriminator_estimates(ExactLogit(data, gen), x, y)
        for key, exact in (("disc_kl_forward", forward), ("disc_kl_reverse", reverse)):
            lo, hi = est[f"{key}_interval"]
            covered += lo <= exact <= hi
        lo, hi = est["jsd_interval"]
        assert lo < est["jsd"] < hi and hi - lo < 0.02
    assert covered >= 8  # of 10
    small = discriminator_estimates(ExactLogit(data, gen), x[:400], y[:400])
    assert np.diff(small["disc_kl_forward_interval"]) > 2 * np.diff(est["disc_kl_forward_interval"])
    assert math.isfinite(small["jsd"])
