import numpy as np
import pytest
import torch

from pyro_vigen.data import load_dataset
from pyro_vigen.diagnostics import feature_classifier, image_metrics, precision_recall


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="all")


@pytest.fixture(scope="module")
def classifier(digits, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, feature_classifier(digits, digits.x, representation="grey", cache_dir=cache)


def test_feature_classifier_learns_the_digits(digits, classifier):
    _, net = classifier
    _, probs = net.embed(digits.x)
    assert (probs.argmax(1) == digits.labels.numpy()).mean() > 0.9


def test_feature_classifier_is_cached(digits, classifier):
    cache, net = classifier
    (path,) = cache.glob("feature_classifier-digits-grey-*.pt")
    again = feature_classifier(digits, digits.x, representation="grey", cache_dir=cache)
    torch.testing.assert_close(again(digits.x[:20]), net(digits.x[:20]))
    # A damaged cache file is a miss: the classifier is retrained and the file rewritten.
    path.write_bytes(b"garbage")
    retrained = feature_classifier(digits, digits.x, representation="grey", cache_dir=cache)
    torch.testing.assert_close(retrained(digits.x[:20]), net(digits.x[:20]))
    assert torch.load(path, weights_only=True)["version"] >= 1


def test_feature_classifier_needs_labels(digits, tmp_path):
    unlabelled = type(digits)("digits", digits.x, "test", labels=None)
    with pytest.raises(ValueError, match="labels"):
        feature_classifier(unlabelled, digits.x, representation="grey", cache_dir=tmp_path)


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


def test_image_metrics_data_against_itself_and_noise(digits, classifier):
    _, net = classifier
    perm = torch.randperm(len(digits.x), generator=torch.Generator().manual_seed(0))
    half_a, half_b = digits.x[perm[:800]], digits.x[perm[800:1600]]
    same = image_metrics(net, half_a, half_b)
    assert same["kl_method"] == "gaussian_features"
    assert same["kl_forward"] < 0.5 and same["kl_reverse"] < 0.5
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    assert same["modes_captured"] == 10 and same["mode_kl"] < 0.05
    noise = torch.rand(800, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    bad = image_metrics(net, half_a, noise)
    assert bad["kl_forward"] > 5 * same["kl_forward"] + 1
    assert bad["precision"] < 0.2


def test_image_metrics_bad_input(classifier):
    _, net = classifier
    with pytest.raises(ValueError, match="shape"):
        image_metrics(net, torch.zeros(10, 1, 8, 8), torch.zeros(10, 1, 28, 28))
    nan_images = torch.full((10, 1, 8, 8), float("nan"))
    with pytest.raises(ValueError, match="NaN or inf"):
        image_metrics(net, torch.zeros(10, 1, 8, 8), nan_images)
