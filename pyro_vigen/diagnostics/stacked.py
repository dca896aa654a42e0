r"""Mode coverage on stacked digits: 1,000 modes, counted by a per-channel digit labeller.

The measure of the stacked-MNIST experiments (Metz et al. [1], VEEGAN [2], PacGAN [3]
Table 2; data in :mod:`pyro_vigen.data.stacked`): a classifier trained on the single
digits labels each of a sample's three channels, and the triple of labels is the
sample's mode (:func:`~pyro_vigen.data.triple_codes`). Over N samples, with
:math:`n_k` of them in mode k,

- ``modes_captured`` is the number of the :math:`K = 1000` modes with :math:`n_k \ge 1`;
- ``mode_kl`` is :math:`KL(h\,\|\,U) = \sum_k h_k \log(K h_k)` in nats, between the
  histogram :math:`h_k = n_k / N` and the uniform distribution U over the K modes:
  0 for an even spread, :math:`\log 1000 = 6.91` for a single mode.

Every sample counts: there is no quality threshold, unlike
:func:`~pyro_vigen.diagnostics.mode_coverage` on the toy mixtures (PacGAN's reference
code counts all 26,000 of its samples). Both numbers depend on N, so the protocol fixes
it at 26,000 (:data:`PROTOCOL_SAMPLES`): even exact draws from the uniform distribution
leave :math:`E[KL] \approx (K - 1)/(2N) = 0.019` nats (the :math:`\chi^2_{K-1}`
approximation of :math:`2N \cdot KL`), and the stacked data's own modes are not exactly
uniform either (their probabilities are products of the digits' shares). Through
:func:`~pyro_vigen.diagnostics.diagnose`, the modes are counted over its
``num_samples`` (``mode_samples`` in ``metrics.json``): ``pyro-vigen diagnose
--num-samples 26000`` counts as the protocol does.

The labeller is a small conv net (two 3x3 convolutions and a max-pool per stage, dropout,
a 128-unit layer; after the MNIST classifier of Keras' examples, which PacGAN's
reference code uses), trained on 80% of the single digits and measured on the other
20% (``labeller_accuracy``). On scikit-learn's ``digits`` it labels 0.989 of the 359
held-out images right (``tests/diagnostics/test_stacked.py`` checks at least 0.97), and
26,000 stacked data images spread over all 1,000 modes with a KL of 0.022 nats. It
sees grey levels, as the data are loaded, like the feature classifier of :mod:`.images`.
With per-channel accuracy a, a sample's mode is read right with probability about
:math:`a^3`; a misread moves a sample to another mode, which can add a mode and spreads
the histogram, and removes a mode only when it misreads all of its samples. It trains
in seconds on ``digits`` (minutes on MNIST), on one thread with fixed seeds, so it is
the same on every machine, and is cached like the feature classifier.

References: [1], [2] and [3] are those of :mod:`pyro_vigen.data.stacked`; PacGAN's
reference code is https://github.com/fjxmlzn/PacGAN, ``stacked_MNIST_experiments``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..data import Dataset, triple_codes
from ..data.stacked import NUM_CHANNELS, NUM_MODES
from ..errors import UserError
from ..storage import atomic_write
from ..threads import torch_threads
from .images import default_cache_dir, load_cached_net
from .modes import label_coverage
from .training import minibatch_descent

#: Samples of the protocol's count (PacGAN's ``num_test_sample``).
PROTOCOL_SAMPLES = 26_000
#: Bump when the labeller or its training changes, so stale cache files are not used.
LABELLER_VERSION = 1
#: Share of the single digits held out of the labeller's training to measure it.
HOLDOUT = 0.2
# Seed of the labeller's split, initialisation and minibatches.
_SEED = 0
# 30 epochs on digits (about 650 steps, seconds); MNIST stops at 3,000 steps (4 epochs).
_EPOCHS = 30
_MAX_STEPS = 3000
_BATCH = 64
_LR = 1e-3
_CHUNK = 4096
# Max-pool stages per supported image size: 8 -> 4 and 28 -> 14 -> 7.
_STAGES = {8: 1, 28: 2}


class DigitLabeller(nn.Module):
    """Conv classifier of single-digit images: ``(N, 1, H, W)`` -> 10 logits.

    :param int image_size: 8 or 28 (square images).
    :ivar float accuracy: the held-out accuracy measured by :func:`digit_labeller`
        (``None`` for a labeller built or trained otherwise).
    :raises ValueError: another image size.

    Example::

        import torch
        from pyro_vigen.diagnostics import DigitLabeller
        labeller = DigitLabeller(8)
        labeller(torch.rand(4, 1, 8, 8)).shape     # torch.Size([4, 10])
        labeller.predict(torch.rand(4, 1, 8, 8))   # 4 digits (untrained: arbitrary)
    """

    def __init__(self, image_size: int) -> None:
        super().__init__()
        if image_size not in _STAGES:
            raise UserError(f"the digit labeller takes 8x8 or 28x28 images, got {image_size}")
        self.image_size = image_size
        self.accuracy: float | None = None
        layers: list[nn.Module] = []
        channels = 1
        for stage in range(_STAGES[image_size]):
            width = 32 * 2**stage
            layers += [
                nn.Conv2d(channels, width, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels = width
        side = image_size // 2 ** _STAGES[image_size]
        self.net = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(channels * side * side, 128),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The digit of each image, in chunks, in eval mode: ``(N, 1, H, W)`` -> ``(N,)``.

        :param torch.Tensor images: single-channel images of the labeller's size.
        :returns: the most probable digit of each image.
        :raises ValueError: images of another shape, or none.
        """
        expected = (1, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected or len(images) == 0:
            raise UserError(
                f"the labeller takes (N, {', '.join(map(str, expected))}) images, N >= 1, "
                f"got {tuple(images.shape)}"
            )
        self.eval()
        return torch.cat(
            [
                self(images[start : start + _CHUNK].float()).argmax(1)
                for start in range(0, len(images), _CHUNK)
            ]
        )


def train_digit_labeller(
    images: torch.Tensor, labels: torch.Tensor, *, seed: int = _SEED
) -> DigitLabeller:
    """Train a :class:`DigitLabeller` by Adam on cross-entropy, on all it is given.

    ``min(30 epochs, 3000 steps)`` of minibatches of 64, on one thread whatever the
    caller's setting (a cached labeller must be the one a fresh training gives); the
    global random state is left untouched.

    :param torch.Tensor images: ``(N, 1, H, W)`` digit images, H = W = 8 or 28.
    :param torch.Tensor labels: ``(N,)`` their digits, ``0..9``.
    :param int seed: seed of the initialisation, the dropout and the minibatches.
    :returns: the trained labeller, in eval mode (its ``accuracy`` is ``None``).
    :raises ValueError: images that are not ``(N, 1, H, W)`` of a supported size, a label
        count that differs, labels outside ``0..9``.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import train_digit_labeller
        digits = load_dataset("digits", split="all")
        labeller = train_digit_labeller(digits.x, digits.labels)    # seconds
        labeller.predict(digits.x[:5])                              # tensor([0, 1, 2, 3, 4])
    """
    if images.dim() != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3]:
        raise UserError(
            f"the labeller trains on square single-channel images (N, 1, H, H), "
            f"got {tuple(images.shape)}"
        )
    if len(images) == 0:
        raise UserError("the labeller needs at least one image to train on")
    if labels.shape != images.shape[:1]:
        raise UserError(f"one label per image needed: {len(labels)} labels, {len(images)} images")
    labels = labels.long()
    if labels.min() < 0 or labels.max() > 9:
        raise UserError(f"labels must be digits 0..9, got {int(labels.min())}..{int(labels.max())}")
    x = images.float()
    batch = min(_BATCH, len(x))
    steps = min(_EPOCHS * (len(x) // batch), _MAX_STEPS)
    gen = torch.Generator().manual_seed(seed)
    with torch_threads(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initialisation and the dropout masks
        net = DigitLabeller(images.shape[-1])
        optim = torch.optim.Adam(net.parameters(), lr=_LR)
        net.train()
        minibatch_descent(
            lambda idx: F.cross_entropy(net(x[idx]), labels[idx]),
            optim,
            num_points=len(x),
            batch=batch,
            steps=steps,
            generator=gen,
        )
    return net.eval()


def labeller_split(num_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed split of a source's images: ``(train, held_out)`` indices.

    :param int num_images: images in the source.
    :returns: sorted indices of the training images and of the :data:`HOLDOUT` share
        held out (``round(HOLDOUT * num_images)`` of them).
    """
    perm = torch.randperm(num_images, generator=torch.Generator().manual_seed(_SEED))
    n_hold = round(HOLDOUT * num_images)
    return perm[n_hold:].sort().values, perm[:n_hold].sort().values


def digit_labeller(source: Dataset, *, cache_dir: str | os.PathLike | None = None) -> DigitLabeller:
    """The labeller of a single-digit dataset, trained and measured, or read from the cache.

    Trains on the training part of :func:`labeller_split` and sets ``accuracy`` to the
    share of the held-out images it labels right.

    :param Dataset source: the single digits (a stacked dataset's ``stacked_from``).
    :param cache_dir: folder of cached labellers (default ``~/.cache/pyro_vigen``). A
        missing, unreadable or stale file is (re)written.
    :returns: the labeller, in eval mode, with its held-out ``accuracy``.
    :raises ValueError: a source without labels, or not of single-channel 8x8 or 28x28
        images.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import digit_labeller
        labeller = digit_labeller(load_dataset("digits", split="all"))   # then cached
        labeller.accuracy                                                 # 0.989
    """
    if source.labels is None:
        raise UserError(f"the digit labeller trains on labels, and {source.name!r} has none")
    if source.shape not in {(1, size, size) for size in _STAGES}:
        raise UserError(
            f"the digit labeller trains on single-channel 8x8 or 28x28 images; "
            f"{source.name!r} has points of shape {source.shape}"
        )
    images = source.x
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"digit_labeller-{source.name}-{images.shape[-1]}.pt"
    expected = {"version": LABELLER_VERSION, "num_images": len(images)}
    net = load_cached_net(path, expected, lambda saved: _cached_labeller(saved, images.shape[-1]))
    if net is None:
        train, held_out = labeller_split(len(images))
        net = train_digit_labeller(images[train], source.labels[train])
        hits = net.predict(images[held_out]) == source.labels[held_out]
        net.accuracy = float(hits.double().mean())
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, {**expected, "accuracy": net.accuracy, "state": net.state_dict()})
    return net


def _cached_labeller(saved: dict, image_size: int) -> DigitLabeller:
    """The labeller of a cache file (its weights still to load), with its accuracy."""
    net = DigitLabeller(image_size)
    net.accuracy = float(saved["accuracy"])
    return net


def channel_labels(samples: torch.Tensor, labeller: DigitLabeller) -> torch.Tensor:
    """The digit of each channel of each stacked image.

    :param torch.Tensor samples: ``(N, 3, H, W)`` stacked images (model samples or data).
    :param DigitLabeller labeller: the labeller of their single digits.
    :returns: ``(N, 3)`` digits, channel 0 first; :func:`~pyro_vigen.data.triple_codes`
        of them are the modes.
    :raises ValueError: not ``(N, 3, H, W)`` images of the labeller's size, no samples,
        NaN/inf values.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import channel_labels, digit_labeller
        data = load_dataset("stacked_digits", split="all")
        labeller = digit_labeller(data.stacked_from)
        channel_labels(data.x[:2], labeller)      # tensor([[3, 2, 3], [7, 5, 1]])
    """
    size = labeller.image_size
    if samples.dim() != 4 or tuple(samples.shape[1:]) != (NUM_CHANNELS, size, size):
        raise UserError(
            f"stacked images must have shape (N, {NUM_CHANNELS}, {size}, {size}), "
            f"got {tuple(samples.shape)}"
        )
    if len(samples) == 0:
        raise UserError("no samples to label (shape (0, ...))")
    bad = ~torch.isfinite(samples)
    if bad.any():
        raise UserError(
            f"samples: {int(bad.sum())} value(s) are NaN or inf (first in sample "
            f"{int(bad.nonzero()[0, 0])}); a model that produces them has diverged"
        )
    # Each channel is one single-digit image: label all 3N of them in one pass.
    flat = samples.reshape(-1, 1, size, size)
    return labeller.predict(flat).reshape(-1, NUM_CHANNELS)


def stacked_modes(samples: torch.Tensor, labeller: DigitLabeller) -> dict:
    """Modes captured out of 1,000 and the mode KL of stacked images, as in PacGAN.

    Counts every sample given; the protocol gives :data:`PROTOCOL_SAMPLES` (26,000).

    :param torch.Tensor samples: ``(N, 3, H, W)`` stacked images.
    :param DigitLabeller labeller: the labeller of their single digits
        (:func:`digit_labeller`).
    :returns: ``num_modes`` (1000), ``modes_captured``, ``mode_kl`` (nats),
        ``mode_samples`` (N), ``labeller_accuracy`` (the labeller's held-out accuracy,
        ``None`` if it was not measured) and ``counts`` (samples per mode, 1,000 ints,
        mode :math:`100 a + 10 b + c` at index :math:`100 a + 10 b + c`).
    :raises ValueError: see :func:`channel_labels`.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import digit_labeller, stacked_modes
        data = load_dataset("stacked_digits", split="all")
        labeller = digit_labeller(data.stacked_from)
        m = stacked_modes(data.x[:26_000], labeller)     # the data itself
        m["modes_captured"], m["mode_kl"]                 # (1000, 0.022)
    """
    codes = triple_codes(channel_labels(samples, labeller))
    coverage = label_coverage(codes.numpy(), NUM_MODES)
    return {
        "num_modes": coverage["num_modes"],
        "modes_captured": coverage["modes_captured"],
        "mode_kl": coverage["mode_kl"],
        "mode_samples": len(codes),
        "labeller_accuracy": labeller.accuracy,
        "counts": coverage["counts"],
    }
