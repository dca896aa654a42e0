import math

import numpy as np
import pytest
import torch

from pyro_vigen.data import DataConfig, load_dataset
from pyro_vigen.data import stacked as stacked_data
from pyro_vigen.diagnostics import (
    DigitLabeller,
    channel_labels,
    diagnose,
    digit_labeller,
    stacked_modes,
    train_digit_labeller,
)
from pyro_vigen.diagnostics.stacked import labeller_split
from pyro_vigen.infer import GANTrainConfig, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="all")


@pytest.fixture(scope="module")
def labelled(digits, tmp_path_factory):
    """The cache folder of its own and the labeller of ``digits`` trained into it."""
    cache = tmp_path_factory.mktemp("cache")
    return cache, digit_labeller(digits, cache_dir=cache)


@pytest.fixture(scope="module")
def pools(digits, labelled):
    """Held-out images by digit, only those the labeller gets right.

    The counting is tested on its own: with images whose label the labeller reads
    correctly, the modes it finds are exactly the triples the test stacks.
    """
    _, labeller = labelled
    _, held_out = labeller_split(len(digits))
    right = held_out[labeller.predict(digits.x[held_out]) == digits.labels[held_out]]
    return {d: right[digits.labels[right] == d] for d in range(10)}


def stack_histogram(digits, pools, counts: dict[int, int], seed: int = 0) -> torch.Tensor:
    """``counts[code]`` stacked images of each mode, channels drawn from the pools."""
    gen = torch.Generator().manual_seed(seed)
    images = []
    for code, n in counts.items():
        channels = []
        for digit in (code // 100, code // 10 % 10, code % 10):
            pool = pools[digit]
            channels.append(digits.x[pool[torch.randint(len(pool), (n,), generator=gen)], 0])
        images.append(torch.stack(channels, 1))
    return torch.cat(images)


def hand_kl(counts: np.ndarray) -> float:
    """KL(h || uniform over 1,000) in nats from a histogram, term by term."""
    total = counts.sum()
    return sum(n / total * math.log(n / total * 1000) for n in counts if n > 0)


def test_labeller_held_out_accuracy_is_at_least_97_percent(digits, labelled):
    _, labeller = labelled
    train, held_out = labeller_split(len(digits))
    assert len(held_out) == 359 and len(train) + len(held_out) == len(digits)
    assert not set(train.tolist()) & set(held_out.tolist())
    hits = (labeller.predict(digits.x[held_out]) == digits.labels[held_out]).numpy()
    assert labeller.accuracy == pytest.approx(hits.mean())
    assert labeller.accuracy >= 0.97


def test_labeller_is_cached_and_deterministic(digits, labelled):
    cache, labeller = labelled
    (path,) = cache.glob("digit_labeller-digits-8.pt")
    again = digit_labeller(digits, cache_dir=cache)
    assert again.accuracy == labeller.accuracy
    torch.testing.assert_close(again(digits.x[:50]), labeller(digits.x[:50]))
    # A damaged file is a miss: retraining gives the very same weights (one thread,
    # fixed seeds), and rewrites the file.
    path.write_bytes(b"garbage")
    retrained = digit_labeller(digits, cache_dir=cache)
    for a, b in zip(retrained.state_dict().values(), labeller.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.load(path, weights_only=True)["accuracy"] == labeller.accuracy


def test_modes_and_kl_of_a_known_histogram(digits, labelled, pools):
    _, labeller = labelled
    # 40 modes, mode i holding i + 1 samples (820 in all), 960 modes empty.
    rng = np.random.default_rng(0)
    codes = rng.choice(1000, size=40, replace=False)
    counts = {int(c): i + 1 for i, c in enumerate(codes)}
    samples = stack_histogram(digits, pools, counts)
    histogram = np.zeros(1000, dtype=int)
    histogram[list(counts)] = list(counts.values())

    m = stacked_modes(samples, labeller)
    assert m["num_modes"] == 1000 and m["mode_samples"] == 820
    assert m["modes_captured"] == 40
    assert m["counts"] == histogram.tolist()
    assert m["mode_kl"] == pytest.approx(hand_kl(histogram), rel=1e-12)
    assert 0 < m["mode_kl"] < math.log(1000)
    assert m["labeller_accuracy"] == labeller.accuracy


def test_modes_and_kl_at_the_extremes(digits, labelled, pools):
    _, labeller = labelled
    one = stacked_modes(stack_histogram(digits, pools, {307: 50}), labeller)
    assert one["modes_captured"] == 1
    assert one["mode_kl"] == pytest.approx(math.log(1000))
    every = stacked_modes(stack_histogram(digits, pools, dict.fromkeys(range(1000), 2)), labeller)
    assert every["modes_captured"] == 1000
    assert every["mode_kl"] == pytest.approx(0.0, abs=1e-12)


def test_channel_labels_read_each_channel(digits, labelled, pools):
    _, labeller = labelled
    samples = stack_histogram(digits, pools, {123: 3, 980: 2})
    assert channel_labels(samples, labeller).tolist() == [[1, 2, 3]] * 3 + [[9, 8, 0]] * 2


@pytest.mark.parametrize(
    "samples, message",
    [
        (torch.zeros(4, 1, 8, 8), r"shape \(N, 3, 8, 8\), got \(4, 1, 8, 8\)"),
        (torch.zeros(4, 3, 28, 28), r"shape \(N, 3, 8, 8\)"),
        (torch.zeros(0, 3, 8, 8), "no samples"),
        (torch.full((2, 3, 8, 8), float("nan")), "384 value.* NaN or inf .*sample 0"),
    ],
)
def test_channel_labels_refuse_bad_samples(labelled, samples, message):
    _, labeller = labelled
    with pytest.raises(ValueError, match=message):
        channel_labels(samples, labeller)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(images=torch.zeros(4, 3, 8, 8), labels=torch.zeros(4)), r"\(N, 1, H, H\)"),
        (dict(images=torch.zeros(4, 1, 8, 8), labels=torch.zeros(3)), "3 labels, 4 images"),
        (
            dict(images=torch.zeros(2, 1, 8, 8), labels=torch.tensor([0, 10])),
            r"0\.\.9, got 0\.\.10",
        ),
        (
            dict(images=torch.zeros(2, 1, 16, 16), labels=torch.zeros(2)),
            "8x8 or 28x28 images, got 16",
        ),
    ],
)
def test_train_digit_labeller_refuses_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_digit_labeller(kwargs["images"], kwargs["labels"].long())


def test_digit_labeller_needs_labelled_single_digits(digits, tmp_path):
    with pytest.raises(ValueError, match="has none"):
        digit_labeller(type(digits)("digits", digits.x, "test"), cache_dir=tmp_path)
    stacked = load_dataset("stacked_digits", split="all")
    with pytest.raises(ValueError, match=r"single-channel .* points of shape \(3, 8, 8\)"):
        digit_labeller(stacked, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="8x8 or 28x28"):
        DigitLabeller(16)


# Three steps leave the generator's images nearly alike: their feature KL is NaN.
@pytest.mark.filterwarnings("ignore:feature KL reported as NaN")
def test_diagnose_reports_the_stacked_metrics(tmp_path, monkeypatch, labelled):
    cache, _ = labelled
    # A small stacked_digits keeps the feature classifier's training short.
    monkeypatch.setitem(stacked_data.NUM_POINTS, "stacked_digits", 2000)
    run = tmp_path / "gan"
    train(
        "gan",
        run,
        DataConfig("stacked_digits"),
        GANTrainConfig(steps=3, batch_size=32, num_saved_samples=10),
        progress=False,
    )
    metrics = diagnose(run, num_samples=600, cache_dir=cache)
    assert metrics["num_modes"] == 1000 and metrics["mode_samples"] == 600
    assert 1 <= metrics["modes_captured"] <= 600
    assert 0 <= metrics["mode_kl"] <= math.log(1000)
    assert metrics["labeller_accuracy"] >= 0.97
    assert {"kl_forward", "kl_reverse", "precision", "recall"} <= set(metrics)
