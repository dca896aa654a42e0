"""Data-parallel training under ``torchrun``: the process group, gradient averaging, rank 0 writes.

``torchrun`` starts one process per rank and sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK`` (and the rendezvous address) in each. :func:`~pyro_vigen.infer.train`
reads them through :func:`world`: with more than one rank it joins the process group
(:func:`init`; gloo on CPU, NCCL on CUDA), and then

- every rank builds the same initial parameters (the run's seed) and takes its own
  slice of each global minibatch (:class:`~pyro_vigen.infer.BatchSampler` with
  ``rank`` and ``world_size``): ``--batch-size`` is the *global* batch, split evenly;
- every optimiser averages its parameters' gradients over the ranks before it steps
  (:func:`average_gradients`): each phase of a GAN, an AAE or a VAE step over its own
  parameters only, so the ranks' parameters stay identical;
- noise (z, particles) is drawn from a per-rank stream seeded by ``(seed, rank)``, and
  the checkpoint holds every rank's random state, so a run and its resume are
  reproducible;
- rank 0 alone writes the run directory (config, history, checkpoints, samples).

Nothing here runs in a plain (one-process) run: there :func:`world` says one rank, and
training is exactly what it was.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist
from torch import nn

from .errors import UserError

#: How long a rank waits at a collective before giving up: a sweep's ranks wait at
#: the end for the slowest one (``compare``), which may take hours.
TIMEOUT = datetime.timedelta(hours=24)


@dataclasses.dataclass(frozen=True)
class World:
    """Where this process stands: its ``rank`` of ``size``, and its ``local_rank`` on its host."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes."""
        return self.rank == 0


def world() -> World:
    """This process's rank and world size, from ``torchrun``'s environment (one rank without it).

    :raises ValueError: a ``WORLD_SIZE``, ``RANK`` or ``LOCAL_RANK`` that is not an integer.
    """
    values = {}
    for key, name in (("size", "WORLD_SIZE"), ("rank", "RANK"), ("local_rank", "LOCAL_RANK")):
        text = os.environ.get(name)
        try:
            values[key] = int(text) if text is not None else (1 if key == "size" else 0)
        except ValueError:
            raise UserError(f"{name}={text!r} in the environment is not an integer") from None
    return World(**values)


def init(device: torch.device) -> World:
    """Join the process group of a ``torchrun`` launch, if there is one and it is not joined yet.

    :param device: the device the run trains on: CUDA takes NCCL, CPU gloo.
    :returns: the :class:`World` (one rank outside ``torchrun``: nothing is joined).
    """
    here = world()
    if here.size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
    return here


def average_gradients(optim: torch.optim.Optimizer, size: int) -> None:
    """Make ``optim`` average its parameters' gradients over the ``size`` ranks before each step.

    A pre-step hook all-reduces the gradients, flattened into one buffer (one collective
    per optimiser step, whatever the number of tensors), and divides them by ``size``.
    Parameters without a gradient are left out on every rank alike (the ranks run the
    same program). The gradient of a loss that is a mean over the rank's minibatch then
    becomes that of the mean over the global minibatch.

    :param optim: the optimiser of one phase.
    :param int size: the world size.
    """

    def hook(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        grads = [g for g in grads if g is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    optim.register_step_pre_hook(hook)


def broadcast_state(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers (batch norm's running statistics) to every rank."""
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def average_metrics(
    metrics: dict[str, float], size: int, device: torch.device | None = None
) -> dict[str, float]:
    """The mean over the ranks of each metric of a step (the global minibatch's, for means).

    :param device: where the collective runs: the model's device (NCCL takes CUDA tensors).
    """
    keys = list(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(keys, (values / size).tolist(), strict=True))


def agree(error: Exception | None) -> None:
    """Raise on every rank what rank 0 raised (a :class:`UserError`), or nothing.

    Rank 0 alone prepares the run directory; a refusal there (a run already in the
    folder) must stop every rank, not leave the others waiting at the first collective.
    """
    box = [str(error) if isinstance(error, UserError) else None]
    dist.broadcast_object_list(box, src=0)
    if error is not None and not isinstance(error, UserError):
        raise error
    if box[0] is not None:
        raise UserError(box[0])


def gather(obj):
    """Every rank's ``obj``, as a list indexed by rank (on every rank)."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s noise in a run of seed ``seed``: distinct per rank,
    deterministic in both."""
    return (seed * 1_000_003 + rank + 1) % (2**63)
