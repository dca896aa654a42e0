"""What the protocol benchmarks share: runs trained, diagnosed, pooled and summarised.

``pacgan_protocol.py`` and ``stacked_modes.py`` each train rows of runs (a model kind, a
pack and the training settings) over seeds in worker processes, diagnose every run,
and write mean, sd and standard error over the seeds to a JSON file. This module holds
the parts they share; each script keeps its protocol, its rows and its tables. The
scripts run as ``python benchmarks/<script>.py``, with this folder first on
``sys.path``, and import it as ``protocol_runs``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from pyro_vigen.diagnostics import diagnose
from pyro_vigen.infer import TrainingDiverged, train
from pyro_vigen.storage import METRICS, RunDir, load_checkpoint


def finished(path: Path, steps: int, num_samples: int) -> bool:
    """Whether a run is trained to ``steps`` and diagnosed on ``num_samples`` samples."""
    run = RunDir(path)
    if not (run.checkpoint.is_file() and run.file(METRICS).is_file()):
        return False
    try:
        done = load_checkpoint(run.checkpoint)["step"] >= steps
    except ValueError:
        return False
    return done and json.loads(run.file(METRICS).read_text()).get("num_samples") == num_samples


def train_and_diagnose(
    path: Path,
    labels: dict,
    kind: str,
    data,
    config,
    model,
    *,
    num_samples: int,
    seed: int,
    metric_keys: dict[str, str],
) -> dict:
    """Train one run (resuming a partial one) and diagnose it, unless it is done already.

    :param Path path: the run directory.
    :param dict labels: what names the run in the results (row, seed, ...).
    :param str kind: the run's model family, ``"gan"`` or ``"vae"``.
    :param data: the run's :class:`~pyro_vigen.data.DataConfig`.
    :param config: its training config (its ``steps`` is the run's budget).
    :param model: its model config.
    :param int num_samples: samples of the diagnosis.
    :param int seed: the diagnosis' seed.
    :param metric_keys: result name -> ``metrics.json`` key, of the values to report.
    :returns: ``labels`` and ``run``, then the metrics, the steps trained, the training
        time of the run (``train_s``, from its checkpoint) and of this call
        (``this_call_s``); or ``labels``, ``run`` and the ``error`` of a diverged run.
    """
    result = {**labels, "run": str(path)}
    t0 = time.perf_counter()
    if not finished(path, config.steps, num_samples):
        resume = RunDir(path).checkpoint.is_file()
        try:
            train(kind, path, data, config, model, resume=resume, progress=False)
        except TrainingDiverged as e:
            return {**result, "error": str(e)}
        diagnose(path, num_samples=num_samples, seed=seed)
    metrics = json.loads(RunDir(path).file(METRICS).read_text())
    checkpoint = load_checkpoint(RunDir(path).checkpoint)
    return {
        **result,
        **{name: metrics[key] for name, key in metric_keys.items()},
        "steps": checkpoint["step"],
        "train_s": checkpoint["wall_time"],
        "this_call_s": time.perf_counter() - t0,
    }


def run_jobs(
    run_one: Callable[..., dict],
    jobs: list[tuple],
    workers: int,
    name: Callable[[dict], str],
    summary: Callable[[dict], str],
) -> list[dict]:
    """``run_one(*job)`` for every job, ``workers`` at a time in spawned processes.

    Prints a line per result as it comes: ``name(result)``, then its error or
    ``summary(result)``.

    :returns: the results, in the order they came.
    """
    results = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(run_one, *job) for job in jobs]
        for future in as_completed(futures):
            r = future.result()
            results.append(r)
            if "error" in r:
                print(f"{name(r)}: FAILED {r['error']}")
            else:
                print(f"{name(r)}: {summary(r)}", flush=True)
    return results


def stats(values: list[float]) -> dict:
    """Mean, sd (from 2 values), standard error and count of ``values``."""
    n = len(values)
    if not n:
        return {"mean": None, "sd": None, "se": None, "n": 0}
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd, "se": sd / math.sqrt(n) if sd is not None else None, "n": n}


def row_summary(
    label: str, kind: str, pack: int, settings: dict, runs: list[dict], metric_keys
) -> dict:
    """A row's settings, its runs by seed, its failed seeds and :func:`stats` per metric."""
    runs = sorted(runs, key=lambda r: r["seed"])
    good = [r for r in runs if "error" not in r]
    return {
        "label": label,
        "kind": kind,
        "pack": pack,
        "settings": settings,
        "per_seed": runs,
        "failed": [r["seed"] for r in runs if "error" in r],
        **{m: stats([r[m] for r in good]) for m in metric_keys},
    }


def fmt(cell: dict, spec: str, scale: float = 1.0) -> str:
    """``mean +- sd`` (``+- se`` where there is no sd key), ``-`` with no mean."""
    if cell["mean"] is None:
        return "-"
    spread = cell.get("sd", cell.get("se"))
    text = format(cell["mean"] * scale, spec)
    return text + ("" if spread is None else " +- " + format(spread * scale, spec))


def add_output_arguments(parser: argparse.ArgumentParser, out: str, json_path: Path) -> None:
    """``--out``, ``--json``, ``--workers`` and ``--device``, with these defaults."""
    parser.add_argument("--out", default=out, help="folder of the run directories")
    parser.add_argument("--json", default=str(json_path), help="results file")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--device", default="cpu", help="torch device of the runs")


def run_budget(wall: float, results: list[dict], device: str, workers: int) -> dict:
    """The end of a report's budget: times, date and machine."""
    return {
        "wall_time_s": wall,
        "train_time_s_per_run": stats([r["train_s"] for r in results if "train_s" in r]),
        "date": datetime.date.today().isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": device,
            "workers": workers,
            "torch_threads_per_run": 1,
        },
    }


def write_report(path: str, report: dict, wall: float) -> None:
    """Write ``report`` as indented JSON and say so."""
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path} ({wall:.0f} s)")
