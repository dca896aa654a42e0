r"""Stacked digits: three digit images as the three channels of one image, 1,000 modes.

The data of the stacked-MNIST experiments of Metz et al. [1], VEEGAN [2] and PacGAN [3]:
each point stacks three images drawn independently and uniformly (with replacement) from
a dataset of single digits, one image per channel. Its *mode* is the triple (a, b, c) of
the labels of channels 0, 1 and 2, one of :math:`10^3 = 1000`, encoded as the integer
:math:`100 a + 10 b + c` (:func:`triple_codes`). Each mode has probability about
1/1000 (exactly :math:`p_a p_b p_c`, with :math:`p_d` the share of digit d in the
source, which is not exactly balanced): a model of the data covers all 1,000, nearly
evenly. :mod:`pyro_vigen.diagnostics.stacked` counts how many a model does.

- ``stacked_digits``: 50,000 points of shape (3, 8, 8) (38 MB as float32) from
  scikit-learn's 1,797 bundled 8x8 ``digits``;
- ``stacked_mnist``: 128,000 points of shape (3, 28, 28) (1.2 GB as float32) from
  MNIST's 60,000 training images, found under ``--data-root`` as for ``mnist``.

50,000 stacked ``digits`` give 50 points per mode on average (27 to 79 with the default
seed), enough for a model to see every mode often. 128,000 is the
training size of VEEGAN's stacked-MNIST experiment as PacGAN's reference code runs it
(https://github.com/fjxmlzn/PacGAN, ``stacked_MNIST_experiments/VEEGAN_experiment``);
that code draws from MNIST's 70,000 training and test images, this module from the
60,000 training images that the ``mnist`` dataset loads. The draw is fixed by
``DataConfig.seed`` (``--data-seed``), so runs with different training seeds see the
same points.

References:
[1] Metz, Poole, Pfau and Sohl-Dickstein, "Unrolled Generative Adversarial Networks",
ICLR 2017.
[2] Srivastava, Valkov, Russell, Gutmann and Sutton, "VEEGAN: Reducing mode collapse in
GANs using implicit variational learning", NeurIPS 2017.
[3] Lin, Khetan, Fanti and Oh, "PacGAN: The power of two samples in generative
adversarial networks", NeurIPS 2018.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ..errors import UserError

if TYPE_CHECKING:  # datasets.py imports this module to register the stacked datasets
    from .datasets import DataConfig, Dataset

#: Channels of a stacked image: one digit each.
NUM_CHANNELS = 3
#: Modes of stacked digits: the label triples.
NUM_MODES = 10**NUM_CHANNELS
#: Points of each stacked dataset (see the module's docstring for the choice).
NUM_POINTS = {"stacked_digits": 50_000, "stacked_mnist": 128_000}

# Place value of each channel's label in a mode's code: 100 a + 10 b + c.
_PLACES = torch.tensor([10 ** (NUM_CHANNELS - 1 - c) for c in range(NUM_CHANNELS)])


def triple_codes(channel_labels: torch.Tensor) -> torch.Tensor:
    """The mode of each stacked image from its channels' digits: :math:`100 a + 10 b + c`.

    :param torch.Tensor channel_labels: ``(N, 3)`` digits in ``0..9``, channel 0 first.
    :returns: ``(N,)`` integer codes in ``0..999``.
    :raises ValueError: not ``(N, 3)``, or a label outside ``0..9``.

    Example::

        import torch
        from pyro_vigen.data import triple_codes
        triple_codes(torch.tensor([[3, 0, 7], [9, 9, 9]]))    # tensor([307, 999])
    """
    channel_labels = torch.as_tensor(channel_labels)
    if channel_labels.dim() != 2 or channel_labels.shape[1] != NUM_CHANNELS:
        raise UserError(
            f"channel labels must have shape (N, {NUM_CHANNELS}), got {tuple(channel_labels.shape)}"
        )
    channel_labels = channel_labels.long()
    if channel_labels.numel() and (channel_labels.min() < 0 or channel_labels.max() > 9):
        raise UserError(
            f"channel labels must be digits 0..9, got {int(channel_labels.min())}.."
            f"{int(channel_labels.max())}"
        )
    return (channel_labels * _PLACES).sum(1)


def stack_images(
    images: torch.Tensor, labels: torch.Tensor, num_points: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack three single-digit images, drawn independently and uniformly, per point.

    :param torch.Tensor images: ``(M, 1, H, W)`` single-channel digit images.
    :param torch.Tensor labels: ``(M,)`` their digits, ``0..9``.
    :param int num_points: stacked images to draw.
    :param int seed: seed of the draw; the global random state is left untouched.
    :returns: ``(x, codes, index)``: ``x`` the ``(num_points, 3, H, W)`` stacked images,
        ``codes`` their modes (:func:`triple_codes`) and ``index`` the ``(num_points, 3)``
        rows of ``images`` that make each one's channels.
    :raises ValueError: images that are not single-channel, a label count that differs,
        labels outside ``0..9``, a non-positive ``num_points``.

    Example::

        from pyro_vigen.data import load_dataset, stack_images
        digits = load_dataset("digits", split="all")
        x, codes, index = stack_images(digits.x, digits.labels, 1000, seed=0)
        x.shape                           # torch.Size([1000, 3, 8, 8])
        bool((x[:, 1] == digits.x[index[:, 1], 0]).all())    # True: channel 1's images
    """
    if images.dim() != 4 or images.shape[1] != 1:
        raise UserError(
            f"stacking takes single-channel images (M, 1, H, W), got {tuple(images.shape)}"
        )
    if labels.shape != images.shape[:1]:
        raise UserError(f"one label per image needed: {len(labels)} labels, {len(images)} images")
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 1:
        raise UserError(f"num_points must be a positive integer, got {num_points!r}")
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(len(images), (num_points, NUM_CHANNELS), generator=gen)
    codes = triple_codes(labels[index])
    # Indexing (n, 3) rows of the (M, H, W) images gives (n, 3, H, W) in one allocation.
    return images[:, 0][index], codes, index


def stacked_loader(
    name: str, source_loader: Callable[[DataConfig, bool], Dataset]
) -> Callable[[DataConfig, bool], Dataset]:
    """A registry loader of a stacked dataset: the source's images, stacked.

    :param str name: the stacked dataset's name, a key of :data:`NUM_POINTS`.
    :param source_loader: the loader of the single-digit dataset, ``(config, download)
        -> Dataset`` (``DATASETS["digits"].loader``, ...).
    :returns: ``loader(config, download) -> Dataset``: ``NUM_POINTS[name]`` stacked
        images drawn with ``config.seed``, their modes as ``labels``, and the
        source dataset as ``stacked_from`` (the diagnostics' labeller trains on it).
    :raises ValueError: a name not in :data:`NUM_POINTS`; when loading, a source without
        labels.

    Example::

        from pyro_vigen.data import DATASETS, DataConfig
        data = DATASETS["stacked_digits"].loader(DataConfig("stacked_digits"), False)
        data.x.shape, data.stacked_from.name    # (torch.Size([50000, 3, 8, 8]), 'digits')
    """
    if name not in NUM_POINTS:
        raise UserError(f"unknown stacked dataset {name!r}; use one of {', '.join(NUM_POINTS)}")

    def load(config: DataConfig, download: bool) -> Dataset:
        num_points = NUM_POINTS[name]
        source = source_loader(config, download)
        if source.labels is None:
            raise UserError(f"{name} stacks labelled digits, and {source.name!r} has no labels")
        x, codes, _ = stack_images(source.x, source.labels, num_points, config.seed)
        text = (
            f"{num_points:,} stacks of 3 images drawn uniformly with seed {config.seed} "
            f"from {source.source}"
        )
        return dataclasses.replace(
            source, name=name, x=x, source=text, labels=codes, stacked_from=source
        )

    return load
