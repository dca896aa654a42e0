"""``history.csv``: the metrics of every training step."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any


class History:
    """``history.csv``: one row per step, buffered and flushed with each checkpoint.

    On resume, rows after the checkpoint's step (written just before a crash) are dropped,
    so the file always agrees with the checkpoint.
    """

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = path
        self.columns = ["step", *columns, "wall_time"]
        self._rows: list[list[Any]] = []

    def start(self, step: int) -> None:
        kept = []
        if step > 0 and self.path.exists():
            with self.path.open(newline="") as f:
                kept = [r for r in csv.reader(f)][1:]
            kept = [r for r in kept if r and int(r[0]) <= step]
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerows([self.columns, *kept])

    def append(self, row: list[Any]) -> None:
        self._rows.append(row)

    def flush(self) -> None:
        if self._rows:
            with self.path.open("a", newline="") as f:
                csv.writer(f).writerows(self._rows)
            self._rows = []


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """``history.csv`` as columns of floats.

    :param path: the ``history.csv`` file.
    :returns: column name (``step``, the metrics, ``wall_time``) -> values, one per step.

    Example::

        from pyro_vigen.storage import read_history
        history = read_history("runs/vae/history.csv")
        history["step"][-1], history["loss"][-1]     # (200.0, ...): the last step's loss per point
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {name: [float(r[i]) for r in body] for i, name in enumerate(header)}
