import struct

import numpy as np
import pytest
import torch

from pyro_vigen.data import DataConfig, load_dataset, stack_images, triple_codes
from pyro_vigen.data import stacked as stacked_module

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # MNIST's IDX files: ubyte data, 3 and 1 dims


def write_images(path, images: np.ndarray) -> None:
    """An IDX image file as MNIST ships it: big-endian magic, count, rows, cols, pixels."""
    n, rows, cols = images.shape
    path.write_bytes(
        struct.pack(">iiii", IMAGE_MAGIC, n, rows, cols) + images.astype(">u1").tobytes()
    )


def write_labels(path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">ii", LABEL_MAGIC, len(labels)) + labels.astype(">u1").tobytes())


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="all")


def test_triple_codes_by_hand():
    labels = torch.tensor([[0, 0, 0], [3, 0, 7], [9, 9, 9], [1, 2, 3]])
    assert triple_codes(labels).tolist() == [0, 307, 999, 123]


@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.zeros(4, 2, dtype=torch.long), r"shape \(N, 3\)"),
        (torch.tensor([[1, 2, 10]]), r"digits 0\.\.9, got 1\.\.10"),
        (torch.tensor([[-1, 2, 3]]), r"digits 0\.\.9"),
    ],
)
def test_triple_codes_refuses_what_is_not_three_digits(labels, message):
    with pytest.raises(ValueError, match=message):
        triple_codes(labels)


def test_stacking_is_deterministic_and_channels_are_their_source_images(digits):
    x, codes, index = stack_images(digits.x, digits.labels, 600, seed=5)
    again = stack_images(digits.x, digits.labels, 600, seed=5)
    assert torch.equal(x, again[0]) and torch.equal(codes, again[1])
    other, _, _ = stack_images(digits.x, digits.labels, 600, seed=6)
    assert not torch.equal(x, other)
    assert x.shape == (600, 3, 8, 8) and x.dtype == digits.x.dtype
    images, labels = digits.x[:, 0].numpy(), digits.labels.numpy()
    idx = index.numpy()
    for c in range(3):
        np.testing.assert_array_equal(x[:, c].numpy(), images[idx[:, c]])
    # The code of each point from its three source labels, by place value.
    expected = 100 * labels[idx[:, 0]] + 10 * labels[idx[:, 1]] + labels[idx[:, 2]]
    np.testing.assert_array_equal(codes.numpy(), expected)


def test_stacking_draws_each_channel_uniformly(digits):
    n, m = 30_000, len(digits)
    _, _, index = stack_images(digits.x, digits.labels, n, seed=0)
    # Uniform draws: each image's count per channel is multinomial, and Pearson's
    # statistic over the 1,797 images has mean m - 1 and sd sqrt(2 (m - 1)) = 60.
    for c in range(3):
        counts = np.bincount(index[:, c].numpy(), minlength=m)
        chi2 = ((counts - n / m) ** 2 / (n / m)).sum()
        assert abs(chi2 - (m - 1)) < 5 * np.sqrt(2 * (m - 1))
    # Independent channels: the indices' correlations within 5 standard errors of 0.
    corr = np.corrcoef(index.numpy().T.astype(float))
    assert np.abs(corr[np.triu_indices(3, 1)]).max() < 5 / np.sqrt(n)


@pytest.mark.parametrize(
    "images, labels, num_points, message",
    [
        (torch.zeros(5, 3, 8, 8), torch.zeros(5), 10, r"single-channel images \(M, 1, H, W\)"),
        (torch.zeros(5, 1, 8, 8), torch.zeros(4), 10, "4 labels, 5 images"),
        (torch.zeros(5, 1, 8, 8), torch.zeros(5), 0, "positive integer, got 0"),
    ],
)
def test_stacking_refuses_bad_input(images, labels, num_points, message):
    with pytest.raises(ValueError, match=message):
        stack_images(images, labels.long(), num_points, seed=0)


def test_stacked_digits_is_registered_and_covers_every_mode(digits):
    ds = load_dataset(DataConfig("stacked_digits", holdout=0.0))
    assert ds.name == "stacked_digits" and ds.is_image and ds.shape == (3, 8, 8)
    assert len(ds) == stacked_module.NUM_POINTS["stacked_digits"] == 50_000
    assert ds.x.min() == 0 and ds.x.max() == 1
    assert ds.stacked_from.name == "digits" and torch.equal(ds.stacked_from.x, digits.x)
    # The registry's draw is stack_images with the data seed (DataConfig's 1234).
    x, codes, _ = stack_images(digits.x, digits.labels, 50_000, seed=1234)
    assert torch.equal(ds.x, x) and torch.equal(ds.labels, codes)
    counts = torch.bincount(ds.labels, minlength=1000)
    assert len(counts) == 1000 and counts.min() >= 20
    # The held-out split keeps the stacking and its source.
    held_out = load_dataset(DataConfig("stacked_digits", holdout=0.1), split="holdout")
    assert len(held_out) == 5_000 and torch.equal(held_out.stacked_from.x, digits.x)


def test_stacked_mnist_reads_idx_files(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    n = 40
    # Image i is the constant 6 i (distinct grey levels up to 234), so each channel of a
    # stacked image names the file row it came from; its label is i % 10.
    images = np.repeat(6 * np.arange(n), 28 * 28).reshape(n, 28, 28)
    labels = np.arange(n) % 10
    for split in ("train", "t10k"):  # torchvision checks that all four files exist
        write_images(raw / f"{split}-images-idx3-ubyte", images)
        write_labels(raw / f"{split}-labels-idx1-ubyte", labels)
    monkeypatch.setitem(stacked_module.NUM_POINTS, "stacked_mnist", 300)

    ds = load_dataset(DataConfig("stacked_mnist", data_root=str(tmp_path), holdout=0.0))
    assert ds.x.shape == (300, 3, 28, 28) and ds.stacked_from.name == "mnist"
    assert (ds.x == ds.x[:, :, :1, :1]).all()  # every channel one constant file image
    corner = ds.x[:, :, 0, 0].numpy()
    rows = np.rint(corner * 255 / 6).astype(int)  # (300, 3) file rows
    np.testing.assert_allclose(corner, 6 * rows / 255.0, atol=1e-6)
    digits = labels[rows]
    np.testing.assert_array_equal(
        ds.labels.numpy(), 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]
    )
    assert set(rows.ravel()) == set(range(n))  # 900 uniform draws reach all 40 rows
    again = load_dataset(DataConfig("stacked_mnist", data_root=str(tmp_path), holdout=0.0))
    assert torch.equal(ds.x, again.x)


def test_stacked_mnist_absent_names_the_folder(tmp_path):
    with pytest.raises(ValueError, match=r"MNIST files not found under .*MNIST/raw.*download=True"):
        load_dataset(DataConfig("stacked_mnist", data_root=str(tmp_path)))
