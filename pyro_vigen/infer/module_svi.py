"""SVI with one PyTorch optimiser over known parameters: the step the trainers take."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro.infer import ELBO


class ModuleSVI:
    r"""Stochastic variational inference whose optimiser is a :class:`torch.optim.Optimizer`.

    A step is :meth:`pyro.infer.SVI.step` without its param-store work: the objective's
    ``loss_and_grads(model, guide, *args, **kwargs)`` fills the gradients, then one
    optimiser steps every parameter it was given and clears their gradients.
    :class:`~pyro.infer.SVI` instead records each step's param sites in an extra trace
    to find what to optimise, and :mod:`pyro.optim` keeps one optimiser per parameter
    tensor, stepped one by one. Where the parameters are known up front (an
    ``nn.Module``'s, or one part of it), handing them to a single optimiser does the
    same arithmetic with less Python per step, as hand-written PyTorch does.

    The model and guide still register their parameters as param sites (stock ELBOs
    backpropagate only when some are present), so the same pair keeps working with
    stock :class:`~pyro.infer.SVI`. Parameters that appear in the traces but
    not in ``optim`` receive gradients and are never stepped.

    :param model: the Pyro model.
    :param guide: the Pyro guide.
    :param optim: the optimiser over the parameters to learn.
    :param loss: the objective, any :class:`~pyro.infer.ELBO` (its ``loss_and_grads``).

    Example::

        import pyro, torch
        from pyro_vigen.infer import ModuleSVI
        from pyro_vigen.models import VAE, VAEConfig
        vae = VAE(VAEConfig(data_shape=(2,)))
        svi = ModuleSVI(vae.model, vae.guide, torch.optim.Adam(vae.parameters(), lr=1e-3),
                        pyro.infer.Trace_ELBO())
        svi.step(torch.randn(256, 2), num_data=10_000)   # the loss, a float

    References:
    [1] Hoffman, Blei, Wang and Paisley, "Stochastic Variational Inference", JMLR 2013.
    """

    def __init__(
        self, model: Callable, guide: Callable, optim: torch.optim.Optimizer, loss: ELBO
    ) -> None:
        self.model = model
        self.guide = guide
        self.optim = optim
        self.loss = loss

    def step(self, *args, **kwargs) -> float:
        """One gradient step; the arguments go to the model and guide.

        :returns: the loss before the step.
        """
        loss = self.loss.loss_and_grads(self.model, self.guide, *args, **kwargs)
        self.optim.step()
        self.optim.zero_grad()
        return loss
