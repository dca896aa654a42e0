"""The training loop shared by every model: minibatches, history, checkpoints, resume."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyro
import torch
from torch import nn
from tqdm.auto import tqdm

from ..distributed import World, gather
from ..errors import UserError
from ..storage import (
    HISTORY,
    History,
    RunDir,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the last complete checkpoint is left in place.

    Example::

        from pyro_vigen.data import DataConfig
        from pyro_vigen.infer import TrainingDiverged, VAETrainConfig, train
        try:
            train("vae", "runs/vae_lr", DataConfig("ring8"), VAETrainConfig(steps=100, lr=0.5))
        except TrainingDiverged as e:   # if the loss becomes NaN or inf (a ValueError)
            print(e)                    # e.g. "loss became nan at step 57; ..."
    """


class BatchSampler:
    """Minibatch indices, reshuffled every epoch, with a state a checkpoint can hold.

    The last incomplete batch of an epoch is dropped, so every batch has the same size.
    Under data-parallel training each of ``world_size`` ranks takes its own slice of
    every global batch (the ranks share the seed, and so the permutation): rank r gets
    positions ``r b .. (r + 1) b - 1`` of it, b = ``batch_size / world_size``.

    :param int n: number of data points.
    :param int batch_size: points per global batch (at most ``n``).
    :param int seed: seed of the shuffling.
    :param int rank: this rank.
    :param int world_size: the number of ranks, a divisor of the global batch.
    :ivar int batch_size: the points of this rank's batches.
    :raises ValueError: a global batch that does not split evenly over the ranks.

    Example::

        from pyro_vigen.infer import BatchSampler
        sampler = BatchSampler(1000, batch_size=256, seed=0)
        idx = sampler.next()            # 256 indices; a new permutation every 3 batches
        state = sampler.state_dict()    # sampler.load_state_dict(state) resumes from here
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n = n
        self.global_batch_size = min(batch_size, n)
        if self.global_batch_size % world_size:
            raise UserError(
                f"a global batch of {self.global_batch_size} points does not split evenly "
                f"over {world_size} ranks; use a batch_size that is a multiple of {world_size}",
                field="batch_size",
            )
        self.batch_size = self.global_batch_size // world_size
        self.rank = rank
        self.generator = torch.Generator().manual_seed(seed)
        self._epoch_state: torch.Tensor | None = None
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next(self) -> torch.Tensor:
        if self._pos + self.global_batch_size > self._perm.numel():
            self._epoch_state = self.generator.get_state()
            self._perm = torch.randperm(self.n, generator=self.generator)
            self._pos = 0
        start = self._pos + self.rank * self.batch_size
        idx = self._perm[start : start + self.batch_size]
        self._pos += self.global_batch_size
        return idx

    def state_dict(self) -> dict:
        return {"epoch_state": self._epoch_state, "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        if state["epoch_state"] is not None:
            self.generator.set_state(state["epoch_state"])
            self._epoch_state = state["epoch_state"]
            self._perm = torch.randperm(self.n, generator=self.generator)
        self._pos = state["pos"]


#: Model samples in each TensorBoard picture: a grid of images, or points over the data.
TENSORBOARD_IMAGES = 64
TENSORBOARD_POINTS = 1000


class TensorBoardUnavailable(ImportError, UserError):
    """TensorBoard logging was asked for, but the ``tensorboard`` package is missing.

    Also a :class:`ValueError`, so the command line reports it in one line, as it does
    every setting it cannot honour.
    """


def summary_writer_class() -> type:
    """:class:`torch.utils.tensorboard.SummaryWriter`, imported only when logging is asked for.

    :raises TensorBoardUnavailable: ``tensorboard`` is not installed.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TensorBoardUnavailable(
            "TensorBoard logging needs the tensorboard package: "
            "pip install tensorboard (or pip install 'pyro-vigen[tensorboard]')"
        ) from None
    return SummaryWriter


class TensorBoardLog:
    """A run's TensorBoard log: every metric at every step, the model's samples at checkpoints.

    The scalars are ``train/<column>`` for each metric column of ``history.csv`` (a VAE's
    ``loss``, the negative ELBO per point; a GAN's ``disc_loss``, ``gen_loss`` and
    ``penalty``), the very values written there; each event carries its own wall time.
    The image ``samples`` is drawn at every checkpoint and at the last step: a grid of
    :data:`TENSORBOARD_IMAGES` images for image data, else a scatter plot of
    :data:`TENSORBOARD_POINTS` samples (red) over as many data points (grey), in the
    first two coordinates (a histogram for 1-D data), on axes fixed by the data so the
    pictures compare across steps.

    Logging leaves training untouched: ``draw`` must take its random numbers from its
    own generator, never from torch's global one, so a run with logging computes what
    one without it does, and resumes exactly.

    :param log_dir: the folder of the event files (made if missing). A resumed run
        appends to it, and TensorBoard hides the steps after the checkpoint that the
        interrupted run had logged.
    :param draw: ``draw(n)`` returns ``n`` model samples, shaped as the data; a fresh
        generator with a fixed seed in each call draws the same z every time, so the
        pictures show the model changing and not the noise.
    :param data: the training data, a tensor of points ``(N, D)`` or images
        ``(N, C, H, W)``.
    :raises TensorBoardUnavailable: ``tensorboard`` is not installed.

    Example::

        log = TensorBoardLog("runs/tb", lambda n: vae.sample(n, generator=torch.Generator().manual_seed(0)), x)
        fit(..., tensorboard=log)    # then: tensorboard --logdir runs/tb
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        draw: Callable[[int], torch.Tensor],
        data: torch.Tensor,
    ) -> None:
        self._writer_class = summary_writer_class()
        self.log_dir = Path(log_dir)
        self.draw = draw
        self.is_image = data.dim() == 4
        self.data = data[:TENSORBOARD_POINTS].flatten(1).cpu()
        self.writer = None

    def open(self, start: int) -> TensorBoardLog:
        """Start writing after step ``start`` (0 for a new run); close with ``with``."""
        self.writer = self._writer_class(str(self.log_dir), purge_step=start + 1 if start else None)
        return self

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    def scalars(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"train/{name}", value, step)

    def checkpoint(self, step: int) -> None:
        """Draw the samples' picture and flush, so the log holds what ``history.csv`` does."""
        if self.is_image:
            from torchvision.utils import make_grid

            images = self.draw(TENSORBOARD_IMAGES).cpu().clamp(0, 1)
            self.writer.add_image("samples", make_grid(images, nrow=8, pad_value=1.0), step)
        else:
            points = self.draw(TENSORBOARD_POINTS).flatten(1).cpu()
            self.writer.add_image("samples", self._scatter(points), step, dataformats="HWC")
        self.writer.flush()

    def _scatter(self, points: torch.Tensor) -> np.ndarray:
        """The samples over the data as an RGB array (Agg, without pyplot's global state)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4, 4), dpi=80)
        ax = fig.add_subplot()
        data, points = self.data.numpy(), points.numpy()
        if points.shape[1] == 1:
            bins = np.histogram_bin_edges(data[:, 0], bins=50)
            ax.hist(data[:, 0], bins=bins, color="0.7", label="data")
            ax.hist(points[:, 0], bins=bins, color="tab:red", alpha=0.6, label="model")
        else:
            lo, hi = data[:, :2].min(0), data[:, :2].max(0)
            pad = np.where(hi > lo, 0.1 * (hi - lo), 1.0)  # a constant coordinate too
            ax.scatter(data[:, 0], data[:, 1], s=2, color="0.7", label="data")
            ax.scatter(points[:, 0], points[:, 1], s=2, color="tab:red", label="model")
            ax.set(xlim=(lo[0] - pad[0], hi[0] + pad[0]), ylim=(lo[1] - pad[1], hi[1] + pad[1]))
        ax.legend(loc="upper right", markerscale=4)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def fit(
    run: RunDir,
    *,
    kind: str,
    module: nn.Module,
    optims: dict[str, torch.optim.Optimizer],
    sampler: BatchSampler,
    step_fn: Callable[[int], dict[str, float]],
    columns: list[str],
    steps: int,
    checkpoint_every: int,
    resume: bool,
    progress: bool = True,
    lr_factor: Callable[[int], float] | None = None,
    tensorboard: TensorBoardLog | None = None,
    world: World | None = None,
) -> None:
    """Run ``step_fn`` for steps ``1..steps``, checkpointing every ``checkpoint_every``.

    A resumed run restores parameters, optimiser moments, the sampler and every RNG, and
    so ends exactly where an uninterrupted run would.

    Pyro's validation (when enabled, as it is by default) checks the first step this
    call runs, where a shape or support error in the model would show; the later steps
    run without it, since they trace the same program, and a NaN or infinite loss is
    still caught (as :class:`TrainingDiverged`). The per-step checks would otherwise
    cost 10-20% of a step of small nets.

    :param ~pyro_vigen.storage.RunDir run: the run directory; ``history.csv`` and ``checkpoint.pt`` go there.
    :param str kind: the model kind recorded in the checkpoint (``"vae"``, ``"gan"``).
    :param module: the model; its ``state_dict`` is checkpointed.
    :param dict optims: the :class:`torch.optim.Optimizer` s by name, their state
        checkpointed.
    :param BatchSampler sampler: the minibatch sampler ``step_fn`` draws from.
    :param step_fn: performs one training step and returns its scalar metrics, keyed by
        ``columns``.
    :param list columns: the metric names, the columns of ``history.csv``.
    :param int steps: the last step to run.
    :param int checkpoint_every: steps between checkpoints (the last step is always saved).
    :param bool resume: continue from ``run.checkpoint``.
    :param bool progress: show a progress bar.
    :param lr_factor: ``lr_factor(step)`` multiplies every optimiser's learning rate (as
        the optimisers were built) for that step, e.g. :func:`linear_decay`; a function of
        the step alone, so a resumed run follows the same schedule. ``None``: constant.
    :param TensorBoardLog tensorboard: also log every step's metrics and, at every
        checkpoint, the model's samples there; ``None``: no TensorBoard log.
    :param world: this process's place in a data-parallel run
        (:mod:`pyro_vigen.distributed`; ``None``: one rank). With several ranks, every
        rank calls ``fit`` (its ``step_fn`` averaging what the ranks must share), rank 0
        alone writes ``history.csv`` and the checkpoints, and a checkpoint holds every
        rank's random state; resuming needs the same number of ranks.
    :raises TrainingDiverged: a metric became NaN or infinite.
    :raises ValueError: resuming a checkpoint of another world size.

    Example::

        vae = VAE(VAEConfig(data_shape=(2,)))           # x: an (N, 2) tensor
        optim = torch.optim.Adam(vae.parameters(), lr=1e-3)
        svi, sampler = ModuleSVI(vae.model, vae.guide, optim, Trace_ELBO()), BatchSampler(len(x), 256, seed=0)
        RunDir("runs/custom").path.mkdir(parents=True, exist_ok=True)
        fit(RunDir("runs/custom"), kind="vae", module=vae, optims={"svi": optim}, sampler=sampler,
            step_fn=lambda step: {"loss": svi.step(x[sampler.next()], num_data=len(x)) / len(x)},
            columns=["loss"], steps=100, checkpoint_every=50, resume=False)
    """
    world = world or World()
    start, wall0, last_ckpt = 0, 0.0, None
    # The rates the optimisers were built with; a checkpoint's are already scheduled.
    base_lrs = [[g["lr"] for g in o.param_groups] for o in optims.values()]
    if resume:
        state = load_checkpoint(run.checkpoint, kind=kind, map_location=_device_of(module))
        ranks = state.get("world_size", 1)
        if ranks != world.size:
            raise UserError(
                f"{run.checkpoint} was written by a run on {ranks} rank(s), and this one has "
                f"{world.size}: resume it on {ranks} (torchrun --nproc-per-node {ranks}), as "
                "another number of ranks draws other batches and noise"
            )
        module.load_state_dict(state["model"])
        for key, optim in optims.items():
            optim.load_state_dict(state["optim"][key])
        sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng_ranks"][world.rank] if world.size > 1 else state["rng"])
        start, wall0, last_ckpt = state["step"], state["wall_time"], state["step"]
    # Rank 0 writes; the others keep no history.
    history = History(run.file(HISTORY), columns) if world.is_main else None
    if history is not None:
        history.start(start)
    t0 = time.perf_counter()
    bar = tqdm(
        total=steps,
        initial=start,
        desc=f"train {kind}",
        disable=not (progress and world.is_main),
        dynamic_ncols=True,
    )
    log = contextlib.nullcontext() if tensorboard is None else tensorboard.open(start)
    with bar, log:
        for step in range(start + 1, steps + 1):
            checks = (
                contextlib.nullcontext() if step == start + 1 else pyro.validation_enabled(False)
            )
            if lr_factor is not None:
                factor = lr_factor(step)
                for optim, lrs in zip(optims.values(), base_lrs, strict=True):
                    for group, lr in zip(optim.param_groups, lrs, strict=True):
                        group["lr"] = lr * factor
            with checks:
                metrics = step_fn(step)
            bad = [k for k, v in metrics.items() if not math.isfinite(v)]
            if bad:
                kept = (
                    f"the last good checkpoint (step {last_ckpt}) is kept in {run.checkpoint}"
                    if last_ckpt
                    else "no checkpoint had been written yet"
                )
                raise TrainingDiverged(f"{bad[0]} became {metrics[bad[0]]} at step {step}; {kept}")
            wall = wall0 + time.perf_counter() - t0
            if history is not None:
                history.append([step, *(metrics[c] for c in columns), round(wall, 4)])
            if tensorboard is not None:
                tensorboard.scalars(step, {c: metrics[c] for c in columns})
            if step % checkpoint_every == 0 or step == steps:
                rng = rng_state()
                # Every rank's random state, so that each resumes its own stream.
                ranks = (
                    {"world_size": world.size, "rng_ranks": gather(rng)} if world.size > 1 else {}
                )
                if history is not None:
                    history.flush()
                    save_checkpoint(
                        run.checkpoint,
                        kind=kind,
                        step=step,
                        wall_time=wall,
                        model=module.state_dict(),
                        optim={k: o.state_dict() for k, o in optims.items()},
                        sampler=sampler.state_dict(),
                        rng=rng,
                        **ranks,
                    )
                last_ckpt = step
                if tensorboard is not None:
                    tensorboard.checkpoint(step)
            if step % 50 == 0 or step == steps:
                bar.set_postfix({c: f"{metrics[c]:.4g}" for c in columns[:2]}, refresh=False)
            bar.update()


def linear_decay(steps: int, fraction: float) -> Callable[[int], float] | None:
    """The learning-rate factor of a run that ends by decaying linearly towards zero.

    The factor is 1 until the last ``fraction`` of the ``steps``, then falls linearly,
    reaching ``1/n`` at the last step (of the ``n`` decaying ones) rather than 0, so no
    step is wasted. Annealing the rate lets stochastic gradients settle where a
    constant rate keeps them moving around the optimum: at the end of a GAN run it turns
    the oscillating samples of the last iterations into the sharp ones they hover around.

    :param int steps: the run's last step.
    :param float fraction: the share of the run that decays, in ``[0, 1]``.
    :returns: ``factor(step)``, or ``None`` (constant) when ``fraction`` is 0.

    Example::

        from pyro_vigen.infer.loop import linear_decay
        factor = linear_decay(100, 0.5)
        factor(50), factor(51), factor(100)     # (1.0, 1.0, 0.02)
    """
    n = round(steps * fraction)
    if n == 0:
        return None
    return lambda step: min(1.0, (steps - step + 1) / n)


def check_lr_decay(lr_decay: float) -> None:
    """Refuse an ``lr_decay`` outside ``[0, 1]``.

    :raises ValueError: not a number in ``[0, 1]``.
    """
    if isinstance(lr_decay, bool) or not isinstance(lr_decay, (int, float)):
        raise UserError(f"lr_decay must be a number in [0, 1], got {lr_decay!r}", field="lr_decay")
    if not 0 <= lr_decay <= 1:
        raise UserError(
            f"lr_decay is the share of the run whose learning rate decays, "
            f"a number in [0, 1]; got {lr_decay!r}",
            field="lr_decay",
        )


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA where it exists; asking for CUDA without it is an error.

    :param str name: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    :returns: the :class:`torch.device`.
    :raises ValueError: an unknown name, or CUDA asked for where there is none.

    Example::

        from pyro_vigen.infer import resolve_device
        resolve_device("auto")     # device(type='cuda') where CUDA exists, else device(type='cpu')
        resolve_device("cpu")      # device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(
            f"unknown device={name!r}; use cpu, cuda, cuda:N or auto", field="device"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"device={name!r} was asked for, but no CUDA device is available; use device='cpu'",
            field="device",
        )
    return device
