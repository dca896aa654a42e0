"""Atomic writes: a file is either its previous complete version or the new one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file in ``path``'s folder to write; renamed over ``path`` once written.

    For writers that need a file name (netCDF); :func:`atomic_write` covers text, bytes
    and torch objects. After the block the file is synced to disk, given the mode a new
    file gets under the umask, and renamed over ``path``; if the block raises, it is
    removed and ``path`` is left as it was. A process killed at any moment leaves at
    most a stray ``.<name>.*.tmp`` file beside it.

    :param path: the file to write.

    Example::

        from pyro_vigen.storage import atomic_path
        with atomic_path("runs/vae/diagnostics.nc") as tmp:
            idata.to_netcdf(str(tmp))       # idata: an arviz.InferenceData
    """
    path = Path(path)
    # In the same folder, so that the rename stays on one file system and is atomic.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data on disk before the rename makes it the file
        finally:
            os.close(fd)
        # mkstemp makes the file private (0o600); the written file gets the usual mode.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`.

    :param path: the file to write.
    :param data: text (written as UTF-8), bytes or another buffer (as they are), or
        anything else, which is written by :func:`torch.save`.

    Example::

        from pyro_vigen.storage import atomic_write
        atomic_write("runs/vae/notes.txt", "trained on ring8\\n")
        atomic_write("runs/vae/extra.pt", {"step": 200})     # read back by torch.load
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if isinstance(data, str):
            f.write(data.encode("utf-8"))
        elif isinstance(data, (bytes, bytearray, memoryview)):
            f.write(data)
        else:
            torch.save(data, f)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
