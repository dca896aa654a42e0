r"""The discriminator phase of the GAN as variational inference over the label y.

Shared with :mod:`pyro_vigen.infer.generator_elbo`: reading the model's labelled batch
from its trace, and scoring :math:`\log q_\phi(y|x)` by running the guide with its ``y``
site conditioned.
"""

from __future__ import annotations

import pyro.poutine as poutine
import torch
from pyro.infer import ELBO
from pyro.poutine import Trace


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
        raise ValueError(
            "a GAN model must return the labelled batch (x, y), y a 1-D tensor of 0/1 labels "
            "with one per row of x, or one per pack of m consecutive rows, as "
            "VariationalGAN.model does"
        )
    return value


def row_labels(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The label of each row of a labelled batch: its pack's."""
    return y.repeat_interleave(x.shape[0] // y.shape[0])


def guide_trace(guide, x: torch.Tensor, y: torch.Tensor) -> Trace:
    """Trace of ``guide(x)`` with its ``y`` site conditioned on ``y``, log-probabilities computed.

    ``trace.nodes["y"]["log_prob"]`` is then :math:`\\log q_\\phi(y_i|x_i)`, one per label
    (per row, or per pack of rows).

    :raises ValueError: the guide has no sample site ``y``.
    """
    trace = poutine.trace(poutine.condition(guide, data={"y": y})).get_trace(x)
    if "y" not in trace.nodes or trace.nodes["y"]["type"] != "sample":
        raise ValueError(
            "a GAN guide must have a sample site 'y' (the label, 1 = real), as VariationalGAN.guide does"
        )
    trace.compute_log_prob(site_filter=lambda name, site: name == "y")
    return trace


def param_leaves(trace: Trace) -> list[torch.Tensor]:
    """The unconstrained parameter tensors of the param sites of ``trace``."""
    return [s["value"].unconstrained() for s in trace.nodes.values() if s["type"] == "param"]


def label_mean(log_q: torch.Tensor, y: torch.Tensor, label: int) -> torch.Tensor:
    """Mean of ``log_q`` over the labels (rows or packs) equal to ``label``.

    :raises ValueError: the batch holds no such label.
    """
    rows = y == label
    if not bool(rows.any()):
        raise ValueError(f"the labelled batch holds no row with y = {label}")
    return log_q[rows].mean()


class PhaseELBO(ELBO):
    """An objective of one GAN phase: ``loss``, ``loss_and_grads`` and
    ``differentiable_loss`` from one ``_loss`` returning the loss and the parameters
    that phase moves (so the gradient reaches those and no others).
    """

    def _loss(self, model, guide, args, kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The phase's loss as a tensor (see the class for which parameters it reaches)."""
        return self._loss(model, guide, args, kwargs)[0]

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The phase's loss, evaluated without gradient."""
        with torch.no_grad():
            return self._loss(model, guide, args, kwargs)[0].item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """The phase's loss, its gradient accumulated into this phase's parameters only."""
        loss, params = self._loss(model, guide, args, kwargs)
        if params:
            loss.backward(inputs=params)
        return loss.item()


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

    :ivar last_model_trace: the model's trace of the most recent evaluation (its
        labelled batch, z and the generator that drew them), which
        :meth:`GeneratorELBO.use_snapshot` can take as the generator's snapshot.

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

    def __init__(self) -> None:
        super().__init__()
        self.last_model_trace: Trace | None = None

    def _get_trace(self, model, guide, args, kwargs) -> tuple[Trace, Trace]:
        """The model's trace (no gradient, hidden) and the guide's on its labelled batch."""
        with torch.no_grad(), poutine.block():
            model_trace = poutine.trace(model).get_trace(*args, **kwargs)
        x, y = labelled_batch(model_trace)
        self.last_model_trace = model_trace
        return model_trace, guide_trace(guide, x, y)

    def _loss(self, model, guide, args, kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model_trace, trace = self._get_trace(model, guide, args, kwargs)
        return discriminator_loss(model_trace, trace), param_leaves(trace)


def discriminator_loss(model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
    """:class:`DiscriminatorELBO`'s loss from the model's trace and the guide's on its batch."""
    _, y = labelled_batch(model_trace)
    log_q = guide_trace.nodes["y"]["log_prob"]
    return -(label_mean(log_q, y, 1) + label_mean(log_q, y, 0))
