"""A worker that ``tests/test_distributed.py`` launches under ``torchrun`` (2 ranks, gloo).

``python distributed_worker.py OUT``: on each rank,

1. one VAE step and GAN iterations (both phases, the data prior with 2 generator
   steps), recording every optimiser's gradients before and after the library's
   averaging hook, and checking that the averaged ones are the mean of the ranks'
   own ones (gathered from all ranks), and that the ranks' parameters stay identical;
2. 20 VAE steps on the rank's slice of each global batch with per-step noise seeds
   ``1000 * step + rank``; rank 0 saves the parameters to ``OUT/vae_2ranks.pt`` for the
   test to compare with one process fed the same examples and the same noise.
"""

from __future__ import annotations

import sys

import pyro
import torch
import torch.distributed as dist
from pyro.infer import Trace_ELBO

from pyro_vigen import distributed
from pyro_vigen.infer import BatchSampler, GANIteration, GANTrainConfig, ModuleSVI
from pyro_vigen.models import VAE, GANConfig, VAEConfig, VariationalGAN

N, GLOBAL_BATCH, STEPS = 512, 64, 20


def data() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(N, 2, generator=gen) * 0.3 + torch.randn(N, 1, generator=gen).sign()


def vae_model() -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(data_shape=(2,), hidden=(16,)))


def recorded(optim: torch.optim.Optimizer, log: list) -> None:
    """Record the gradients an optimiser steps on: its own (before the averaging hook,
    registered after this one) and the averaged (after the step)."""
    params = [p for g in optim.param_groups for p in g["params"]]
    optim.register_step_pre_hook(
        lambda *_: log.append(("own", [p.grad.clone() for p in params if p.grad is not None]))
    )
    distributed.average_gradients(optim, dist.get_world_size())
    optim.register_step_post_hook(
        lambda *_: log.append(("avg", [p.grad.clone() for p in params if p.grad is not None]))
    )


def check_averages(log: list, what: str) -> None:
    own = [grads for kind, grads in log if kind == "own"]
    avg = [grads for kind, grads in log if kind == "avg"]
    assert own and len(own) == len(avg), what
    everyone = distributed.gather(own)
    for step, averaged in enumerate(avg):
        for i, g in enumerate(averaged):
            mean = sum(rank[step][i] for rank in everyone) / len(everyone)
            assert torch.allclose(g, mean, atol=1e-6), f"{what}: step {step}, tensor {i}"
            # The ranks' own gradients differ (their batches do): the check is not vacuous.
            assert not torch.equal(everyone[0][step][i], everyone[1][step][i]) or not g.any()


def check_identical(module: torch.nn.Module, what: str) -> None:
    states = distributed.gather({k: v.clone() for k, v in module.state_dict().items()})
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), f"{what}: {key} differs"


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    x = data()

    # 1. The averaged gradients are the mean of the ranks' own, in every phase.
    vae = vae_model()
    pyro.set_rng_seed(100 + rank)  # the same initial parameters, each rank its own noise
    log: list = []
    optim = torch.optim.Adam(vae.parameters(), lr=1e-2)
    recorded(optim, log)
    svi = ModuleSVI(vae.model, vae.guide, optim, Trace_ELBO())
    sampler = BatchSampler(N, GLOBAL_BATCH, seed=1, rank=rank, world_size=size)
    for _ in range(3):
        svi.step(x[sampler.next()], num_data=N)
    check_averages(log, "VAE")
    check_identical(vae, "VAE")

    torch.manual_seed(0)
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(16,)))
    iteration = GANIteration(gan, GANTrainConfig(prior="data", gen_steps=2, jit=False))
    pyro.set_rng_seed(200 + rank)
    disc_log, gen_log = [], []
    recorded(iteration.optim_disc, disc_log)
    recorded(iteration.optim_gen, gen_log)
    for _ in range(3):
        iteration(lambda: x[sampler.next()])
    check_averages(disc_log, "discriminator phase")
    check_averages(gen_log, "generator phase (data prior, 2 steps)")
    check_identical(gan, "GAN")

    # 2. Per-rank batch b on 2 ranks, for the test's one process with batch 2b.
    vae = vae_model()
    optim = torch.optim.Adam(vae.parameters(), lr=1e-2)
    distributed.average_gradients(optim, size)
    svi = ModuleSVI(vae.model, vae.guide, optim, Trace_ELBO())
    sampler = BatchSampler(N, GLOBAL_BATCH, seed=2, rank=rank, world_size=size)
    for step in range(STEPS):
        pyro.set_rng_seed(1000 * step + rank)
        svi.step(x[sampler.next()], num_data=N)
    if rank == 0:
        torch.save(vae.state_dict(), f"{out}/vae_2ranks.pt")
    print(f"rank {rank}: ok")
    dist.barrier()  # no rank leaves while another still talks to it


if __name__ == "__main__":
    main(sys.argv[1])
