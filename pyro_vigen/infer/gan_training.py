"""The GAN family: a :class:`~pyro_vigen.models.VariationalGAN` trained with its two ELBOs.

Its declaration, :data:`GAN_FAMILY`, names the model and training configs, the step
(:func:`gan_step`, one :class:`GANIteration`), the extra diagnostics, the label in
reports and the role in the theory's claims; :func:`~pyro_vigen.infer.train` trains it
(``train("gan", ...)``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ..config import Config, require_positive
from ..errors import UserError
from ..flags import setting
from ..models import GANConfig, VariationalGAN
from .discriminator_elbo import DiscriminatorELBO
from .family import TRAIN_HELP, Family, TrainingStep, register
from .gan_jit import JitDiscriminatorELBO, JitGeneratorELBO
from .generator_elbo import GENERATOR_LOSSES, PRIORS, GeneratorELBO, resolve_reg_weight
from .loop import BatchSampler, check_lr_decay


@dataclasses.dataclass
class GANTrainConfig(Config):
    """Optimisation settings of a GAN run.

    One training step is one iteration: ``disc_steps`` discriminator steps, each on a
    fresh minibatch and fresh z, then ``gen_steps`` generator steps against the snapshot
    the last of them leaves (all on its z; see :class:`GANIteration`).

    :param int steps: training iterations.
    :param int batch_size: data points per minibatch (and as many generated ones); with
        packing (``GANConfig.pack``) a multiple of the pack (see :func:`check_pack`).
    :param int disc_steps: discriminator steps per iteration.
    :param int gen_steps: generator steps per snapshot; ``None`` takes 2 for
        ``prior="data"`` (the penalty needs at least 2 to act) and 1 for ``"mixed"``.
        For a fair ablation of the penalty, give both priors the same number.
    :param str prior: ``"mixed"`` (the classic GAN) or ``"data"`` (adds the proximal
        penalty).
    :param float reg_weight: the data prior's :math:`\\lambda` (``None``: 5.0); an error
        with ``prior="mixed"``.
    :param str loss: the generator loss: ``"nonsaturating"``, ``"minimax"`` or
        ``"importance_weighted"`` (IWGAN; see :class:`~pyro_vigen.infer.GeneratorELBO`).
    :param float lr_disc: Adam's learning rate of the discriminator.
    :param float lr_gen: Adam's learning rate of the generator.
    :param float lr_decay: the share of the run, at its end, over which both learning
        rates decay linearly towards zero (see :func:`~pyro_vigen.infer.loop.linear_decay`);
        0 keeps them constant.
        The schedule is set by ``steps``: resuming with a larger ``steps`` continues on
        the longer schedule, which is not the run a larger ``steps`` would have trained
        from the start.
    :param tuple betas_disc: Adam's betas of the discriminator.
    :param tuple betas_gen: Adam's betas of the generator.
    :param int seed: seed of the initialisation, the minibatches, z and the saved samples.
    :param int checkpoint_every: iterations between checkpoints.
    :param int num_saved_samples: generator samples saved to ``samples.pt`` at the end.
    :param bool jit: run the phases' compiled objectives (:class:`JitDiscriminatorELBO`,
        :class:`JitGeneratorELBO`; about 2x faster on small nets, the same numbers).
    :param str device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (see
        :func:`resolve_device`).

    Example::

        from pyro_vigen.infer import GANTrainConfig
        train = GANTrainConfig(steps=2000, prior="data", reg_weight=5.0)
        train.gen_steps                    # 2, the data prior's default
    """

    steps: int = setting(10_000, help=TRAIN_HELP["steps"])
    batch_size: int = setting(256, help=TRAIN_HELP["batch_size"])
    disc_steps: int = setting(1, help="discriminator steps per iteration")
    gen_steps: int | None = setting(
        None, help="generator steps per snapshot (default: 2 with --prior data, else 1)"
    )
    prior: str = setting(
        "mixed",
        choices=PRIORS,
        help="prior on x: mixed (the classic GAN) or data (adds the proximal penalty)",
    )
    reg_weight: float | None = setting(
        None, help="penalty weight lambda of --prior data (default: 5)"
    )
    loss: str = setting("nonsaturating", choices=GENERATOR_LOSSES, help="generator loss")
    lr_disc: float = setting(1e-3, help="discriminator Adam learning rate")
    lr_gen: float = setting(1e-3, help="generator Adam learning rate")
    lr_decay: float = setting(0.0, help=TRAIN_HELP["lr_decay"])
    betas_disc: tuple[float, float] = setting((0.5, 0.999), help="discriminator Adam betas")
    betas_gen: tuple[float, float] = setting((0.5, 0.999), help="generator Adam betas")
    seed: int = setting(0, help=TRAIN_HELP["seed"])
    checkpoint_every: int = setting(500, help=TRAIN_HELP["checkpoint_every"])
    num_saved_samples: int = setting(2000, help=TRAIN_HELP["num_saved_samples"])
    jit: bool = setting(
        True,
        flag="--no-jit",
        help="run the phase objectives uncompiled (slower, the same numbers)",
    )
    device: str = setting("cpu", help=TRAIN_HELP["device"])

    def __post_init__(self) -> None:
        self.reg_weight = resolve_reg_weight(self.prior, self.reg_weight)
        if self.loss not in GENERATOR_LOSSES:
            raise UserError(
                f"unknown generator loss {self.loss!r}; use one of {', '.join(GENERATOR_LOSSES)}"
            )
        if self.gen_steps is None:
            self.gen_steps = 2 if self.prior == "data" else 1
        for name in (
            "steps",
            "batch_size",
            "disc_steps",
            "gen_steps",
            "checkpoint_every",
            "num_saved_samples",
        ):
            require_positive(name, getattr(self, name), integer=True)
        require_positive("lr_disc", self.lr_disc)
        require_positive("lr_gen", self.lr_gen)
        check_lr_decay(self.lr_decay)
        for name in ("betas_disc", "betas_gen"):
            betas = tuple(getattr(self, name))
            if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
                raise UserError(f"{name} must be two numbers in [0, 1), got {betas!r}")
            setattr(self, name, betas)
        if self.prior == "data" and self.gen_steps == 1:
            warnings.warn(
                "prior 'data' with gen_steps=1: the penalty and its gradient vanish at the "
                "snapshot, so training is exactly the classic GAN's; use gen_steps >= 2",
                stacklevel=3,
            )


class GANIteration:
    """One training iteration of the GAN family (:func:`gan_step`), both phases.

    ``disc_steps`` discriminator steps, each on a fresh minibatch, then ``gen_steps``
    generator steps on the last of those minibatches. Each discriminator step takes a
    snapshot of the model and trains on its labelled batch, in one call
    (:meth:`~pyro_vigen.infer.discriminator_elbo.PhaseELBO.snapshot_loss_and_grads`,
    one graph when compiled); the last one is the generator steps' snapshot :math:`\\theta'`,
    passed to each as the keyword ``snapshot``. It was drawn from the generator the
    steps start from, so the model runs once per phase step and never a third time for
    the snapshot. Every iteration takes the snapshot, under both priors, so both
    consume random numbers identically and differ only by the penalty. The iteration
    holds the snapshot; the objectives hold nothing between calls.

    Each phase steps its own :class:`torch.optim.Adam`, over the discriminator's
    parameters and over the generator's, after the objective's ``loss_and_grads`` (as
    :class:`~pyro_vigen.infer.ModuleSVI` steps; stock :class:`pyro.infer.SVI` with
    the same snapshots takes the same steps). With ``train.jit`` (the default) the objectives are the
    compiled :class:`JitDiscriminatorELBO` and :class:`JitGeneratorELBO`: they run
    uncompiled while Pyro's validation is on (a run's first step) and compile on the
    next, on a forked random state.

    :param gan: the model: a :class:`VariationalGAN`, or any object with its
        ``model``, ``guide``, ``generator`` and ``discriminator`` (the modules each phase
        moves) and ``generator_rows`` (the rows the generator phase scores:
        ``"generated"``, or ``"both"`` for :class:`~pyro_vigen.models.ALI`), as
        :class:`~pyro_vigen.models.aae.LatentGAN` has.
    :param GANTrainConfig train: the phases' steps, objectives and optimiser settings.

    :ivar DiscriminatorELBO disc_elbo: the discriminator's objective.
    :ivar GeneratorELBO gen_elbo: the generator's objective.
    :ivar torch.optim.Adam optim_disc: the discriminator's optimiser.
    :ivar torch.optim.Adam optim_gen: the generator's optimiser.

    Example::

        from pyro_vigen.infer import GANIteration, GANTrainConfig
        iteration = GANIteration(gan, GANTrainConfig(prior="data"))  # gan: a VariationalGAN
        iteration(lambda: x[torch.randint(len(x), (256,))])   # x: the data
        # e.g. {'disc_loss': 1.39, 'gen_loss': 0.77, 'penalty': 0.08} at initialisation
    """

    def __init__(self, gan: VariationalGAN, train: GANTrainConfig) -> None:
        self.gan = gan
        self.train = train
        disc_cls, gen_cls = (
            (JitDiscriminatorELBO, JitGeneratorELBO)
            if train.jit
            else (DiscriminatorELBO, GeneratorELBO)
        )
        self.disc_elbo = disc_cls()
        self.gen_elbo = gen_cls(
            prior=train.prior, reg_weight=train.reg_weight, loss=train.loss, rows=gan.generator_rows
        )
        self.optim_disc = torch.optim.Adam(
            gan.discriminator.parameters(), lr=train.lr_disc, betas=train.betas_disc
        )
        self.optim_gen = torch.optim.Adam(
            gan.generator.parameters(), lr=train.lr_gen, betas=train.betas_gen
        )

    def __call__(self, next_batch: Callable[[], torch.Tensor]) -> dict[str, float]:
        """Run the iteration, drawing each discriminator step's minibatch from ``next_batch()``.

        :returns: the last discriminator step's ``disc_loss``, the last generator step's
            ``gen_loss`` (penalty included) and that step's ``penalty``.
        """
        model, guide = self.gan.model, self.gan.guide
        for _ in range(self.train.disc_steps):
            batch = next_batch()
            snapshot, disc_loss = self.disc_elbo.snapshot_loss_and_grads(model, guide, batch)
            _step(self.optim_disc)
        for _ in range(self.train.gen_steps):
            gen_loss, penalty = self.gen_elbo.loss_and_grads_with_penalty(
                model, guide, batch, snapshot=snapshot
            )
            _step(self.optim_gen)
        return {"disc_loss": disc_loss, "gen_loss": gen_loss, "penalty": penalty}


def _step(optim: torch.optim.Optimizer) -> None:
    """Step ``optim`` on the gradients a phase filled, and clear them, as
    :meth:`~pyro_vigen.infer.ModuleSVI.step` does."""
    optim.step()
    optim.zero_grad()


def check_gan_settings(model: GANConfig, train: GANTrainConfig) -> None:
    """The GAN family's check before a run: a batch must split into packs (:func:`check_pack`)."""
    check_pack(model.pack, train.batch_size)


def check_pack(pack: int, batch_size: int) -> None:
    """Check that a batch splits into packs: its real points and its generated points
    are each cut into packs of ``pack`` consecutive points.

    :param int pack: ``GANConfig.pack``.
    :param int batch_size: ``GANTrainConfig.batch_size``.
    :raises ValueError: a pack larger than the batch, or a batch size that is not a
        multiple of the pack.
    """
    if pack > batch_size:
        raise UserError(
            f"pack={pack} is larger than batch_size={batch_size}: "
            "a batch must hold at least one pack of real points",
            field="pack",
        )
    if batch_size % pack:
        raise UserError(
            f"batch_size={batch_size} is not a multiple of pack={pack}: "
            f"the real and the generated points of a batch are each split into packs; "
            f"use e.g. batch_size={batch_size // pack * pack}",
            field="batch_size",
        )


def gan_step(
    gan: VariationalGAN, train: GANTrainConfig, x: torch.Tensor, sampler: BatchSampler
) -> TrainingStep:
    """One GAN training step: one :class:`GANIteration`, on minibatches of ``x``.

    ``history.csv`` holds, per iteration, the last discriminator step's ``disc_loss``,
    the last generator step's ``gen_loss`` (penalty included) and that step's
    ``penalty``.

    :param VariationalGAN gan: the model.
    :param GANTrainConfig train: the phases' steps, objectives and optimiser settings.
    :param x: the data.
    :param BatchSampler sampler: the minibatches.
    :returns: the step and its optimisers ``disc`` and ``gen``.
    """
    iteration = GANIteration(gan, train)
    return TrainingStep(
        lambda _: iteration(lambda: x[sampler.next().to(x.device)]),
        {"disc": iteration.optim_disc, "gen": iteration.optim_gen},
        ["disc_loss", "gen_loss", "penalty"],
    )


#: Names of the generator losses in labels: the IWGAN is a GAN of its own in reports.
LOSS_NAMES = {"nonsaturating": "GAN", "minimax": "minimax GAN", "importance_weighted": "IWGAN"}


def adversarial_label(name: str, train: dict[str, Any]) -> str:
    """``name``, the prior, the generator steps and, for the data prior, its weight."""
    steps = train.get("gen_steps", 1)
    prior = train.get("prior", "mixed")
    penalty = f", lambda={train.get('reg_weight')}" if prior == "data" else ""
    return f"{name} {prior} prior, {steps} gen step{'s' if steps > 1 else ''}{penalty}"


def gan_label(config: dict[str, Any]) -> str:
    """The generator loss (``GAN``, ``minimax GAN``, ``IWGAN``), then :func:`adversarial_label`."""
    train = config["train"]
    return adversarial_label(LOSS_NAMES[train.get("loss", "nonsaturating")], train)


def gan_role(config: dict[str, Any]) -> tuple[str, int] | None:
    """The classic GAN has the mixed prior and one generator step; the data-prior GAN's
    ablation has the mixed prior and the data prior's number of steps (two or more).
    The claims are about the non-saturating loss: other losses play no role."""
    train = config["train"]
    if train.get("loss", "nonsaturating") != "nonsaturating":
        return None
    steps = train.get("gen_steps") or 1
    if train.get("prior") == "data":
        return "data_prior", steps
    return ("classic" if steps == 1 else "ablation"), steps


#: The GAN family: a batch must split into the model's packs (:func:`check_pack`); its
#: runs are diagnosed with the trained discriminator's estimates of the divergences.
GAN_FAMILY = register(
    Family(
        name="gan",
        help="train a GAN as VI over the real/fake label",
        model_config=GANConfig,
        train_config=GANTrainConfig,
        model=VariationalGAN,
        build_step=gan_step,
        label=gan_label,
        check=check_gan_settings,
        diagnostics=("discriminator",),
        role=gan_role,
    )
)
