"""Atomic writes: the old file or the new one, never half of one."""

import os

import pytest
import torch

from pyro_vigen.storage import atomic_path, atomic_write


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.pt"
    atomic_write(path, {"a": torch.ones(2)})

    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_write(path, {"a": torch.zeros(2)})
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]


def test_atomic_write_writes_text_bytes_and_torch_objects(tmp_path):
    atomic_write(tmp_path / "t.txt", "grey levels \u2192 0/1\n")
    atomic_write(tmp_path / "b.png", b"\x89PNG")
    atomic_write(tmp_path / "o.pt", {"step": 3})
    assert (tmp_path / "t.txt").read_bytes() == "grey levels \u2192 0/1\n".encode()
    assert (tmp_path / "b.png").read_bytes() == b"\x89PNG"
    assert torch.load(tmp_path / "o.pt", weights_only=True) == {"step": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "o.pt", "t.txt"]


def test_atomic_files_get_the_mode_of_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "f.txt", "x")
        with atomic_path(tmp_path / "g.nc") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "g.nc").stat().st_mode & 0o777 == 0o640


def test_atomic_path_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "d.nc"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["d.nc"]
