"""The minibatch loop of the diagnostics' small nets (classifiers, labellers).

Each of them trains the same way: epochs of a seeded permutation of the training points,
cut into minibatches (the last, partial one of an epoch dropped), one optimiser step a
minibatch, for a fixed number of steps. The loss of a minibatch is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def minibatch_descent(
    loss: Callable[[torch.Tensor], torch.Tensor],
    optim: torch.optim.Optimizer,
    *,
    num_points: int,
    batch: int,
    steps: int,
    generator: torch.Generator,
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """Take ``steps`` optimiser steps, one a minibatch of a seeded permutation's epochs.

    The generator draws each epoch's permutation, after the losses of the epoch before
    (which may draw from it too), and none after the last step.

    :param loss: the loss of a minibatch, given its indices (``batch`` of them).
    :param optim: the optimiser of the net's parameters.
    :param int num_points: training points, at least ``batch``.
    :param int batch: points a minibatch.
    :param int steps: optimiser steps.
    :param torch.Generator generator: draws the permutations.
    :param schedule: a learning-rate schedule stepped after each optimiser step.
    """
    step = 0
    while step < steps:
        perm = torch.randperm(num_points, generator=generator)
        for start in range(0, num_points - batch + 1, batch):
            value = loss(perm[start : start + batch])
            optim.zero_grad()
            value.backward()
            optim.step()
            if schedule is not None:
                schedule.step()
            step += 1
            if step == steps:
                return
