"""The VAE family: a :class:`~pyro_vigen.models.VAE` trained with a stock Pyro ELBO.

Its declaration, :data:`VAE_FAMILY`, names the model and training configs, the step
(:func:`vae_step`), the extra diagnostics, the label in reports and the role in the
theory's claims; :func:`~pyro_vigen.infer.train` trains it (``train("vae", ...)``).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import pyro
import torch
from pyro.infer import JitTrace_ELBO, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

from ..config import Config, require_positive
from ..data import Dataset
from ..errors import UserError
from ..flags import setting
from ..models import VAE, VAEConfig
from ..models.likelihoods import model_data
from .family import TRAIN_HELP, Family, TrainingStep, register
from .loop import BatchSampler, check_lr_decay
from .module_svi import ModuleSVI

ELBOS = ("jit", "trace", "meanfield", "iwae")


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
    """The SVI that :func:`vae_step` steps: the config's ELBO, one Adam over the VAE.

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


def vae_step(
    vae: VAE, train: VAETrainConfig, x: torch.Tensor, sampler: BatchSampler
) -> TrainingStep:
    """One VAE training step: :func:`vae_svi`'s step on one minibatch.

    Each step feeds one minibatch with ``num_data`` set to the data size, so the plate
    scales the likelihood to the full data (the ``iwae`` objective is the exception: the
    importance-weighted bound is not linear in the log-weights, so there the minibatch
    bound is optimised unscaled, which moves Adam identically up to its epsilon). The
    loss in ``history.csv`` is per data point. Every minibatch has the same size (see
    :class:`BatchSampler`), as the compiled ``jit`` ELBO requires.

    :param VAE vae: the model.
    :param VAETrainConfig train: the ELBO, particles and learning rate.
    :param x: the data as the VAE sees it (:func:`~pyro_vigen.models.likelihoods.model_data`).
    :param BatchSampler sampler: the minibatches.
    :returns: the step, its optimiser ``svi`` and its column ``loss``.
    """
    n = x.shape[0]
    num_data = None if train.elbo == "iwae" else n
    svi = vae_svi(vae, train, x[: sampler.batch_size], num_data=num_data)

    def step(_: int) -> dict[str, float]:
        batch = x[sampler.next().to(x.device)]
        loss = svi.step(batch, num_data=num_data)
        return {"loss": loss / (n if num_data else batch.shape[0])}

    return TrainingStep(step, {"svi": svi.optim}, ["loss"])


def vae_label(config: dict[str, Any]) -> str:
    """ "VAE", with its likelihood named where it is not the data's default: the ELBOs of
    two likelihoods are on different scales and must not be averaged."""
    model = config["model"]
    default = VAEConfig(data_shape=model["data_shape"]).likelihood
    likelihood = model.get("likelihood")
    return "VAE" if likelihood in (None, default) else f"VAE, {likelihood} likelihood"


def vae_data(dataset: Dataset, config: VAEConfig) -> torch.Tensor:
    """The data as the VAE's likelihood sees it (:func:`~pyro_vigen.models.likelihoods.model_data`)."""
    return model_data(dataset, config.likelihood)


def vae_role(config: dict[str, Any]) -> tuple[str, int]:
    """Every VAE run plays the VAE in the theory's claims, with no generator steps."""
    return "vae", 0


def decoder_means(vae: VAE, num: int, generator: torch.Generator) -> torch.Tensor:
    """The VAE's images as a user looks at them: its likelihood's means at prior draws
    (the AAE's too)."""
    # Sharper than draws with the likelihood's pixel noise: the images a user looks at.
    return vae.sample(num, generator=generator, noise=False)


#: The VAE family: images get a discretised logistic on their grey levels, as they are;
#: ``likelihood="bernoulli"`` binarises them at 0.5 first (see
#: :func:`~pyro_vigen.models.likelihoods.model_data`). Its runs are diagnosed with the
#: model's density (importance sampling), the guide's quality (ELBO, IWAE, k-hat), its
#: reconstructions and its aggregate posterior against the prior.
VAE_FAMILY = register(
    Family(
        name="vae",
        help="train a VAE with stock SVI",
        model_config=VAEConfig,
        train_config=VAETrainConfig,
        model=VAE,
        build_step=vae_step,
        label=vae_label,
        data=vae_data,
        images=decoder_means,
        images_are="decoder means",
        diagnostics=("density", "vi_quality", "reconstruction", "latent"),
        role=vae_role,
    )
)
