"""Model families: what one family declares, the registry of them, and the one ``train``.

A family is a kind of model the library trains, diagnoses and reports on: the VAE, the
GAN, the AAE and ALI are the library's (declared in
:mod:`~pyro_vigen.infer.vae_training`, :mod:`~pyro_vigen.infer.gan_training`,
:mod:`~pyro_vigen.infer.aae_training` and :mod:`~pyro_vigen.infer.ali_training`), and a
user adds another by declaring a
:class:`Family` and calling :func:`register`, with no edit to the library. The command
line's ``train <family>``, ``diagnose``, the report and ``compare`` all find the family
of a run by the ``kind`` its ``config.json`` records.

The registry lives here, below the diagnostics and the report, so that data still flows
one way: they read the declarations, and a family's declaration reads nothing above the
training loop (its extra diagnostics are named, not imported; see
:data:`~pyro_vigen.diagnostics.run.EXTRA_DIAGNOSTICS`).
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Callable
from typing import Any

import pyro
import torch
from torch import nn

from .. import __version__
from .. import distributed as dist_state
from ..config import Config
from ..data import DataConfig, Dataset, load_dataset
from ..distributed import World
from ..distributed import init as init_world
from ..errors import UserError
from ..storage import CONFIG, RunDir
from ..threads import torch_threads
from .loop import (
    BatchSampler,
    TensorBoardLog,
    fit,
    linear_decay,
    resolve_device,
    summary_writer_class,
)

__all__ = ["Family", "TrainingStep", "families", "get_family", "register", "run_config", "train"]


#: Flag help of the settings every family's training config has, which :func:`train`
#: reads (see :func:`~pyro_vigen.flags.setting`); a family may use it for its own.
TRAIN_HELP = {
    "steps": "training steps",
    "batch_size": "minibatch size",
    "lr_decay": "share of the run, at its end, over which the learning rates decay linearly "
    "towards zero; 0 keeps them constant",
    "seed": "random seed",
    "checkpoint_every": "steps between checkpoints",
    "num_saved_samples": "model samples saved to samples.pt at the end",
    "device": "cpu, cuda, cuda:N or auto (CUDA where it exists)",
}


@dataclasses.dataclass
class TrainingStep:
    """How a family takes one training step, as :meth:`Family.build_step` returns it.

    :ivar step: ``step(i)`` runs step ``i`` and returns its scalar metrics by ``columns``.
    :ivar dict optims: the :class:`torch.optim.Optimizer` s by name, checkpointed with
        the model (their learning rates follow the run's ``lr_decay``).
    :ivar list columns: the metric names, the columns of ``history.csv``.
    """

    step: Callable[[int], dict[str, float]]
    optims: dict[str, torch.optim.Optimizer]
    columns: list[str]


def _sample(module: nn.Module, num: int, generator: torch.Generator) -> torch.Tensor:
    return module.sample(num, generator=generator)


def _data_as_is(dataset: Dataset, model: Config) -> torch.Tensor:
    return dataset.x


def _no_role(config: dict[str, Any]) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family, declared once: everything the library needs to train, diagnose,
    report and run it from the command line.

    The model is a :class:`torch.nn.Module` built as ``model(model_config)``, with a
    ``sample(num, generator=...)`` method returning ``(num, *data_shape)`` points. Both
    configs are :class:`~pyro_vigen.config.Config` dataclasses whose fields made by
    :func:`~pyro_vigen.flags.setting` are the ``train <name>`` command's flags; the
    model config has a ``data_shape`` field (``None``: taken from the data), and the
    training config ``steps``, ``batch_size``, ``lr_decay``, ``seed``,
    ``checkpoint_every``, ``num_saved_samples`` and ``device``, which :func:`train` reads.

    :ivar str name: the ``kind`` in ``config.json`` and the ``train`` subcommand.
    :ivar str help: the subcommand's one-line help.
    :ivar type model_config: the architecture's config class.
    :ivar type train_config: the optimisation settings' config class.
    :ivar model: builds the model from a model config (usually the model class).
    :ivar build_step: ``build_step(module, train, x, sampler)`` ->
        :class:`TrainingStep`, given the model on its device, the training config, the
        data as the model sees it (on the device) and the minibatch sampler.
    :ivar label: ``label(config)``, the configuration a run's ``config.json`` (a dict)
        belongs to in reports; runs of one label are pooled over seeds.
    :ivar data: ``data(dataset, model_config)``, the training points as the model sees
        them (default: ``dataset.x``); called before the run folder is written, so it
        may raise :class:`~pyro_vigen.errors.UserError` for data the model cannot take.
    :ivar check: ``check(model_config, train_config)``, raising
        :class:`~pyro_vigen.errors.UserError` for settings that do not fit together,
        before anything is loaded or written (default: none).
    :ivar images: ``images(module, num, generator)``, the images a user looks at,
        which diagnostics score and reports show (default: ``module.sample``).
    :ivar str images_are: what ``images`` gives, for ``metrics.json``'s ``image_samples``.
    :ivar tuple diagnostics: the extra diagnostics the family's runs get, by name, from
        :data:`~pyro_vigen.diagnostics.run.EXTRA_DIAGNOSTICS` (``"density"``,
        ``"vi_quality"``, ``"discriminator"``, ``"reconstruction"``, ``"latent"``);
        default none: every run gets both KL
        directions from its samples and, where modes are known, mode coverage.
    :ivar role: ``role(config)``, the ``(role, generator steps)`` a run plays in the
        theory's claims (:mod:`~pyro_vigen.report.claims`), or ``None`` (the default).

    Example (the whole of a family; see the documentation's "Adding a model family")::

        from pyro_vigen.infer import Family, register
        register(Family(name="linear", help="a linear-Gaussian model", model_config=LinearConfig,
                        train_config=LinearTrainConfig, model=LinearGaussian,
                        build_step=linear_step, label=lambda config: "linear-Gaussian"))
    """

    name: str
    help: str
    model_config: type
    train_config: type
    model: Callable[[Any], nn.Module]
    build_step: Callable[[nn.Module, Any, torch.Tensor, BatchSampler], TrainingStep]
    label: Callable[[dict[str, Any]], str]
    data: Callable[[Dataset, Any], torch.Tensor] = _data_as_is
    check: Callable[[Any, Any], None] | None = None
    images: Callable[[nn.Module, int, torch.Generator], torch.Tensor] = _sample
    images_are: str = "samples"
    diagnostics: tuple[str, ...] = ()
    role: Callable[[dict[str, Any]], tuple[str, int] | None] = _no_role


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` to the registry, under ``family.name``.

    Registering the same declaration again does nothing (a worker process of
    ``compare`` that imports the module declaring it registers it again).

    :param Family family: the declaration.
    :returns: ``family``, so that a module can write ``FAMILY = register(Family(...))``.
    :raises UserError: another family already has that name.
    """
    known = _FAMILIES.get(family.name)
    if known is not None and known != family:
        raise UserError(f"a model family named {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The registered family called ``name``, a run's ``kind``.

    :raises UserError: no family of that name.
    """
    if name not in _FAMILIES:
        raise UserError(f"unknown model kind {name!r}; known: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def families() -> dict[str, Family]:
    """Every registered family by name, in the order registered (the VAE, the GAN first)."""
    return dict(_FAMILIES)


def resolve_data_shape(model: Config, dataset: Dataset) -> Config:
    """Fill a model config's ``data_shape`` from the data when it is ``None``, and check it."""
    if model.data_shape is None:
        model = type(model).from_dict({**model.to_dict(), "data_shape": dataset.shape})
    if tuple(model.data_shape) != dataset.shape:
        raise UserError(
            f"data points of {dataset.name!r} have shape {dataset.shape}, but the model expects {tuple(model.data_shape)}"
        )
    return model


def run_config(kind: str, data: DataConfig, model: Config, train: Config) -> dict:
    """``config.json``: every setting, the seed and the library versions."""
    return {
        "kind": kind,
        "data": data.to_dict(),
        "model": model.to_dict(),
        "train": train.to_dict(),
        "versions": {
            "pyro_vigen": __version__,
            "pyro": pyro.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def train(
    family: Family | str,
    out: str | os.PathLike,
    data: DataConfig,
    train: Config,
    model: Config | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    download: bool = False,
    threads: int | None = None,
    tensorboard: str | os.PathLike | None = None,
    distributed: bool = True,
) -> nn.Module:
    """Train a model of ``family`` and write its run directory.

    The run directory holds ``config.json`` (every setting, the seed and the library
    versions), ``checkpoint.pt``, ``history.csv`` (the step's ``columns``) and
    ``samples.pt``, ``train.num_saved_samples`` samples drawn at the end.

    :param family: the family, or its registered name.
    :param out: the run directory.
    :param DataConfig data: the data.
    :param train: the family's training config.
    :param model: the family's model config; ``None`` (or a ``data_shape`` left
        ``None``) takes the defaults for the data.
    :param bool resume: continue from ``out/checkpoint.pt``; the result equals an
        uninterrupted run with the same seed.
    :param bool overwrite: replace a run already in ``out``.
    :param bool progress: show a progress bar.
    :param bool download: let ``mnist`` fetch its files.
    :param int threads: torch's intra-op threads during the run (``None``: the library's
        default, one; see :mod:`pyro_vigen.threads`); the caller's setting is restored
        after. A runtime setting, not part of ``config.json``.
    :param tensorboard: a folder for a TensorBoard log of the run
        (:class:`~pyro_vigen.infer.loop.TensorBoardLog`): the columns of ``history.csv``
        at every step, and at every checkpoint the model's ``images`` of a fixed seed as
        a grid of 64 (images) or 1000 samples over the data (points). A runtime setting,
        not part of ``config.json``: training is the same with or without it. ``None``:
        no log.
    :param bool distributed: under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment),
        train data-parallel over its ranks (:mod:`pyro_vigen.distributed`):
        ``train.batch_size`` is the global batch, split evenly over the ranks, gradients
        are averaged before every optimiser step, ``history.csv`` holds the ranks' mean
        metrics, and rank 0 alone writes the run directory; ``config.json`` records the
        world size and the batch per rank under ``distributed``. ``False``: train in
        this process alone whatever the environment (``compare`` under ``torchrun``
        trains whole runs per rank so). Outside ``torchrun`` it changes nothing.
    :returns: the trained model.
    :raises TrainingDiverged: a loss became NaN or infinite (the last checkpoint stays).
    :raises ~pyro_vigen.infer.loop.TensorBoardUnavailable: ``tensorboard`` asked for but
        not installed.

    Example::

        from pyro_vigen.data import DataConfig
        from pyro_vigen.infer import VAETrainConfig, train
        vae = train("vae", "runs/vae", DataConfig("ring8"), VAETrainConfig(steps=200))
        samples = vae.sample(1000)     # (1000, 2); the run is in runs/vae
    """
    family = get_family(family) if isinstance(family, str) else family
    model = model or family.model_config()
    # Before the run folder is made: bad settings leave nothing behind.
    if family.check is not None:
        family.check(model, train)
    if tensorboard is not None:
        summary_writer_class()
    with torch_threads(threads):
        device = resolve_device(train.device)
        here = init_world(device) if distributed else World()
        if here.size > 1 and device.type == "cuda":
            device = torch.device("cuda", here.local_rank)
            torch.cuda.set_device(device)
        dataset = load_dataset(data, download=download)
        model = resolve_data_shape(model, dataset)
        x = family.data(dataset, model)
        # Before anything is written: the batch must split over the ranks.
        sampler = BatchSampler(
            x.shape[0], train.batch_size, train.seed, rank=here.rank, world_size=here.size
        )
        config = run_config(family.name, data, model, train)
        if here.size > 1:
            config["distributed"] = {
                "world_size": here.size,
                "batch_size": "global, split evenly over the ranks",
                "batch_size_per_rank": sampler.batch_size,
            }
        run = RunDir(out)
        resuming = _prepare(run, config, here, resume=resume, overwrite=overwrite)
        pyro.set_rng_seed(train.seed)
        module = family.model(model).to(device)
        if here.size > 1:
            # The same initial parameters (the seed's) everywhere, then each rank's own noise.
            dist_state.broadcast_state(module)
            pyro.set_rng_seed(dist_state.rank_seed(train.seed, here.rank))
        x = x.to(device)
        step = family.build_step(module, train, x, sampler)
        step_fn = step.step
        if here.size > 1:
            for optim in step.optims.values():
                dist_state.average_gradients(optim, here.size)
            step_fn = _averaged(step.step, module, here.size)
        if not here.is_main:
            tensorboard = None

        def draw(num: int) -> torch.Tensor:
            gen = torch.Generator(device=device).manual_seed(train.seed)
            # Images as a user looks at them (a VAE's decoder means), points as drawn.
            shown = family.images if dataset.is_image else _sample
            return shown(module, num, gen)

        fit(
            run,
            kind=family.name,
            module=module,
            optims=step.optims,
            sampler=sampler,
            step_fn=step_fn,
            columns=step.columns,
            steps=train.steps,
            checkpoint_every=train.checkpoint_every,
            resume=resuming,
            progress=progress,
            lr_factor=linear_decay(train.steps, train.lr_decay),
            tensorboard=None if tensorboard is None else TensorBoardLog(tensorboard, draw, x),
            world=here,
        )
        if here.is_main:
            gen = torch.Generator(device=device).manual_seed(train.seed)
            run.save_samples(module.sample(train.num_saved_samples, generator=gen), train.seed)
        return module


def _prepare(run: RunDir, config: dict, here: World, *, resume: bool, overwrite: bool) -> bool:
    """:meth:`RunDir.prepare` on rank 0; every rank learns whether the run resumes, or
    raises what rank 0 raised."""
    if here.size == 1:
        _check_world_size(run, here, resume)
        return run.prepare(config, resume=resume, overwrite=overwrite)
    resuming, error = False, None
    if here.is_main:
        try:
            _check_world_size(run, here, resume)
            resuming = run.prepare(config, resume=resume, overwrite=overwrite)
        except Exception as e:  # every rank must hear of it, or the others wait forever
            error = e
    dist_state.agree(error)
    box = [resuming]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _check_world_size(run: RunDir, here: World, resume: bool) -> None:
    """Refuse to resume a run on another number of ranks than it was trained on: the
    batches and the noise would differ, and the result would be no continuation of it."""
    if not (resume and run.file(CONFIG).is_file()):
        return
    ranks = run.read_config().get("distributed", {}).get("world_size", 1)
    if ranks != here.size:
        raise UserError(
            f"{run.path} was trained on {ranks} rank(s) and this launch has {here.size}: "
            f"resume it on {ranks} (torchrun --nproc-per-node {ranks}, or no torchrun for 1)"
        )


def _averaged(step_fn: Callable, module: nn.Module, size: int) -> Callable:
    """``step_fn`` whose metrics are the ranks' means, the module's buffers rank 0's.

    Batch norm's running statistics follow each rank's own batches; taking rank 0's
    after every step keeps the ranks' models identical, as DistributedDataParallel does.
    """
    buffers = list(module.buffers())
    device = next(module.parameters()).device

    def step(i: int) -> dict[str, float]:
        metrics = step_fn(i)
        for buffer in buffers:
            torch.distributed.broadcast(buffer, src=0)
        return dist_state.average_metrics(metrics, size, device)

    return step
