import math
import warnings

import numpy as np
import pytest
import torch

from pyro_vigen.data import DataConfig, load_dataset
from pyro_vigen.diagnostics import (
    classifier_key,
    density_coverage,
    feature_classifier,
    feature_kl,
    gaussian_fit_kl_both,
    image_metrics,
    precision_recall,
    shuffled_images,
)
from pyro_vigen.diagnostics.images import CLASSIFIER_VERSION, MAX_KL, PATCH_GRID

# 70% of the digits train the classifier and are the reference; the rest are held out,
# so that "real images" are images neither the classifier nor the manifold has seen.
SPLIT = DataConfig("digits", holdout=0.3)


@pytest.fixture(scope="module")
def train():
    return load_dataset(SPLIT, split="train")


@pytest.fixture(scope="module")
def held_out():
    return load_dataset(SPLIT, split="holdout")


@pytest.fixture(scope="module")
def classifier(train, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, feature_classifier(train, cache_dir=cache)


def test_feature_classifier_learns_the_digits(held_out, classifier):
    _, net = classifier
    _, probs = net.embed(held_out.x)
    assert probs.shape == (len(held_out), 11)  # ten digits and the reject class
    assert (probs[:, :10].argmax(1) == held_out.labels.numpy()).mean() > 0.9
    assert (probs.argmax(1) == net.reject).mean() < 0.05


def test_feature_classifier_is_cached(train, classifier):
    cache, net = classifier
    (path,) = cache.glob("feature_classifier-*.pt")
    assert path.name == f"feature_classifier-{classifier_key(train)}.pt"
    again = feature_classifier(train, cache_dir=cache)
    torch.testing.assert_close(again(train.x[:20]), net(train.x[:20]))
    # A damaged cache file is a miss: the classifier is retrained and the file rewritten.
    path.write_bytes(b"garbage")
    retrained = feature_classifier(train, cache_dir=cache)
    torch.testing.assert_close(retrained(train.x[:20]), net(train.x[:20]))
    assert torch.load(path, weights_only=True)["version"] == CLASSIFIER_VERSION


def test_classifier_key_follows_the_images():
    digits = load_dataset("digits", split="all")
    key = classifier_key(digits)
    assert key.startswith("digits-1x8x8-") and key.endswith(f"-v{CLASSIFIER_VERSION}")
    assert classifier_key(load_dataset("digits", split="all")) == key
    # Other images under the same name (binarised, say) are another feature space.
    binarised = type(digits)("digits", (digits.x > 0.5).float(), "test", labels=digits.labels)
    assert classifier_key(binarised) != key


def test_feature_classifier_needs_labelled_images(train, tmp_path):
    unlabelled = type(train)("digits", train.x, "test", labels=None)
    with pytest.raises(ValueError, match="labels"):
        feature_classifier(unlabelled, cache_dir=tmp_path)
    points = type(train)("points", torch.zeros(10, 2), "test", labels=torch.zeros(10))
    with pytest.raises(ValueError, match=r"not \(C, H, W\) images"):
        feature_classifier(points, cache_dir=tmp_path)


def test_shuffled_images(train):
    x = train.x[:10]
    junk = shuffled_images(x, torch.Generator().manual_seed(0))
    assert junk.shape == x.shape
    # Pixel-shuffled (first half): each image's grey levels, moved.
    for a, b in zip(x[:5], junk[:5], strict=True):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)
        assert not torch.equal(a, b)

    # Patch-shuffled (second half): each image's 2x2 patches, never all left in place.
    def patches(img):
        p = img.shape[-1] // PATCH_GRID
        blocks = img.reshape(PATCH_GRID, p, PATCH_GRID, p).permute(0, 2, 1, 3)
        return sorted(tuple(b.flatten().tolist()) for b in blocks.reshape(-1, p, p))

    for a, b in zip(x[5:], junk[5:], strict=True):
        assert patches(a[0]) == patches(b[0])
    torch.testing.assert_close(shuffled_images(x, torch.Generator().manual_seed(0)), junk)
    with pytest.raises(ValueError, match="multiples of 4"):
        shuffled_images(torch.zeros(2, 1, 6, 6), torch.Generator())
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        shuffled_images(torch.zeros(2, 64), torch.Generator())


def test_precision_recall_hand_cases():
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    # Identical sets: every point sits in its own ball.
    assert precision_recall(grid, grid.copy()) == (1.0, 1.0)
    # A set far away: nothing inside either manifold.
    assert precision_recall(grid, grid + 100.0) == (0.0, 0.0)
    # Fakes on the left half only (x <= 4), four times as dense: all of them are inside
    # the real manifold (precision 1), but the fake balls (radius 0.5 or 0.71 at the
    # corners: the third neighbour at half spacing) miss the real points with x >= 5.
    left = np.stack(np.meshgrid(np.arange(0, 4.25, 0.5), np.arange(0, 9.25, 0.5)), -1)
    assert precision_recall(grid, left.reshape(-1, 2)) == (1.0, 0.5)


def brute_density_coverage(real, fake, k):
    """Naeem et al.'s formulas, term by term."""
    n, m = len(real), len(fake)

    def dist(a, b):
        return math.sqrt(sum((u - v) ** 2 for u, v in zip(a, b, strict=True)))

    radius = [sorted(dist(real[i], real[j]) for j in range(n) if j != i)[k - 1] for i in range(n)]
    inside = [[dist(fake[j], real[i]) <= radius[i] for i in range(n)] for j in range(m)]
    density = sum(sum(row) for row in inside) / (k * m)
    coverage = sum(any(inside[j][i] for j in range(m)) for i in range(n)) / n
    return density, coverage


@pytest.mark.parametrize("k", [1, 3, 5])
def test_density_coverage_against_the_formula(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(40, 3))
    # Some fakes near the data, some crowding one real point, some far away.
    fake = np.concatenate(
        [
            rng.normal(size=(20, 3)),
            real[0] + 0.01 * rng.normal(size=(8, 3)),
            rng.normal(size=(7, 3)) + 6,
        ]
    )
    density, coverage = density_coverage(real, fake, k)
    expected = brute_density_coverage(real.tolist(), fake.tolist(), k)
    assert (density, coverage) == pytest.approx(expected, abs=1e-12)
    assert 0 < coverage < 1 and density > 0


def test_density_coverage_hand_cases():
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    assert density_coverage(grid, grid + 100.0) == (0.0, 0.0)
    # Identical sets: every real ball holds its own centre, so coverage is 1; on the
    # grid with k = 1 (radius 1) a ball holds its centre and 2 to 4 neighbours.
    density, coverage = density_coverage(grid, grid.copy(), k=1)
    assert coverage == 1.0
    # 100 centres, 2 x (2 x 9 x 10) neighbour pairs along the rows and columns.
    assert density == pytest.approx((100 + 360) / 100)
    with pytest.raises(ValueError, match="at least 6"):
        density_coverage(grid[:5], grid, k=5)
    with pytest.raises(ValueError, match="dimension"):
        density_coverage(grid, np.zeros((5, 3)))


def junk_images(held_out):
    gen = torch.Generator().manual_seed(1)
    return {
        "blank": torch.zeros(200, 1, 8, 8),
        "all ones": torch.ones(200, 1, 8, 8),
        "all 0.5": torch.full((200, 1, 8, 8), 0.5),
        "uniform noise": torch.rand(200, 1, 8, 8, generator=gen),
        # Never among the reject class's training images.
        "inverted digits": 1 - held_out.x[:200],
    }


def test_real_digits_are_high_quality(train, held_out, classifier):
    _, net = classifier
    m = image_metrics(net, train.x, held_out.x)
    # Measured: HQ 0.91, 10 classes, KL 0.24 / 0.22, precision 0.92, recall 0.93,
    # density 1.04, coverage 0.96.
    assert m["hq_fraction"] > 0.8 and m["modes_captured"] == 10 and m["mode_kl"] < 0.05
    assert m["kl_method"] == "gaussian_features" and "kl_note" not in m
    assert m["kl_forward"] < 0.5 and m["kl_reverse"] < 0.5
    assert m["precision"] > 0.8 and m["recall"] > 0.8
    assert 0.7 < m["density"] < 1.3 and m["coverage"] > 0.85


def test_data_sorted_by_class_is_subsampled_at_random(train, held_out, classifier):
    """539 samples against 1257 data images: the set measures take 539 of the data. Taken
    in file order from data sorted by class, they would be the digits 0 to 4 alone."""
    _, net = classifier
    by_class = train.x[train.labels.argsort(stable=True)]
    shuffled, ordered = (
        image_metrics(net, train.x, held_out.x),
        image_metrics(net, by_class, held_out.x),
    )
    # Two random subsets differ by up to 0.03 (0.08 in density) over seeds 0-3; the first
    # 539 of the sorted data gave precision 0.44 and density 0.43.
    for key, tol in (("precision", 0.05), ("recall", 0.05), ("density", 0.15), ("coverage", 0.05)):
        assert ordered[key] == pytest.approx(shuffled[key], abs=tol)
    # Per sample, against all the data: the order cannot matter.
    assert ordered["counts"] == shuffled["counts"]
    assert ordered["kl_forward"] == pytest.approx(shuffled["kl_forward"], rel=1e-9)


@pytest.mark.parametrize(
    "name", ["blank", "all ones", "all 0.5", "uniform noise", "inverted digits"]
)
def test_junk_is_never_high_quality(train, held_out, classifier, name):
    _, net = classifier
    images = junk_images(held_out)[name]
    with warnings.catch_warnings():
        # The constant sets have one point of features: their KL is NaN, with a warning
        # that test_degenerate_samples_give_nan_kl checks.
        warnings.simplefilter("ignore", RuntimeWarning)
        m = image_metrics(net, train.x, images)
    assert m["hq_fraction"] == 0.0 and m["modes_captured"] == 0
    assert m["counts"] == [0] * 10 and m["mode_kl"] == pytest.approx(math.log(10))
    assert m["precision"] == 0.0 and m["density"] == 0.0


def test_degenerate_samples_give_nan_kl(train, classifier):
    _, net = classifier
    with pytest.warns(RuntimeWarning, match="span 0 of 16 dimensions"):
        m = image_metrics(net, train.x, torch.zeros(100, 1, 8, 8))
    assert math.isnan(m["kl_forward"]) and math.isnan(m["kl_reverse"])
    assert "span 0 of 16" in m["kl_note"]


def test_feature_kl_is_the_gaussian_fits_where_they_are_sound():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(500, 4)), 1.5 * rng.normal(size=(500, 4)) + 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = feature_kl(real, fake)
    forward, reverse = gaussian_fit_kl_both(real, fake)
    assert (out["kl_forward"], out["kl_reverse"]) == (forward, reverse)
    assert out["kl_method"] == "gaussian_features"
    for key, value in (("kl_forward", forward), ("kl_reverse", reverse)):
        low, high = out[f"{key}_interval"]
        assert low < value < high


def test_feature_kl_nan_on_degenerate_fits():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 4))
    three_points = np.repeat(rng.normal(size=(3, 4)), 50, axis=0)
    thin = rng.normal(size=(500, 4)) * np.array([1, 1, 1, 1e-5])  # condition number 1e10
    cases = [
        (real, np.ones((500, 4)), "the samples' features span 0 of 4"),
        (real, three_points, "the samples' features span 2 of 4"),
        (real, thin, "the samples' feature covariance has condition number 1\\.?\\d*e\\+10"),
        (three_points, real, "the data's features span 2 of 4"),
    ]
    for a, b, why in cases:
        with pytest.warns(RuntimeWarning, match=why):
            out = feature_kl(a, b)
        assert math.isnan(out["kl_forward"]) and math.isnan(out["kl_reverse"])
        assert out["kl_note"].startswith("feature KL reported as NaN")


def test_feature_kl_nan_above_the_plausible_maximum():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2000, 4))
    huddled = 1e-3 * rng.normal(size=(2000, 4))  # well conditioned, but a thousandth as wide
    # Forward: 0.5 tr(C_fake^-1 C_real) = 0.5 x 4 x 1e6 = 2e6 nats, beyond MAX_KL.
    # Reverse: 0.5 (log det C_real - log det C_fake - 4) = 0.5 (4 log 1e6 - 4) = 25.6.
    with pytest.warns(RuntimeWarning, match=r"kl_forward = 2\.?\d*e\+06 exceeds"):
        out = feature_kl(real, huddled)
    assert math.isnan(out["kl_forward"]) and "kl_forward" in out["kl_note"]
    assert out["kl_reverse"] == pytest.approx(0.5 * (4 * math.log(1e6) - 4), rel=0.02)
    assert gaussian_fit_kl_both(real, huddled)[0] > MAX_KL


def test_image_metrics_bad_input(classifier):
    _, net = classifier
    with pytest.raises(ValueError, match="shape"):
        image_metrics(net, torch.zeros(10, 1, 8, 8), torch.zeros(10, 1, 28, 28))
    nan_images = torch.full((10, 1, 8, 8), float("nan"))
    with pytest.raises(ValueError, match="NaN or inf"):
        image_metrics(net, torch.zeros(10, 1, 8, 8), nan_images)
    with pytest.raises(ValueError, match=r"confidence must be a probability in \(0, 1\]"):
        image_metrics(net, torch.zeros(10, 1, 8, 8), torch.zeros(10, 1, 8, 8), confidence=1.5)
