"""Training a :class:`~pyro_vigen.models.VAE` with stock SVI into a run directory."""

from __future__ import annotations

import dataclasses
import os
import platform

import pyro
import torch
from pyro.infer import SVI, JitTrace_ELBO, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

from .. import __version__
from ..config import C, Config, require_positive
from ..data import DataConfig, Dataset, load_dataset
from ..models import VAE, VAEConfig
from .loop import BatchSampler, fit, resolve_device
from .run import RunDir

ELBOS = ("trace", "meanfield", "jit", "iwae")


@dataclasses.dataclass
class VAETrainConfig(Config):
    """Optimisation settings of a VAE run.

    :param int steps: SVI steps, one minibatch each.
    :param int batch_size: points per minibatch (at most the data size).
    :param float lr: Adam's learning rate.
    :param str elbo: ``trace`` (:class:`~pyro.infer.Trace_ELBO`), ``meanfield``
        (:class:`~pyro.infer.TraceMeanField_ELBO`, analytic KL), ``jit``
        (:class:`~pyro.infer.JitTrace_ELBO`) or ``iwae`` (:class:`~pyro.infer.RenyiELBO`
        with alpha = 0, the importance-weighted bound, over ``num_particles``).
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

    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    elbo: str = "trace"
    num_particles: int = 1
    seed: int = 0
    checkpoint_every: int = 500
    num_saved_samples: int = 2000
    device: str = "cpu"

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
        if self.elbo not in ELBOS:
            raise ValueError(f"unknown elbo {self.elbo!r}; use one of {', '.join(ELBOS)}")
        if self.elbo == "iwae" and self.num_particles < 2:
            raise ValueError("elbo 'iwae' needs num_particles >= 2 (with 1 it is the plain ELBO)")


def make_elbo(name: str, num_particles: int = 1) -> pyro.infer.ELBO:
    """The stock Pyro ELBO called ``name`` (see :class:`VAETrainConfig`).

    :param str name: ``"trace"``, ``"meanfield"``, ``"jit"`` or ``"iwae"``.
    :param int num_particles: particles per step, vectorised when more than one.
    :returns: a new ELBO instance, ready for :class:`~pyro.infer.SVI`.

    Example::

        from pyro_vigen.infer import make_elbo
        make_elbo("meanfield")                   # TraceMeanField_ELBO
        make_elbo("iwae", num_particles=16)      # RenyiELBO with alpha = 0
    """
    if name == "iwae":
        return RenyiELBO(
            alpha=0.0, num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1
        )
    cls = {"trace": Trace_ELBO, "meanfield": TraceMeanField_ELBO, "jit": JitTrace_ELBO}[name]
    return cls(
        num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1
    )


def resolve_data_shape(model: C, dataset: Dataset) -> C:
    """Fill a model config's ``data_shape`` from the data when it is ``None``, and check it.

    Shared by every model kind: their configs all carry the shape of one data point.
    """
    if model.data_shape is None:
        model = type(model).from_dict({**model.to_dict(), "data_shape": dataset.shape})
    if tuple(model.data_shape) != dataset.shape:
        raise ValueError(
            f"data points of {dataset.name!r} have shape {dataset.shape}, but the model expects {tuple(model.data_shape)}"
        )
    return model


def model_data(dataset: Dataset, likelihood: str) -> torch.Tensor:
    """The data as the likelihood sees it: binarised at 0.5 for a Bernoulli likelihood."""
    if likelihood == "bernoulli":
        return (dataset.x > 0.5).to(torch.get_default_dtype())
    return dataset.x


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
) -> tuple[torch.device, Dataset, C, RunDir, bool]:
    """What every training function does first: device, data, model shape, run folder, seed.

    :returns: ``(device, dataset, model config with its data shape, run, resuming)``.
    """
    device = resolve_device(train.device)
    dataset = load_dataset(data, download=download)
    model = resolve_data_shape(model, dataset)
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
) -> VAE:
    """Train a VAE with stock :class:`~pyro.infer.SVI` and write its run directory.

    Each step feeds one minibatch with ``num_data`` set to the data size, so the plate
    scales the likelihood to the full data (the ``iwae`` objective is the exception: the
    importance-weighted bound is not linear in the log-weights, so there the minibatch
    bound is optimised unscaled, which moves Adam identically up to its epsilon).

    :param out: the run directory.
    :param model: the architecture; ``None`` (or settings left ``None``) take the
        defaults for the data.
    :param resume: continue from ``out/checkpoint.pt``; the result equals an
        uninterrupted run with the same seed.
    :param overwrite: replace a run already in ``out``.
    :returns: the trained model.
    :param DataConfig data: the data.
    :param VAETrainConfig train: the optimisation settings.
    :param bool progress: show a progress bar.
    :param bool download: let ``mnist`` fetch its files.

    Example::

        from pyro_vigen.data import DataConfig
        from pyro_vigen.infer import VAETrainConfig, train_vae
        vae = train_vae("runs/vae", DataConfig("ring8"), VAETrainConfig(steps=200))
        samples = vae.sample(1000)     # (1000, 2); the run is in runs/vae
    """
    device, dataset, model, run, resuming = start_run(
        "vae", out, data, train, model or VAEConfig(), resume, overwrite, download
    )
    vae = VAE(model).to(device)
    x = model_data(dataset, model.likelihood).to(device)
    n = x.shape[0]
    num_data = None if train.elbo == "iwae" else n
    optim = pyro.optim.Adam({"lr": train.lr})
    svi = SVI(vae.model, vae.guide, optim, make_elbo(train.elbo, train.num_particles))
    sampler = BatchSampler(n, train.batch_size, train.seed)

    def step(_: int) -> dict[str, float]:
        batch = x[sampler.next().to(device)]
        loss = svi.step(batch, num_data=num_data)
        return {"loss": loss / (n if num_data else batch.shape[0])}

    fit(
        run,
        kind="vae",
        module=vae,
        optims={"svi": optim},
        sampler=sampler,
        step_fn=step,
        columns=["loss"],
        steps=train.steps,
        checkpoint_every=train.checkpoint_every,
        resume=resuming,
        progress=progress,
    )
    gen = torch.Generator(device=device).manual_seed(train.seed)
    run.save_samples(vae.sample(train.num_saved_samples, generator=gen), train.seed)
    return vae
