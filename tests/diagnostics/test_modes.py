import math

import numpy as np
import pytest
import torch

from pyro_vigen.data import ring8
from pyro_vigen.diagnostics import label_coverage, mode_coverage
from pyro_vigen.diagnostics.modes import load_centers, user_modes


def ring_samples(modes, n, seed=0):
    """n points from the given ring8 modes, evenly, with the mixture's own spread."""
    mixture = ring8()
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor(modes)[torch.arange(n) % len(modes)]
    return mixture.centers[labels] + mixture.std * torch.randn(n, 2, generator=gen)


def test_three_of_eight_modes():
    mixture = ring8()
    out = mode_coverage(ring_samples([0, 3, 5], 3000), mixture.centers, mixture.std)
    assert out["num_modes"] == 8
    assert out["modes_captured"] == 3
    assert [i for i, c in enumerate(out["counts"]) if c > 0] == [0, 3, 5]
    # Three equal modes out of eight: KL(uniform on 3 || uniform on 8) = log(8/3).
    assert out["mode_kl"] == pytest.approx(math.log(8 / 3), abs=0.01)


def test_far_points_lower_the_high_quality_fraction():
    mixture = ring8()
    good = ring_samples(list(range(8)), 8000)
    far = 5.0 + torch.rand(2000, 2, generator=torch.Generator().manual_seed(1))  # far from all
    out = mode_coverage(torch.cat([good, far]), mixture.centers, mixture.std)
    # A 2-D Gaussian point is within 3 std with probability 1 - exp(-4.5) = 0.989.
    assert out["hq_fraction"] == pytest.approx(0.8, abs=0.02)
    assert out["modes_captured"] == 8


def test_even_spread_has_mode_kl_near_zero():
    mixture = ring8()
    out = mode_coverage(ring_samples(list(range(8)), 8000), mixture.centers, mixture.std)
    assert out["mode_kl"] == pytest.approx(0.0, abs=0.005)
    assert sum(out["counts"]) == pytest.approx(0.989 * 8000, rel=0.01)


def test_no_high_quality_sample():
    mixture = ring8()
    out = mode_coverage(torch.full((100, 2), 5.0), mixture.centers, mixture.std)
    assert out["modes_captured"] == 0
    assert out["hq_fraction"] == 0.0
    assert out["mode_kl"] == pytest.approx(math.log(8))
    assert out["counts"] == [0] * 8


def test_threshold_is_in_units_of_std_and_euclidean():
    centers = np.zeros((1, 2))
    # Distances 2.9, 3.1 and sqrt(2^2 + 2^2) = 2.83 std: only the middle one is out.
    samples = np.array([[2.9, 0.0], [0.0, 3.1], [2.0, 2.0]])
    out = mode_coverage(samples, centers, std=1.0, threshold=3.0)
    assert out["hq_fraction"] == pytest.approx(2 / 3)


def test_label_coverage():
    labels = np.array([0, 0, 1, 1, 2, 2])
    out = label_coverage(labels, 4, high_quality=np.array([1, 1, 1, 1, 0, 0], bool))
    assert out["modes_captured"] == 2
    assert out["hq_fraction"] == pytest.approx(4 / 6)
    # Histogram (1/2, 1/2, 0, 0) against uniform over 4: log 2.
    assert out["mode_kl"] == pytest.approx(math.log(2))


def test_label_coverage_flags_are_flags_not_indices():
    labels = np.array([0, 1, 2])
    # 0/1 integers mean the same as booleans: only the second sample is high quality.
    as_ints = label_coverage(labels, 3, high_quality=np.array([0, 1, 0]))
    assert as_ints == label_coverage(labels, 3, high_quality=np.array([False, True, False]))
    assert as_ints["counts"] == [0, 1, 0] and as_ints["hq_fraction"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="one flag per label: 2 flags, 3 labels"):
        label_coverage(labels, 3, high_quality=np.array([True, False]))


def test_bad_input():
    mixture = ring8()
    with pytest.raises(ValueError, match="dimension"):
        mode_coverage(torch.zeros(10, 3), mixture.centers, mixture.std)
    with pytest.raises(ValueError, match="NaN or inf"):
        mode_coverage(torch.tensor([[0.0, float("nan")]]), mixture.centers, mixture.std)
    with pytest.raises(ValueError, match="std must be positive"):
        mode_coverage(torch.zeros(10, 2), mixture.centers, 0.0)
    with pytest.raises(ValueError, match="labels must lie"):
        label_coverage(np.array([0, 5]), 3)


def test_user_modes_read_a_csv_with_a_header(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("x,y\n2,0\n-2,0.5\n")
    centers, std, source = user_modes(path, 0.25, data_shape=(2,))
    np.testing.assert_array_equal(centers, [[2.0, 0.0], [-2.0, 0.5]])
    assert std == 0.25 and source == f"{path} (2 centres, std 0.25)"
    assert user_modes(None, None, data_shape=(2,)) is None


def test_user_modes_score_as_the_built_in_mixtures():
    mixture = ring8()
    samples = ring_samples([0, 3, 5], 3000)
    centers, std, _ = user_modes(mixture.centers.numpy(), mixture.std, data_shape=(2,))
    assert mode_coverage(samples, centers, std) == mode_coverage(
        samples, mixture.centers, mixture.std
    )


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("c.json", "[]", r"unsupported mode centres file format '\.json'; use .*\.npy"),
        ("empty.csv", "", "the file is empty"),
    ],
)
def test_load_centers_refuses_what_it_cannot_read(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_centers(path)


def test_user_modes_refuse_images():
    with pytest.raises(ValueError, match="centers apply to points; this data is"):
        user_modes(np.zeros((3, 64)), 0.1, data_shape=(1, 8, 8))
