"""``pyro-vigen compare``: the VAE, the classic GAN, its ablation and the data-prior GAN.

Four configurations per seed, trained and diagnosed in parallel processes, then one
report. The third configuration is the fair ablation of the fourth: the same two
generator steps per snapshot, without the penalty, so a difference between them is
the data prior's and not the extra generator step's.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..data import DATASETS, DataConfig
from ..infer.checkpoint import load_checkpoint
from ..infer.run import METRICS, RunDir
from .document import write_report
from .runs import read_runs, summarise

# name -> (model kind, training settings that differ from the defaults)
CONFIGURATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "vae": ("vae", {}),
    "gan_mixed_1step": ("gan", {"prior": "mixed", "gen_steps": 1}),
    "gan_mixed_2steps": ("gan", {"prior": "mixed", "gen_steps": 2}),
    "gan_data_2steps": ("gan", {"prior": "data", "gen_steps": 2, "reg_weight": 5.0}),
}


def _run_is_finished(path: Path, steps: int) -> bool:
    run = RunDir(path)
    if not (run.checkpoint.is_file() and run.file(METRICS).is_file()):
        return False
    try:
        return load_checkpoint(run.checkpoint)["step"] >= steps
    except ValueError:
        return False


def _train_and_diagnose(
    kind: str, overrides: dict, data: dict, steps: int, seed: int, out: str, num_samples: int
) -> str:
    """One run, in a worker process: train (resuming a partial run), then diagnose."""
    import torch

    from ..diagnostics import diagnose
    from ..infer import GANTrainConfig, VAETrainConfig, train_gan, train_vae

    torch.set_num_threads(
        1
    )  # the workers share the cores; one thread each keeps them from fighting
    data_config = DataConfig.from_dict(data)
    resume = RunDir(out).checkpoint.is_file()
    if kind == "vae":
        train_vae(
            out,
            data_config,
            VAETrainConfig(steps=steps, seed=seed, **overrides),
            resume=resume,
            progress=False,
        )
    else:
        train_gan(
            out,
            data_config,
            GANTrainConfig(steps=steps, seed=seed, **overrides),
            resume=resume,
            progress=False,
        )
    diagnose(out, num_samples=num_samples)
    return out


def compare(
    data: DataConfig,
    seeds: int,
    out: str | os.PathLike,
    *,
    steps: int = 1200,
    num_samples: int = 5000,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Train and diagnose the four configurations for ``seeds`` seeds; write the report.

    Rerunning the same command skips finished runs and resumes interrupted ones.

    :returns: the path of ``out/report.html``; ``out/summary.json`` holds the mean and
        standard deviation over seeds of every metric, per configuration.
    :raises ValueError: no seeds, an unknown dataset, or runs that failed (the others
        are kept).
    :param DataConfig data: the data every run trains on.
    :param int seeds: number of seeds, ``0..seeds-1``, per configuration.
    :param out: the output folder; run ``<name>/seed<i>`` of each configuration goes under it.
    :param int steps: training steps (iterations for a GAN) of every run.
    :param int num_samples: model samples drawn by :func:`~pyro_vigen.diagnostics.diagnose`.
    :param int workers: parallel worker processes (default: up to 2).
    :param bool progress: show a progress bar.

    Example::

        from pyro_vigen.data import DataConfig
        from pyro_vigen.report import compare
        if __name__ == "__main__":   # the runs go to worker processes, which import this script
            compare(DataConfig("ring8"), seeds=1, out="runs/compare", steps=50, num_samples=1000)
            # -> PosixPath('runs/compare/report.html'), with runs/compare/summary.json beside it
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be a positive integer, got {seeds!r}")
    if data.name not in DATASETS and not Path(data.name).is_file():
        raise ValueError(
            f"unknown dataset {data.name!r}: use one of {', '.join(DATASETS)}, or a path to a data file"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (kind, overrides, data.to_dict(), steps, seed, str(out / name / f"seed{seed}"), num_samples)
        for seed in range(seeds)
        for name, (kind, overrides) in CONFIGURATIONS.items()
    ]
    todo = [job for job in jobs if not _run_is_finished(Path(job[5]), steps)]
    failures = []
    workers = workers or min(2, os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="compare", disable=not progress)
    with bar, ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_and_diagnose, *job): job for job in todo}
        for future in as_completed(futures):
            try:
                future.result()
            except ValueError as e:
                failures.append(f"{futures[future][5]}: {e}")
            bar.update()
    if failures:
        raise ValueError(
            f"{len(failures)} run(s) failed (finished runs are kept): " + "; ".join(failures)
        )

    run_paths = [job[5] for job in jobs]
    summary = summarise(read_runs(run_paths))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return write_report(run_paths, out / "report.html", title=f"pyro_vigen compare on {data.name}")
