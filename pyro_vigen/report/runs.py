"""Reading finished run directories into what a report shows."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..infer import Family, run_family
from ..storage import CHECKPOINT, CONFIG, HISTORY, METRICS, SAMPLES, RunDir, read_history


@dataclasses.dataclass
class RunRecord:
    """One diagnosed run: its settings, metrics, history and saved samples.

    :ivar Path path: the run directory.
    :ivar dict config: its ``config.json``.
    :ivar dict metrics: its ``metrics.json``.
    :ivar dict history: its ``history.csv``, as :func:`~pyro_vigen.storage.read_history` gives it.
    :ivar torch.Tensor samples: the model samples saved at the end of training.

    Example::

        from pyro_vigen.report import read_runs
        record = read_runs(["runs/vae"])[0]     # a diagnosed run
        record.label, record.seed, record.kind   # ('VAE', 0, 'vae')
        record.metrics["kl_forward"], record.samples.shape
    """

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    samples: torch.Tensor

    @property
    def kind(self) -> str:
        return self.config["kind"]

    @property
    def family(self) -> Family:
        """The registered model family of the run."""
        return run_family(self.config, self.path)

    @property
    def seed(self) -> int:
        return self.config["train"]["seed"]

    @property
    def label(self) -> str:
        """The configuration this run belongs to, the same for every seed."""
        return config_label(self.config)


def config_label(config: dict[str, Any]) -> str:
    """A run's configuration as the report's tables name it; runs of one label are pooled.

    The label is the one the run's model family gives (:attr:`Family.label
    <pyro_vigen.infer.Family>`): a VAE is "VAE", with its likelihood named where it is
    not the data's default, as the ELBOs of two likelihoods must not be averaged.
    """
    return run_family(config).label(config)


def find_runs(paths: list[str | os.PathLike]) -> list[Path]:
    """Run directories among ``paths`` and their sub-folders (a folder holding config.json)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise UserError(f"{p} is not a folder")
        found += sorted(c.parent for c in p.rglob(CONFIG))
    if not found:
        raise UserError(
            f"no run directories (folders with {CONFIG}) under {', '.join(map(str, paths))}"
        )
    return found


def read_run(path: Path) -> RunRecord:
    """Read a diagnosed run.

    :raises ValueError: a half-written run (no checkpoint, samples or history) or one that
        was never diagnosed, naming the command that fixes it.
    """
    run = RunDir(path)
    config = run.read_config()
    missing = [name for name in (CHECKPOINT, HISTORY, SAMPLES) if not run.file(name).is_file()]
    if missing:
        raise UserError(
            f"{path} is a half-written run (missing {', '.join(missing)}); finish it with resume=True"
        )
    if not run.file(METRICS).is_file():
        raise UserError(f"{path} was never diagnosed; run `pyro-vigen diagnose {path}` first")
    metrics = json.loads(run.file(METRICS).read_text())
    return RunRecord(path, config, metrics, read_history(run.file(HISTORY)), run.read_samples())


def read_runs(paths: list[str | os.PathLike]) -> list[RunRecord]:
    """Every run under ``paths``; every problem is reported at once, not one per call.

    :param list paths: run directories, or folders holding them at any depth.
    :returns: one :class:`RunRecord` per run found, in path order.
    :raises ValueError: a path that is not a folder, no runs at all, runs that are
        half-written or never diagnosed (all of them named), or runs of more than one
        dataset (see :func:`data_key`), which one report cannot pool.

    Example::

        from pyro_vigen.report import read_runs
        records = read_runs(["runs/compare"])     # every run directory under runs/compare
        sorted({r.label for r in records})
    """
    records, problems = [], []
    for path in find_runs(paths):
        try:
            records.append(read_run(path))
        except UserError as e:
            problems.append(str(e))
    if problems:
        raise UserError(f"{len(problems)} run(s) cannot be reported: " + "; ".join(problems))
    _check_one_dataset(records)
    return records


def data_key(config: dict[str, Any]) -> tuple[str, tuple[int, ...] | None]:
    """The data a run was trained on, as far as its ``config.json`` tells: the dataset's
    name (for the user's own file, its path as given, normalised) and the shape of one
    point, which tells apart two different files of the same name.

    Example::

        from pyro_vigen.report.runs import data_key
        data_key({"data": {"name": "./mine.csv"}, "model": {"data_shape": [3]}})  # ('mine.csv', (3,))
    """
    shape = config.get("model", {}).get("data_shape")
    return os.path.normpath(config["data"]["name"]), None if shape is None else tuple(shape)


def _check_one_dataset(records: list[RunRecord]) -> None:
    """Refuse runs of different data: the report averages runs of one configuration
    label, and metrics of two datasets are not on one scale."""
    folders: dict[tuple[str, tuple[int, ...] | None], list[str]] = {}
    for r in records:
        folders.setdefault(data_key(r.config), []).append(str(r.path))
    if len(folders) > 1:
        found = "; ".join(
            f"{name} (points of shape {'x'.join(map(str, shape)) if shape else 'unknown'}) "
            f"in {', '.join(paths)}"
            for (name, shape), paths in folders.items()
        )
        raise UserError(
            f"the runs are of {len(folders)} different datasets, which one report cannot "
            f"pool: {found}; make one report per dataset"
        )


def numeric_metrics(record: RunRecord) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in record.metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
    }


def summarise(records: list[RunRecord]) -> dict[str, dict[str, dict[str, float]]]:
    """Per configuration: mean, standard deviation (ddof 1) and count of every metric.

    :param list records: the runs, e.g. from :func:`read_runs`.
    :returns: configuration label -> metric -> ``{"mean", "sd", "n"}`` over the runs that have
        that metric (non-numeric and non-finite values are skipped).

    Example::

        from pyro_vigen.report import read_runs, summarise
        summary = summarise(read_runs(["runs/compare"]))
        summary["VAE"]["kl_forward"]      # {'mean': ..., 'sd': ..., 'n': 1}
    """
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.label, []).append(r)
    summary = {}
    for label, group in groups.items():
        keys = sorted(set().union(*(numeric_metrics(r) for r in group)))
        summary[label] = {}
        for key in keys:
            values = np.array([numeric_metrics(r)[key] for r in group if key in numeric_metrics(r)])
            sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            summary[label][key] = {"mean": float(values.mean()), "sd": sd, "n": len(values)}
    return summary
