"""The run directory: the files of one training run, and how they are named."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from .atomic import atomic_write

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

        from pyro_vigen.storage import RunDir
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
            raise UserError(f"{self.path} is not a run directory (no {CONFIG})")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{path} is not valid JSON ({e})") from None

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        atomic_write(self.file(name), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def prepare(self, config: dict[str, Any], *, resume: bool, overwrite: bool) -> bool:
        """Make the folder ready for a run of ``config``.

        :returns: whether training continues from an existing checkpoint.
        :raises ValueError: the folder holds another run and neither ``resume`` nor
            ``overwrite`` was given, or ``resume`` meets a run of different settings.
        """
        if resume and overwrite:
            raise UserError("choose one of resume=True and overwrite=True, not both")
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path} exists and is not a folder")
        holds_run = self.file(CONFIG).exists() or self.checkpoint.exists()
        if holds_run and overwrite:
            shutil.rmtree(self.path)
        elif holds_run and not resume:
            raise UserError(
                f"{self.path} already holds a run; pass resume=True to continue it or overwrite=True to replace it"
            )
        elif holds_run:
            old = self.read_config()
            diffs = _differences(old, json.loads(json.dumps(config)))  # tuples read back as lists
            if diffs:
                raise UserError(
                    f"cannot resume {self.path}: its settings differ in {', '.join(diffs)}"
                )
        elif self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise UserError(
                f"{self.path} is not empty and holds no run; choose another out", field="out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_json(CONFIG, config)
        return resume and self.checkpoint.exists()

    def save_samples(self, samples: torch.Tensor, seed: int) -> None:
        atomic_write(self.file(SAMPLES), {"samples": samples.detach().cpu(), "seed": seed})

    def read_samples(self) -> torch.Tensor:
        """The model samples :meth:`save_samples` wrote at the end of training, on the CPU."""
        return torch.load(self.file(SAMPLES), map_location="cpu", weights_only=True)["samples"]


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
