"""``pyro-vigen compare``: the VAE, the classic GAN, the data-prior GAN and its ablation,
and on request the IWGAN, the adversarial autoencoder and ALI.

Four configurations per seed by default (:data:`DEFAULT_FAMILIES`), trained and diagnosed in parallel processes, then one
report whose first table says which of the theory's five claims held in which seed
(:mod:`pyro_vigen.report.claims`). The defaults are the budget the claims need on the
toy mixtures: the models are trained to convergence, not stopped early.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..config import require_positive
from ..data import DATASETS, DataConfig, load_dataset
from ..distributed import World, gather, world
from ..distributed import init as init_world
from ..errors import UserError
from ..infer import AAE_FAMILY, ALI_FAMILY, GAN_FAMILY, VAE_FAMILY, Family, register, train
from ..infer.loop import summary_writer_class
from ..storage import METRICS, RunDir, atomic_write, load_checkpoint
from ..threads import resolve_threads
from .claims import check_claims
from .document import write_report
from .runs import read_runs, summarise

#: GAN iterations of every GAN run. The classic GAN on ring8 can sit on no mode for
#: its first 6,000 iterations before it finds them (seed 0).
STEPS = 10_000
#: SVI steps of the VAE run; they are cheaper than GAN iterations, and the VAE's
#: density keeps improving (its forward KL on ring8 fell by a third from 10,000 to 20,000).
VAE_STEPS = 20_000
#: Generator steps per snapshot of the data-prior GAN and of its ablation, the same GAN
#: without the penalty. The penalty is a proximal term: it acts only with two or more
#: steps, and the more steps, the further the unpenalised generator overshoots. On
#: ring8 with three, the ablation ended on no mode in each of 3 seeds where the data
#: prior found all 8; with two it collapsed in one seed of three.
GEN_STEPS = 3
#: The data prior's weight per unit of the data's spread: lambda = this / the data's
#: total variance, so that the penalty's Gaussian width sqrt(1 / 2 lambda) is the same
#: share of the data's scale on every dataset (lambda = 5 on ring8, 0.31 on grid25).
RELATIVE_REG_WEIGHT = 5.0
#: Share of every run, at its end, over which the learning rates decay linearly to zero,
#: so that each model ends where its noisy last iterations hover (see ``linear_decay``).
LR_DECAY = 0.5
#: The budget on images, whose conv nets cost a hundred times a toy MLP's step. GAN
#: iterations by image side: what fits about 5 to 10 minutes of one core for the classic
#: GAN (0.05 s an iteration on 8x8 images, 0.18 s on 28x28). On digits its precision
#: rose from 0.43 at 3,000 iterations to 0.70 at 9,000 (seed 0).
IMAGE_STEPS = {8: 9000, 28: 3000, 32: 3000}
#: VAE steps on images, and the minibatch of every image run (DCGAN's scale; 256 images
#: a step would quadruple the time).
IMAGE_VAE_STEPS = 3000
IMAGE_BATCH_SIZE = 64


#: What ``compare --families`` takes: each name a group of configurations (see
#: :func:`configurations`).
FAMILY_GROUPS = ("vae", "gan", "iwgan", "aae", "ali")
#: The groups of a plain ``compare``: the four configurations the theory's claims are about.
DEFAULT_FAMILIES = ("vae", "gan")


def check_families(families) -> tuple[str, ...]:
    """``families`` as a tuple of known group names, each once, in the order given.

    :raises ValueError: an unknown name, a repeated one, or none.
    """
    families = tuple(families)
    unknown = [name for name in families if name not in FAMILY_GROUPS]
    if unknown or not families or len(set(families)) != len(families):
        what = f"unknown {', '.join(map(repr, unknown))}" if unknown else "each name once"
        raise UserError(
            f"families: {what}; give one or more of {', '.join(FAMILY_GROUPS)}",
            field="families",
        )
    return families


def default_steps(data: DataConfig) -> tuple[int, int]:
    """The GAN iterations and VAE steps of ``compare`` on ``data``: ``(steps, vae_steps)``."""
    dataset = load_dataset(data)
    if dataset.is_image:
        return IMAGE_STEPS[dataset.shape[-1]], IMAGE_VAE_STEPS
    return STEPS, VAE_STEPS


def configurations(
    data: DataConfig, families=DEFAULT_FAMILIES
) -> dict[str, tuple[Family, dict[str, Any]]]:
    r"""The configurations of ``families`` on ``data``: name -> (model family, training settings).

    The groups (:data:`FAMILY_GROUPS`):

    - ``vae``: ``"vae"``;
    - ``gan``: ``"gan_mixed_1step"`` (the classic GAN), ``"gan_mixed_<k>steps"`` (the
      ablation) and ``"gan_data_<k>steps"`` (the data prior), k = :data:`GEN_STEPS`;
    - ``iwgan``: ``"iwgan_mixed_1step"``, the classic GAN with the importance-weighted
      generator loss;
    - ``aae``: ``"aae"``, the adversarial autoencoder (its GAN on z classic);
    - ``ali``: ``"ali_mixed_1step"``, ALI with the mixed prior (points only).

    The settings are those that differ from the training configs' defaults (the
    number of steps is :func:`compare`'s, by family); the
    data prior's :math:`\lambda` is :data:`RELATIVE_REG_WEIGHT` over the total variance
    of the training data, to two significant digits; on images every run takes
    minibatches of :data:`IMAGE_BATCH_SIZE`.

    :param DataConfig data: the data the runs train on.
    :param families: the groups, :data:`DEFAULT_FAMILIES` by default.
    :raises ValueError: an unknown group, or ``ali`` on images.
    """
    families = check_families(families)
    dataset = load_dataset(data)
    if dataset.is_image and "ali" in families:
        raise UserError(
            f"ALI takes points, and {data.name} holds images; leave ali out of --families",
            field="families",
        )
    variance = float(dataset.x.flatten(1).var(0).sum())
    reg_weight = float(f"{RELATIVE_REG_WEIGHT / variance:.2g}")
    decay = {"lr_decay": LR_DECAY}
    if dataset.is_image:
        decay["batch_size"] = IMAGE_BATCH_SIZE
    classic = {"prior": "mixed", "gen_steps": 1, **decay}
    groups = {
        "vae": {"vae": (VAE_FAMILY, decay)},
        "gan": {
            "gan_mixed_1step": (GAN_FAMILY, classic),
            f"gan_mixed_{GEN_STEPS}steps": (
                GAN_FAMILY,
                {"prior": "mixed", "gen_steps": GEN_STEPS, **decay},
            ),
            f"gan_data_{GEN_STEPS}steps": (
                GAN_FAMILY,
                {"prior": "data", "gen_steps": GEN_STEPS, "reg_weight": reg_weight, **decay},
            ),
        },
        "iwgan": {"iwgan_mixed_1step": (GAN_FAMILY, {"loss": "importance_weighted", **classic})},
        "aae": {"aae": (AAE_FAMILY, classic)},
        "ali": {"ali_mixed_1step": (ALI_FAMILY, classic)},
    }
    return {name: config for group in families for name, config in groups[group].items()}


def _run_is_finished(path: Path, steps: int) -> bool:
    run = RunDir(path)
    if not (run.checkpoint.is_file() and run.file(METRICS).is_file()):
        return False
    try:
        return load_checkpoint(run.checkpoint)["step"] >= steps
    except UserError:
        return False


def _train_and_diagnose(
    family: Family,
    settings: dict,
    data: dict,
    seed: int,
    out: str,
    num_samples: int,
    threads: int | None = None,
    tensorboard: str | None = None,
) -> str:
    """One run, in a worker process: train (resuming a partial run), then diagnose.

    ``family`` comes pickled, its functions by reference: unpickling imports the module
    that declares it, and registering it here makes a family declared outside the
    library known to the worker's ``diagnose`` too. ``threads`` is torch's intra-op
    threads in this worker (``None``: the library's default, one, which keeps the
    workers that share the cores from fighting); ``tensorboard`` the run's TensorBoard
    folder (``None``: no log).
    """
    from ..diagnostics import diagnose

    register(family)
    train(
        family,
        out,
        DataConfig.from_dict(data),
        family.train_config(seed=seed, **settings),
        resume=RunDir(out).checkpoint.is_file(),
        progress=False,
        threads=threads,
        tensorboard=tensorboard,
        distributed=False,  # under torchrun each rank trains whole runs
    )
    diagnose(out, num_samples=num_samples, threads=threads)
    return out


def _sweep_over_ranks(todo: list, here: World, threads, log_dir) -> list[str]:
    """Under ``torchrun``: this rank trains and diagnoses every ``size``-th run of ``todo``
    in its own process, one after another; returns every rank's failures, once all ranks
    are done (each rank waits for the slowest)."""
    init_world(torch.device("cpu"))
    failures = []
    for job in todo[here.rank :: here.size]:
        try:
            _train_and_diagnose(*job, threads=threads, tensorboard=log_dir(job[4]))
        except UserError as e:
            failures.append(f"{job[4]}: {e}")
    return [failure for rank in gather(failures) for failure in rank]


def compare(
    data: DataConfig,
    seeds: int,
    out: str | os.PathLike,
    *,
    steps: int | None = None,
    vae_steps: int | None = None,
    num_samples: int = 5000,
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    tensorboard: str | os.PathLike | None = None,
    families=None,
    configs: dict[str, tuple[Family, dict[str, Any]]] | None = None,
) -> Path:
    """Train and diagnose the configurations of ``families`` (by default the four the
    theory's claims are about) for ``seeds`` seeds; write the report.

    Rerunning the same command skips finished runs and resumes interrupted ones.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the ranks share the sweep: each trains and
    diagnoses every ``WORLD_SIZE``-th run in its own process, one thread each (the
    ``workers`` argument is then unused), and rank 0 writes the summary and the report
    once all ranks are done; every rank returns its path.

    :returns: the path of ``out/report.html``. ``out/summary.json`` holds
        ``configurations``, the mean and standard deviation over seeds of every metric
        per configuration (:func:`~pyro_vigen.report.summarise`), and ``claims``, the
        theory's five claims checked seed by seed
        (:func:`~pyro_vigen.report.check_claims`).
    :raises ValueError: no seeds, an unknown dataset, or runs that failed (the others
        are kept).
    :param DataConfig data: the data every run trains on.
    :param int seeds: number of seeds, ``0..seeds-1``, per configuration.
    :param out: the output folder; run ``<name>/seed<i>`` of each configuration goes under it.
    :param int steps: iterations of every GAN run (``None``: :data:`STEPS`, or
        :data:`IMAGE_STEPS` of the image side on images).
    :param int vae_steps: SVI steps of the VAE runs (``None``: :data:`VAE_STEPS`, or
        :data:`IMAGE_VAE_STEPS` on images).
    :param int num_samples: model samples drawn by :func:`~pyro_vigen.diagnostics.diagnose`.
    :param int workers: parallel worker processes (default: up to 2).
    :param int threads: torch's intra-op threads per worker (``None``: the library's
        default, one; see :mod:`pyro_vigen.threads`).
    :param bool progress: show a progress bar.
    :param tensorboard: a folder for the TensorBoard logs of the runs trained now, run
        ``<name>/seed<i>`` in its subfolder of that name (see ``tensorboard`` of
        :func:`~pyro_vigen.infer.train`; finished runs are skipped, and log nothing).
        A runtime setting: the runs are the same with or without it. ``None``: no logs.
    :param families: the groups of configurations to run (see :func:`configurations`),
        e.g. ``("vae", "gan", "iwgan", "aae", "ali")``; ``None``: :data:`DEFAULT_FAMILIES`.
    :param dict configs: the configurations to run, in place of ``families``, name -> (model family, training
        settings), as :func:`configurations` gives them; a family declared outside the
        library takes part by being among them (its module must be importable by the
        worker processes). A configuration's ``steps`` is ``vae_steps`` for the VAE
        family and ``steps`` for every other, unless its settings name their own.
        ``None``: :func:`configurations` of ``data`` and ``families``.

    Example::

        from pyro_vigen.data import DataConfig
        from pyro_vigen.report import compare
        if __name__ == "__main__":   # the runs go to worker processes, which import this script
            compare(DataConfig("ring8"), seeds=1, out="runs/compare", steps=50, vae_steps=50,
                    num_samples=1000)
            # -> PosixPath('runs/compare/report.html'), with runs/compare/summary.json beside it
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UserError(f"seeds must be a positive integer, got {seeds!r}", field="seeds")
    resolve_threads(threads)  # a bad count fails here, not in every worker
    if tensorboard is not None:
        summary_writer_class()  # and so does a missing tensorboard
    if data.name not in DATASETS and not Path(data.name).is_file():
        raise UserError(
            f"unknown dataset {data.name!r}: use one of {', '.join(DATASETS)}, or a path to a data file"
        )
    if configs is not None and families is not None:
        raise UserError("give families or configs, not both", field="families")
    if configs is None:
        configs = configurations(data, DEFAULT_FAMILIES if families is None else families)
    if steps is None or vae_steps is None:
        default_gan, default_vae = default_steps(data)
        steps = default_gan if steps is None else steps
        vae_steps = default_vae if vae_steps is None else vae_steps
    require_positive("steps", steps, integer=True)
    require_positive("vae_steps", vae_steps, integer=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budget = {VAE_FAMILY.name: vae_steps}
    jobs = [
        (
            family,
            {"steps": budget.get(family.name, steps), **settings},
            data.to_dict(),
            seed,
            str(out / name / f"seed{seed}"),
            num_samples,
        )
        for seed in range(seeds)
        for name, (family, settings) in configs.items()
    ]
    todo = [job for job in jobs if not _run_is_finished(Path(job[4]), job[1]["steps"])]

    def log_dir(run: str) -> str | None:
        return None if tensorboard is None else str(Path(tensorboard, Path(run).relative_to(out)))

    here = world()
    if here.size > 1:
        failures = _sweep_over_ranks(todo, here, threads, log_dir)
    else:
        failures = []
        workers = workers or min(2, os.cpu_count() or 1)
        bar = tqdm(
            total=len(jobs), initial=len(jobs) - len(todo), desc="compare", disable=not progress
        )
        context = multiprocessing.get_context("spawn")
        with bar, ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {
                pool.submit(
                    _train_and_diagnose, *job, threads=threads, tensorboard=log_dir(job[4])
                ): job
                for job in todo
            }
            for future in as_completed(futures):
                try:
                    future.result()
                except UserError as e:  # a bug of the library stops the comparison
                    failures.append(f"{futures[future][4]}: {e}")
                bar.update()
    if failures:
        raise UserError(
            f"{len(failures)} run(s) failed (finished runs are kept): " + "; ".join(failures)
        )

    run_paths = [job[4] for job in jobs]
    report = out / "report.html"
    if here.is_main:  # under torchrun, rank 0 writes; the others wait for it
        records = read_runs(run_paths)
        summary = {
            "dataset": data.name,
            "configurations": summarise(records),
            "claims": check_claims(records),
        }
        atomic_write(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
        report = write_report(run_paths, report, title=f"pyro_vigen compare on {data.name}")
    if here.size > 1:
        torch.distributed.barrier()
    return report
