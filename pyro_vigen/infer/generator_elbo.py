r"""The generator phase of the GAN as variational inference, with the choice of prior on x."""

from __future__ import annotations

import math

import pyro.poutine as poutine
import torch
from pyro.poutine import Trace

from ..errors import UserError
from .discriminator_elbo import (
    PhaseELBO,
    check_label,
    guide_trace,
    label_mean,
    labelled_batch,
    param_leaves,
    pop_snapshot,
    row_labels,
)

PRIORS = ("mixed", "data")
GENERATOR_LOSSES = ("nonsaturating", "minimax", "importance_weighted")
#: Which rows of the labelled batch the generator phase scores: those whose law depends
#: on the model's parameters (see :class:`GeneratorELBO`).
GENERATOR_ROWS = ("generated", "both")
# The published data-prior experiments (CelebA, DCGAN) use lambda = 5.
DEFAULT_REG_WEIGHT = 5.0


def resolve_reg_weight(prior: str, reg_weight: float | None) -> float | None:
    """The penalty weight a ``prior`` runs with: ``None`` takes the default for ``"data"``.

    :raises ValueError: unknown prior, a weight given with ``prior="mixed"`` (which has
        no penalty to weigh), or a negative or non-finite weight.
    """
    if prior not in PRIORS:
        raise UserError(f"unknown prior {prior!r}; use one of {', '.join(PRIORS)}")
    if prior == "mixed":
        if reg_weight is not None:
            raise UserError(
                f"reg_weight={reg_weight!r} only applies to prior 'data'; "
                "the mixed prior has no penalty",
                field="reg_weight",
            )
        return None
    if reg_weight is None:
        return DEFAULT_REG_WEIGHT
    if isinstance(reg_weight, bool) or not isinstance(reg_weight, (int, float)):
        raise UserError(f"reg_weight must be a number, got {reg_weight!r}")
    if not (math.isfinite(reg_weight) and reg_weight >= 0):
        raise UserError(f"reg_weight must be a finite number >= 0, got {reg_weight!r}")
    return float(reg_weight)


class GeneratorELBO(PhaseELBO):
    r"""The generator phase: :math:`\max_\theta \mathbb{E}_{p_\theta(x|y)p(y)}[\log q^r_\phi(y|x)]`.

    :math:`q^r_\phi(y|x) = q_\phi(1-y|x)` is the discriminator with the label reversed.
    Only the generated half (:math:`y = 0`) depends on :math:`\theta`, so with
    :math:`D = \sigma(D_\phi)` and :math:`x_i = G_\theta(z_i)` the loss is a batch *mean*
    over the generated rows (the classic formulas, not the sums Pyro's ELBOs take):

    - ``loss="nonsaturating"``: :math:`L_G = -\frac{1}{m}\sum_i \log D(G_\theta(z_i))`;
    - ``loss="minimax"``: :math:`L_G = \frac{1}{m}\sum_i \log(1 - D(G_\theta(z_i)))`, the
      :math:`\theta`-dependent part of the discriminator's own objective.
    - ``loss="importance_weighted"`` (IWGAN, the importance weighted GAN of Hu et al. [2]): the
      non-saturating loss with the batch mean replaced by self-normalised importance
      weights,

      .. math::
          L_G = -\sum_i \tilde w_i \log D(G_\theta(z_i)), \qquad
          \tilde w_i = \frac{w_i}{\sum_j w_j}, \quad
          w_i = \frac{D(x_i)}{1 - D(x_i)} = e^{D_\phi(x_i)},

      :math:`w_i` being the discriminator's estimate of the density ratio
      :math:`p_{data}(x_i)/p_g(x_i)`. The weights are constants of the gradient (no
      gradient flows through them), so
      :math:`\nabla_\theta L_G = -\sum_i \tilde w_i \nabla_\theta \log D(G_\theta(z_i))`:
      generated points the discriminator finds more data-like weigh more. With equal
      weights it is the non-saturating loss.

    **Rows.** In a GAN only the generated rows depend on :math:`\theta`. In ALI/BiGAN
    (:class:`~pyro_vigen.models.ALI`) both do: a real row is the pair
    :math:`(x, z)`, :math:`z \sim q_\theta(z|x)` drawn by the encoder, which the
    generator phase trains too. With ``rows="both"`` the phase scores every row with its
    label reversed (minimax: kept), and the loss is the sum of the two label means,

    .. math::
        L_G = -\tfrac{1}{n}\sum_{y_i=1} \log\big(1 - D(x_i)\big)
              - \tfrac{1}{m}\sum_{y_i=0} \log D(x_i)

    (non-saturating), :math:`\mathbb{E}_{p_\theta(x|y)p(y)}[\log q^r_\phi(y|x)]` over both
    labels, as Hu et al. [2] write ALI's generator phase. The data prior's penalty then
    covers every row. The importance-weighted loss applies to generated rows only.

    With packing (``GANConfig.pack`` > 1, PacGAN [5]) :math:`D` scores packs of
    generated points and :math:`L_G` is a mean over the generated packs; the data
    prior's penalty below stays a mean over the generated points.

    With an optimal discriminator the non-saturating loss has the gradient of
    :math:`KL(p_g\,\|\,p_{data}) - 2\,\mathrm{JSD}(p_g\,\|\,p_{data})` (per unit
    of the uniform :math:`p(y)`; per unit of both labels it is :math:`\tfrac12 KL - \mathrm{JSD}`): the
    model sits in the *first* slot of the KL, which is mode seeking. The prior on x
    decides the objective:

    - ``prior="mixed"`` (the previous round's mixture of data and generator): :math:`L_G`
      as above, the classic GAN.
    - ``prior="data"``: adds :math:`KL(p_g\,\|\,p_{data})`, with :math:`p_{data}`
      approximated by the generator :math:`G_{\theta'}` of a snapshot :math:`\theta'`:

      .. math::

          L_G + \lambda\,\frac{1}{m}\sum_i \big\|G_\theta(z_i) - G_{\theta'}(z_i)\big\|^2,

      the squared norm summed over a point's dimensions, with the same :math:`z_i` in
      both terms (the KL between :math:`\mathcal{N}(G_\theta(z), s^2)` and
      :math:`\mathcal{N}(G_{\theta'}(z), s^2)` is
      :math:`\|G_\theta(z) - G_{\theta'}(z)\|^2 / 2s^2`, so :math:`\lambda = 1/2s^2`).
      Experiments that weigh the per-element *mean* square by :math:`\lambda'` correspond
      to :math:`\lambda = \lambda'/D` here.

    **The penalty is a proximal term.** At :math:`\theta = \theta'` it and its gradient
    vanish, so it acts only when the generator takes two or more steps against one
    snapshot. The snapshot is the caller's: take it once per training iteration with
    :meth:`~pyro_vigen.infer.discriminator_elbo.PhaseELBO.snapshot`, before that
    iteration's generator steps, and pass it to each as the keyword ``snapshot`` (also
    to the discriminator's step before them, which then trains on its batch, as
    :class:`~pyro_vigen.infer.GANIteration` does). Each step replays the snapshot's
    trace, so every step sees the snapshot's z; with one step per snapshot the data
    prior's trajectory is exactly the classic GAN's. Under ``prior="mixed"`` a snapshot
    is optional: with one, the steps reuse its z; without, each step draws fresh z.

    The guide runs with its parameters hidden from outer handlers, and gradients are
    accumulated into the model's parameters only, so under :meth:`pyro.infer.SVI.step`
    this phase never moves :math:`\phi` and leaves ``grad`` of :math:`\phi` untouched.
    The graph of :meth:`differentiable_loss` runs through the discriminator too:
    ``backward()`` on it fills :math:`\phi`'s gradients as well, unless called with
    ``inputs=`` the generator's parameters (as :meth:`loss_and_grads` does). The
    losses include the penalty; :meth:`loss_and_grads_with_penalty` also returns it.

    :param str prior: ``"mixed"`` or ``"data"``.
    :param float reg_weight: :math:`\lambda` of the data prior (``None``: 5.0); giving
        one with ``prior="mixed"`` is an error.
    :param str loss: ``"nonsaturating"``, ``"minimax"`` or ``"importance_weighted"``.
    :param str rows: ``"generated"`` (a GAN) or ``"both"`` (ALI/BiGAN): the rows scored.

    Example::

        import pyro
        from pyro_vigen.infer import GeneratorELBO
        elbo = GeneratorELBO(prior="data", reg_weight=5.0)   # gan, x as for DiscriminatorELBO
        svi_g = pyro.infer.SVI(gan.model, gan.guide, pyro.optim.Adam({"lr": 1e-3}), elbo)
        snapshot = elbo.snapshot(gan.model, x)   # theta', once per iteration
        svi_g.step(x, snapshot=snapshot)         # the penalty and its gradient are 0 here
        svi_g.step(x, snapshot=snapshot)         # and act from the second step on

    References:
    [1] Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
    [2] Hu et al., "On Unifying Deep Generative Models", ICLR 2018.
    [3] Su, "Variational Inference: A Unified Framework of Generative Models and Some
    Revelations", arXiv:1807.05936.
    [4] Arjovsky and Bottou, "Towards Principled Methods for Training Generative
    Adversarial Networks", ICLR 2017.
    [5] Lin et al., "PacGAN: The power of two samples in generative adversarial
    networks", NeurIPS 2018.
    """

    def __init__(
        self,
        prior: str = "mixed",
        reg_weight: float | None = None,
        loss: str = "nonsaturating",
        rows: str = "generated",
    ) -> None:
        super().__init__()
        self.reg_weight = resolve_reg_weight(prior, reg_weight)
        if loss not in GENERATOR_LOSSES:
            raise UserError(
                f"unknown generator loss {loss!r}; use one of {', '.join(GENERATOR_LOSSES)}"
            )
        if rows not in GENERATOR_ROWS:
            raise UserError(f"unknown rows {rows!r}; use one of {', '.join(GENERATOR_ROWS)}")
        if rows == "both" and loss == "importance_weighted":
            raise UserError(
                "the importance-weighted loss weighs generated rows by the discriminator's "
                "density ratio; it does not apply with rows='both'",
                field="loss",
            )
        self.prior = prior
        self.generator_loss = loss
        self.rows = rows

    def loss_and_grads_with_penalty(self, model, guide, *args, **kwargs) -> tuple[float, float]:
        """:meth:`loss_and_grads`, and the data prior's penalty included in its loss.

        :returns: the loss (penalty included) and the penalty (0 under the mixed prior).
        """
        return self._loss_and_grads(model, guide, args, kwargs)

    def _get_trace(self, model, guide, args, kwargs) -> tuple[Trace, Trace]:
        """The model's trace (replayed against the ``snapshot`` in ``kwargs``) and the
        guide's on its generated rows.

        The guide's parameters are hidden from outer handlers, so SVI collects only
        the model's.

        :raises ValueError: ``prior="data"`` without a snapshot; under validation, a
            batch without generated rows.
        """
        snapshot, kwargs = pop_snapshot(kwargs)
        if snapshot is not None:
            model = poutine.replay(model, trace=snapshot)
        elif self.prior == "data":
            raise UserError(
                "prior 'data' needs a snapshot of the generator: pass "
                "snapshot=elbo.snapshot(model, *args) to each of an iteration's generator steps"
            )
        model_trace = poutine.trace(model).get_trace(*args, **kwargs)
        x, y = labelled_batch(model_trace)
        check_label(y, 0)
        # The non-saturating and importance-weighted losses score the rows with the
        # reversed label; minimax scores them with their own and maximises the
        # discriminator's loss.
        reverse = self.generator_loss != "minimax"
        if self.rows == "both":
            check_label(y, 1)
            with poutine.block(hide_types=["param"]):
                trace = guide_trace(guide, x, 1 - y if reverse else y)
            return model_trace, trace
        generated = y == 0
        # The generated rows keep their order, so their packs stay whole.
        rows = row_labels(x, y) == 0
        with poutine.block(hide_types=["param"]):
            trace = guide_trace(guide, x[rows], torch.full_like(y[generated], float(reverse)))
        return model_trace, trace

    def _terms(
        self, model, guide, args, kwargs
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], list[torch.Tensor]]:
        """The loss (penalty included) and the penalty, and the model's parameters."""
        model_trace, trace = self._get_trace(model, guide, args, kwargs)
        x, y = labelled_batch(model_trace)
        log_q = trace.nodes["y"]["log_prob"]
        if self.generator_loss == "importance_weighted":
            # w_i = D/(1 - D) = exp(logit_i), self-normalised: a softmax of the logits,
            # held constant for the gradient.
            weights = torch.softmax(trace.nodes["y"]["fn"].logits.detach(), dim=0)
            loss = -(weights * log_q).sum()
        else:
            score = log_q.mean()
            if self.rows == "both":
                score = label_mean(log_q, y, 1) + label_mean(log_q, y, 0)
            loss = -score if self.generator_loss == "nonsaturating" else score
        penalty = torch.zeros_like(loss)
        if self.prior == "data":
            # Replay fixed z, so row i of both batches is the same z_i (a batch of
            # another size fails in the replay, at the plate).
            x_snap, _ = labelled_batch(pop_snapshot(kwargs)[0])
            scored = row_labels(x, y) == 0 if self.rows == "generated" else slice(None)
            diff = x[scored] - x_snap[scored]
            penalty = self.reg_weight * diff.pow(2).flatten(1).sum(-1).mean()
        return (loss + penalty, penalty), param_leaves(model_trace)
