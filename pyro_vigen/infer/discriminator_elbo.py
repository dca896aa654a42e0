r"""The discriminator phase of the GAN as variational inference over the label y.

Shared with :mod:`pyro_vigen.infer.generator_elbo`: the snapshot (a trace of the
model, drawn once and handed to both phases with the keyword ``snapshot``), reading
the model's labelled batch from a trace, and scoring :math:`\log q_\phi(y|x)` by
running the guide with its ``y`` site conditioned.
"""

from __future__ import annotations

import pyro.poutine as poutine
import torch
from pyro.infer import ELBO
from pyro.infer.util import is_validation_enabled
from pyro.poutine import Trace
from pyro.util import warn_if_nan

from ..errors import UserError

#: The keyword the phases take their snapshot by; it never reaches the model or guide.
SNAPSHOT = "snapshot"


def labelled_batch(model_trace: Trace) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(x, y)`` a GAN model returned, checked.

    ``y`` holds one label per pack of m consecutive rows of ``x`` (PacGAN; m = 1, a label
    per row, is the classic GAN), so ``x`` has a multiple of ``len(y)`` rows.

    :raises ValueError: the model returned something else.
    """
    value = model_trace.nodes["_RETURN"]["value"]
    if not (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, torch.Tensor) for v in value)
        and value[1].dim() == 1
        and value[1].shape[0] > 0
        and value[0].shape[0] % value[1].shape[0] == 0
    ):
        raise UserError(
            "a GAN model must return the labelled batch (x, y), y a 1-D tensor of 0/1 labels "
            "with one per row of x, or one per pack of m consecutive rows, as "
            "VariationalGAN.model does"
        )
    return value


def row_labels(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The label of each row of a labelled batch: its pack's."""
    return y.repeat_interleave(x.shape[0] // y.shape[0])


def trace_model(model, args: tuple, kwargs: dict) -> Trace:
    """A trace of ``model(*args, **kwargs)`` run without gradient, hidden from outer handlers.

    :raises ValueError: the model did not return a labelled batch.
    """
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(*args, **kwargs)
    labelled_batch(trace)
    return trace


def pop_snapshot(kwargs: dict) -> tuple[Trace | None, dict]:
    """The phase's ``snapshot`` keyword and the model's own keywords, apart.

    :returns: the snapshot (``None`` without one) and the other keywords, a new dict.
    """
    if SNAPSHOT not in kwargs:
        return None, kwargs
    kwargs = dict(kwargs)
    return kwargs.pop(SNAPSHOT), kwargs


def guide_trace(guide, x: torch.Tensor, y: torch.Tensor) -> Trace:
    """Trace of ``guide(x)`` with its ``y`` site conditioned on ``y``, log-probabilities computed.

    ``trace.nodes["y"]["log_prob"]`` is then :math:`\\log q_\\phi(y_i|x_i)`, one per label
    (per row, or per pack of rows).

    :raises ValueError: the guide has no sample site ``y``.
    """
    trace = poutine.trace(poutine.condition(guide, data={"y": y})).get_trace(x)
    if "y" not in trace.nodes or trace.nodes["y"]["type"] != "sample":
        raise UserError(
            "a GAN guide must have a sample site 'y' (the label, 1 = real), as VariationalGAN.guide does"
        )
    trace.compute_log_prob(site_filter=lambda name, site: name == "y")
    return trace


def param_leaves(trace: Trace) -> list[torch.Tensor]:
    """The unconstrained parameter tensors of the param sites of ``trace``."""
    return [s["value"].unconstrained() for s in trace.nodes.values() if s["type"] == "param"]


def check_label(y: torch.Tensor, label: int) -> None:
    """Under Pyro's validation, check that a labelled batch holds the label ``label``.

    Without any, the phase's mean over that label is NaN (which ``warn_if_nan`` reports);
    the check reads the labels back from the device, so it runs only while validating.

    :raises ValueError: the batch holds no such label.
    """
    if is_validation_enabled() and not bool((y == label).any()):
        raise UserError(f"the labelled batch holds no row with y = {label}")


def label_mean(log_q: torch.Tensor, y: torch.Tensor, label: int) -> torch.Tensor:
    """Mean of ``log_q`` over the labels (rows or packs) equal to ``label``.

    :raises ValueError: under validation, the batch holds no such label.
    """
    check_label(y, label)
    return log_q[y == label].mean()


class PhaseELBO(ELBO):
    """An objective of one GAN phase, stateless: ``loss``, ``loss_and_grads`` and
    ``differentiable_loss`` from one ``_terms`` returning the loss (with any terms the
    phase reports) and the parameters that phase moves, so the gradient reaches those
    and no others.

    Both phases take the keyword ``snapshot``: a trace of the model from
    :meth:`snapshot`, held by the caller. It is popped before the model and guide run
    (so neither may take a keyword of that name). ``_get_trace`` and ``_get_traces``
    keep :class:`pyro.infer.ELBO`'s signatures, the snapshot travelling in ``kwargs``.
    Checks that read values back from the device run only under Pyro's validation
    (:func:`pyro.infer.util.is_validation_enabled`); the losses pass
    :func:`pyro.util.warn_if_nan`, as Pyro's ELBOs do.
    """

    def snapshot(self, model, *args, **kwargs) -> Trace:
        """A draw of the model's labelled batch at its current parameters :math:`\\theta'`.

        Traces ``model(*args, **kwargs)`` once, without gradient and hidden from outer
        handlers. Pass the result to the phases' steps as ``snapshot=``: the
        discriminator step then trains on its labelled batch instead of drawing one, and
        the generator steps replay the model against it (same z, same noise), its
        generated points being :math:`G_{\\theta'}(z)`. Pass the same arguments as to
        the steps. Taking it changes nothing in the objective: it is the caller's.

        :returns: the trace (``trace.nodes["z"]["value"]`` is its z).
        :raises ValueError: the model did not return a labelled batch.
        """
        return trace_model(model, args, kwargs)

    def _get_trace(self, model, guide, args, kwargs) -> tuple[Trace, Trace]:
        raise NotImplementedError

    def _terms(
        self, model, guide, args, kwargs
    ) -> tuple[tuple[torch.Tensor, ...], list[torch.Tensor]]:
        """The phase's loss followed by the terms it reports, and the parameters it moves."""
        raise NotImplementedError

    def _loss(
        self, model, guide, args, kwargs
    ) -> tuple[tuple[torch.Tensor, ...], list[torch.Tensor]]:
        # The compiled objectives (pyro_vigen.infer.gan_jit) run _terms as a graph here.
        return self._terms(model, guide, args, kwargs)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The phase's loss as a tensor (see the class for which parameters it reaches)."""
        loss = self._loss(model, guide, args, kwargs)[0][0]
        warn_if_nan(loss, "loss")
        return loss

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The phase's loss, evaluated without gradient."""
        with torch.no_grad():
            loss = self._loss(model, guide, args, kwargs)[0][0].item()
        warn_if_nan(loss, "loss")
        return loss

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """The phase's loss, its gradient accumulated into this phase's parameters only."""
        return self._loss_and_grads(model, guide, args, kwargs)[0]

    def snapshot_loss_and_grads(self, model, guide, *args, **kwargs) -> tuple[Trace, float]:
        """:meth:`snapshot`, then :meth:`loss_and_grads` on it, in one call.

        What a GAN iteration's discriminator step does (:class:`~pyro_vigen.infer.GANIteration`);
        the compiled objectives run it as one graph instead of two.

        :returns: the snapshot, to hand on to the generator's steps, and the loss.
        """
        snapshot = self.snapshot(model, *args, **kwargs)
        return snapshot, self.loss_and_grads(model, guide, *args, snapshot=snapshot, **kwargs)

    def _loss_and_grads(self, model, guide, args, kwargs) -> tuple[float, ...]:
        """:meth:`loss_and_grads`, returning the reported terms after the loss."""
        return self._backward(*self._loss(model, guide, args, kwargs))

    @staticmethod
    def _backward(terms: tuple[torch.Tensor, ...], params: list[torch.Tensor]) -> tuple[float, ...]:
        """The gradient of ``terms[0]`` into ``params``; the terms' values."""
        if params:
            terms[0].backward(inputs=params)
        values = tuple(t.item() for t in terms)
        warn_if_nan(values[0], "loss")
        return values


class DiscriminatorELBO(PhaseELBO):
    r"""The discriminator phase: :math:`\max_\phi \mathbb{E}_{p_\theta(x|y)p(y)}[\log q_\phi(y|x)]`.

    With :math:`q_\phi(y=1|x) = D(x) = \sigma(D_\phi(x))`, its loss on a labelled batch is

    .. math::

        L_D = -\Big(\tfrac{1}{n}\sum_{y_i=1} \log D(x_i)
              + \tfrac{1}{m}\sum_{y_i=0} \log\big(1 - D(x_i)\big)\Big),

    the classic GAN discriminator loss: batch *means* over each label (not the sums
    Pyro's ELBOs take), which is twice the expectation over the uniform :math:`p(y)`. It
    is :math:`2\log 2` at the optimum when :math:`p_g = p_{data}`, and in general
    :math:`2\log 2 - 2\,\mathrm{JSD}(p_{data}\,\|\,p_g)` at the optimal discriminator.
    With packing (``GANConfig.pack`` = k > 1, PacGAN [4]) a label and :math:`x_i` stand
    for a pack of k points, n and m count packs, and the JSD is that of the product
    distributions :math:`p_{data}^k` and :math:`p_g^k`.

    ``model(*args)`` must return the labelled batch ``(x, y)`` and ``guide(x)`` must
    score labels at a sample site ``y`` (see :class:`~pyro_vigen.models.VariationalGAN`).
    The model runs without gradient and hidden from every outer handler, so under
    :meth:`pyro.infer.SVI.step` only the guide's parameters :math:`\phi` reach the
    optimiser and receive gradients: this phase never moves :math:`\theta`. One particle:
    the batch is the Monte Carlo sample.

    Every method takes, besides the model's arguments, the keyword ``snapshot``: a trace
    from :meth:`~PhaseELBO.snapshot` whose labelled batch the step trains on instead of
    running the model. Handing the same snapshot to the generator's steps that follow
    runs the model once for both phases, and the generator's steps then see the z the
    discriminator was just trained on (as PyTorch's DCGAN example reuses its fake batch
    for both phases); :class:`~pyro_vigen.infer.GANIteration` does so.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.infer import DiscriminatorELBO
        from pyro_vigen.models import GANConfig, VariationalGAN
        gan, x = VariationalGAN(GANConfig(data_shape=(2,))), load_dataset("ring8").x[:256]
        DiscriminatorELBO().loss(gan.model, gan.guide, x)   # about 2 log 2 = 1.39 at initialisation

    References:
    [1] Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
    [2] Hu et al., "On Unifying Deep Generative Models", ICLR 2018.
    [3] Su, "Variational Inference: A Unified Framework of Generative Models and Some
    Revelations", arXiv:1807.05936.
    [4] Lin et al., "PacGAN: The power of two samples in generative adversarial
    networks", NeurIPS 2018.
    """

    def _get_trace(self, model, guide, args, kwargs) -> tuple[Trace, Trace]:
        """The model's trace (the snapshot, or a run without gradient, hidden) and the
        guide's on its labelled batch."""
        snapshot, kwargs = pop_snapshot(kwargs)
        model_trace = trace_model(model, args, kwargs) if snapshot is None else snapshot
        x, y = labelled_batch(model_trace)
        return model_trace, guide_trace(guide, x, y)

    def _terms(self, model, guide, args, kwargs) -> tuple[tuple[torch.Tensor], list[torch.Tensor]]:
        model_trace, trace = self._get_trace(model, guide, args, kwargs)
        return (discriminator_loss(model_trace, trace),), param_leaves(trace)


def discriminator_loss(model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
    """:class:`DiscriminatorELBO`'s loss from the model's trace and the guide's on its batch."""
    _, y = labelled_batch(model_trace)
    log_q = guide_trace.nodes["y"]["log_prob"]
    return -(label_mean(log_q, y, 1) + label_mean(log_q, y, 0))
