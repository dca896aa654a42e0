"""The run directory: config, checkpoint, history and samples of one training run."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_save

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.csv"
SAMPLES = "samples.pt"
METRICS = "metrics.json"
DIAGNOSTICS = "diagnostics.nc"

# Settings that may differ between a run and its resumption.
RESUMABLE_CHANGES = {("train", "steps"), ("train", "device")}


class RunDir:
    """Paths and files of a run directory.

    :param path: the run directory's folder.

    Example::

        from pyro_vigen.infer import RunDir
        run = RunDir("runs/vae")
        run.read_config()["kind"]     # 'vae'
        run.checkpoint                # PosixPath('runs/vae/checkpoint.pt')
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.file(CHECKPOINT)

    def read_config(self) -> dict[str, Any]:
        path = self.file(CONFIG)
        if not path.is_file():
            raise ValueError(f"{self.path} is not a run directory (no {CONFIG})")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e})") from None

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.file(f".{name}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.file(name))

    def prepare(self, config: dict[str, Any], *, resume: bool, overwrite: bool) -> bool:
        """Make the folder ready for a run of ``config``.

        :returns: whether training continues from an existing checkpoint.
        :raises ValueError: the folder holds another run and neither ``resume`` nor
            ``overwrite`` was given, or ``resume`` meets a run of different settings.
        """
        if resume and overwrite:
            raise ValueError("choose one of --resume and --overwrite, not both")
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path} exists and is not a folder")
        holds_run = self.file(CONFIG).exists() or self.checkpoint.exists()
        if holds_run and overwrite:
            shutil.rmtree(self.path)
        elif holds_run and not resume:
            raise ValueError(
                f"{self.path} already holds a run; pass --resume to continue it or --overwrite to replace it"
            )
        elif holds_run:
            old = self.read_config()
            diffs = _differences(old, json.loads(json.dumps(config)))  # tuples read back as lists
            if diffs:
                raise ValueError(
                    f"cannot resume {self.path}: its settings differ in {', '.join(diffs)}"
                )
        elif self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise ValueError(f"{self.path} is not empty and holds no run; choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_json(CONFIG, config)
        return resume and self.checkpoint.exists()

    def save_samples(self, samples: torch.Tensor, seed: int) -> None:
        atomic_save({"samples": samples.detach().cpu(), "seed": seed}, self.file(SAMPLES))


def _differences(old: dict, new: dict, prefix: tuple = ()) -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        path = (*prefix, key)
        if path in RESUMABLE_CHANGES or path == ("versions",):
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _differences(a, b, path)
        elif a != b:
            diffs.append(".".join(path))
    return diffs


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

        from pyro_vigen.infer import read_history
        history = read_history("runs/vae/history.csv")
        history["step"][-1], history["loss"][-1]     # (200.0, ...): the last step's loss per point
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {name: [float(r[i]) for r in body] for i, name in enumerate(header)}
