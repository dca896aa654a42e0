"""Training a :class:`~pyro_vigen.models.VAE` with a stock Pyro ELBO into a run directory."""

from __future__ import annotations

import dataclasses
import os
import platform
import warnings
from collections.abc import Callable

import pyro
import torch
from pyro.infer import JitTrace_ELBO, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

from .. import __version__
from ..config import C, Config, require_positive
from ..data import DataConfig, Dataset, load_dataset
from ..errors import UserError
from ..flags import setting
from ..models import VAE, VAEConfig
from ..models.likelihoods import model_data
from ..storage import RunDir
from ..threads import torch_threads
from .loop import (
    BatchSampler,
    TensorBoardLog,
    check_lr_decay,
    fit,
    linear_decay,
    resolve_device,
    summary_writer_class,
)
from .module_svi import ModuleSVI

ELBOS = ("jit", "trace", "meanfield", "iwae")

#: Flag help of the settings both training configs have (see :func:`~pyro_vigen.flags.setting`).
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
class VAETrainConfig(Config):
    """Optimisation settings of a VAE run.

    :param int steps: SVI steps, one minibatch each.
    :param int batch_size: points per minibatch (at most the data size).
    :param float lr: Adam's learning rate.
    :param float lr_decay: the share of the run, at its end, over which the learning
        rate decays linearly towards zero (see :func:`~pyro_vigen.infer.loop.linear_decay`);
        0 keeps it constant.
        The schedule is set by ``steps``: resuming with a larger ``steps`` continues on
        the longer schedule, which is not the run a larger ``steps`` would have trained
        from the start.
    :param str elbo: ``jit`` (:class:`~pyro.infer.JitTrace_ELBO`, the default: the
        estimator of ``trace`` compiled once per run, about 1.4x faster on small nets),
        ``trace`` (:class:`~pyro.infer.Trace_ELBO`), ``meanfield``
        (:class:`~pyro.infer.TraceMeanField_ELBO`, analytic KL) or ``iwae``
        (:class:`~pyro.infer.RenyiELBO` with alpha = 0, the importance-weighted bound,
        over ``num_particles``).
    :param int num_particles: particles per step (at least 2 for ``iwae``).
    :param int seed: seed of the initialisation, the minibatches and the saved samples.
    :param int checkpoint_every: steps between checkpoints.
    :param int num_saved_samples: model samples saved to ``samples.pt`` at the end.
    :param str device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (see
        :func:`resolve_device`).

    Example::

        from pyro_vigen.infer import VAETrainConfig
        train = VAETrainConfig(steps=500, elbo="iwae", num_particles=8)
        VAETrainConfig.from_json(train.to_json()) == train    # True
    """

    steps: int = setting(3000, help=TRAIN_HELP["steps"])
    batch_size: int = setting(256, help=TRAIN_HELP["batch_size"])
    lr: float = setting(1e-3, help="Adam learning rate")
    lr_decay: float = setting(0.0, help=TRAIN_HELP["lr_decay"])
    elbo: str = setting(
        "jit", choices=ELBOS, help="stock Pyro ELBO (default: %(default)s, Trace_ELBO compiled)"
    )
    num_particles: int = setting(1, help="particles per ELBO estimate")
    seed: int = setting(0, help=TRAIN_HELP["seed"])
    checkpoint_every: int = setting(500, help=TRAIN_HELP["checkpoint_every"])
    num_saved_samples: int = setting(2000, help=TRAIN_HELP["num_saved_samples"])
    device: str = setting("cpu", help=TRAIN_HELP["device"])

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "num_particles",
            "checkpoint_every",
            "num_saved_samples",
        ):
            require_positive(name, getattr(self, name), integer=True)
        require_positive("lr", self.lr)
        check_lr_decay(self.lr_decay)
        if self.elbo not in ELBOS:
            raise UserError(f"unknown elbo {self.elbo!r}; use one of {', '.join(ELBOS)}")
        if self.elbo == "iwae" and self.num_particles < 2:
            raise UserError("elbo 'iwae' needs num_particles >= 2 (with 1 it is the plain ELBO)")


class _JitTrace_ELBO(JitTrace_ELBO):
    """:class:`~pyro.infer.JitTrace_ELBO` whose graph runs without the executor's optimisations.

    Its fused subgraphs cost more than they save at these sizes (about 5% of a
    784-400-50 step), and without them the graph records the autograd operations of
    :class:`~pyro.infer.Trace_ELBO` itself. The flag is thread-local.
    """

    def loss_and_surrogate_loss(self, model, guide, *args, **kwargs):
        with torch.jit.optimized_execution(False):
            return super().loss_and_surrogate_loss(model, guide, *args, **kwargs)


def make_elbo(name: str, num_particles: int = 1) -> pyro.infer.ELBO:
    """The stock Pyro ELBO called ``name`` (see :class:`VAETrainConfig`).

    :param str name: ``"trace"``, ``"meanfield"``, ``"jit"`` or ``"iwae"``.
    :param int num_particles: particles per step, vectorised when more than one.
    :returns: a new ELBO instance, ready for :class:`~pyro.infer.SVI`.

    Example::

        from pyro_vigen.infer import make_elbo
        make_elbo("jit")                         # JitTrace_ELBO
        make_elbo("meanfield")                   # TraceMeanField_ELBO
        make_elbo("iwae", num_particles=16)      # RenyiELBO with alpha = 0
    """
    if name == "iwae":
        return RenyiELBO(
            alpha=0.0, num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1
        )
    particles = {"num_particles": num_particles, "vectorize_particles": num_particles > 1}
    if name == "jit":
        return _JitTrace_ELBO(**particles, max_plate_nesting=1, ignore_jit_warnings=True)
    cls = {"trace": Trace_ELBO, "meanfield": TraceMeanField_ELBO}[name]
    return cls(**particles, max_plate_nesting=1)


def vae_svi(vae: VAE, train: VAETrainConfig, batch: torch.Tensor, **kwargs) -> ModuleSVI:
    """The SVI that :func:`train_vae` steps: the config's ELBO, one Adam over the VAE.

    The ``jit`` ELBO is compiled here, on ``batch``, outside the random stream:
    compiling runs the model and guide three times (capturing the parameters, tracing,
    running the traced graph), and on a forked random state that leaves the training
    steps the random numbers of an uninterrupted run, so a resumed run (which compiles
    again) still ends exactly where an uninterrupted one does.

    :param VAE vae: the model; all its parameters are optimised.
    :param VAETrainConfig train: the ELBO, particles and learning rate.
    :param batch: a batch of the size every step takes (the compiled graph keeps the
        shapes it was traced with).
    :param kwargs: the other arguments of the model and guide, as the steps pass them.
    :returns: a :class:`ModuleSVI`; ``svi.optim`` is the :class:`torch.optim.Adam`.

    Example::

        from pyro_vigen.infer import VAETrainConfig, vae_svi
        svi = vae_svi(vae, VAETrainConfig(lr=3e-3), x[:256], num_data=len(x))  # vae: a VAE
        svi.step(x[256:512], num_data=len(x))    # x: its data; the loss, a float
    """
    svi = ModuleSVI(
        vae.model,
        vae.guide,
        torch.optim.Adam(vae.parameters(), lr=train.lr),
        make_elbo(train.elbo, train.num_particles),
    )
    if isinstance(svi.loss, JitTrace_ELBO):
        devices = [batch.device.index or 0] if batch.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
            # Pyro's JIT is built on torch.jit.trace, which torch 2.x marks as deprecated.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace` is deprecated")
            # The same model and guide objects as the steps: the compiled graph is keyed by their ids.
            svi.loss.loss_and_surrogate_loss(svi.model, svi.guide, batch, **kwargs)
    return svi


def resolve_data_shape(model: C, dataset: Dataset) -> C:
    """Fill a model config's ``data_shape`` from the data when it is ``None``, and check it.

    Shared by every model kind: their configs all carry the shape of one data point.
    """
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


def start_run(
    kind: str,
    out: str | os.PathLike,
    data: DataConfig,
    train: Config,
    model: C,
    resume: bool,
    overwrite: bool,
    download: bool,
    check_data: Callable[[Dataset, C], object] | None = None,
) -> tuple[torch.device, Dataset, C, RunDir, bool]:
    """What every training function does first: device, data, model shape, run folder, seed.

    :param check_data: called with the data and the model config before the run folder
        is written, so that data the model cannot take fails without leaving a run.
    :returns: ``(device, dataset, model config with its data shape, run, resuming)``.
    """
    device = resolve_device(train.device)
    dataset = load_dataset(data, download=download)
    model = resolve_data_shape(model, dataset)
    if check_data is not None:
        check_data(dataset, model)
    run = RunDir(out)
    resuming = run.prepare(run_config(kind, data, model, train), resume=resume, overwrite=overwrite)
    pyro.set_rng_seed(train.seed)
    return device, dataset, model, run, resuming


def train_vae(
    out: str | os.PathLike,
    data: DataConfig,
    train: VAETrainConfig,
    model: VAEConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    download: bool = False,
    threads: int | None = None,
    tensorboard: str | os.PathLike | None = None,
) -> VAE:
    """Train a VAE and write its run directory.

    The steps are :func:`vae_svi`'s: a stock Pyro ELBO with one
    :class:`torch.optim.Adam` over the VAE's parameters (:class:`ModuleSVI`). Every
    minibatch has the same size (see :class:`BatchSampler`), as the compiled ``jit``
    ELBO requires.

    Each step feeds one minibatch with ``num_data`` set to the data size, so the plate
    scales the likelihood to the full data (the ``iwae`` objective is the exception: the
    importance-weighted bound is not linear in the log-weights, so there the minibatch
    bound is optimised unscaled, which moves Adam identically up to its epsilon).

    :param out: the run directory.
    :param model: the architecture; ``None`` (or settings left ``None``) take the
        defaults for the data: images get a discretised logistic on their grey levels,
        as they are; ``likelihood="bernoulli"`` binarises them at 0.5 first (see
        :func:`~pyro_vigen.models.likelihoods.model_data`).
    :param resume: continue from ``out/checkpoint.pt``; the result equals an
        uninterrupted run with the same seed.
    :param overwrite: replace a run already in ``out``.
    :returns: the trained model.
    :param DataConfig data: the data.
    :param VAETrainConfig train: the optimisation settings.
    :param bool progress: show a progress bar.
    :param bool download: let ``mnist`` fetch its files.
    :param int threads: torch's intra-op threads during the run (``None``: the library's
        default, one; see :mod:`pyro_vigen.threads`); the caller's setting is restored
        after. A runtime setting, not part of ``config.json``.
    :param tensorboard: a folder for a TensorBoard log of the run
        (:class:`~pyro_vigen.infer.loop.TensorBoardLog`): the loss at every step, and at
        every checkpoint the decoder means of 64 fixed z as a grid (images) or 1000
        samples over the data (points). A runtime setting, not part of ``config.json``:
        training is the same with or without it. ``None``: no log.
    :raises ~pyro_vigen.infer.loop.TensorBoardUnavailable: ``tensorboard`` asked for but
        not installed.

    Example::

        from pyro_vigen.data import DataConfig
        from pyro_vigen.infer import VAETrainConfig, train_vae
        vae = train_vae("runs/vae", DataConfig("ring8"), VAETrainConfig(steps=200))
        samples = vae.sample(1000)     # (1000, 2); the run is in runs/vae
    """
    if tensorboard is not None:
        summary_writer_class()  # a missing package fails before the run folder is written
    with torch_threads(threads):
        device, dataset, model, run, resuming = start_run(
            "vae",
            out,
            data,
            train,
            model or VAEConfig(),
            resume,
            overwrite,
            download,
            check_data=lambda dataset, config: model_data(dataset, config.likelihood),
        )
        vae = VAE(model).to(device)
        x = model_data(dataset, model.likelihood).to(device)
        n = x.shape[0]
        num_data = None if train.elbo == "iwae" else n
        sampler = BatchSampler(n, train.batch_size, train.seed)
        svi = vae_svi(vae, train, x[: sampler.batch_size], num_data=num_data)

        def step(_: int) -> dict[str, float]:
            batch = x[sampler.next().to(device)]
            loss = svi.step(batch, num_data=num_data)
            return {"loss": loss / (n if num_data else batch.shape[0])}

        def draw(num: int) -> torch.Tensor:
            gen = torch.Generator(device=device).manual_seed(train.seed)
            # Images show the decoder means, which are sharper than draws with pixel noise.
            return vae.sample(num, generator=gen, noise=not dataset.is_image)

        fit(
            run,
            kind="vae",
            module=vae,
            optims={"svi": svi.optim},
            sampler=sampler,
            step_fn=step,
            columns=["loss"],
            steps=train.steps,
            checkpoint_every=train.checkpoint_every,
            resume=resuming,
            progress=progress,
            lr_factor=linear_decay(train.steps, train.lr_decay),
            tensorboard=None if tensorboard is None else TensorBoardLog(tensorboard, draw, x),
        )
        gen = torch.Generator(device=device).manual_seed(train.seed)
        run.save_samples(vae.sample(train.num_saved_samples, generator=gen), train.seed)
        return vae
