"""Reusing the library's model/guide pairs and objectives in your own Pyro loops.

Nothing in :mod:`pyro_vigen.models` depends on the training loops, the command line or
run directories: a :class:`~pyro_vigen.models.VAE` is a plain Pyro ``model``/``guide``
pair, and the GAN's two phases are ordinary :class:`pyro.infer.ELBO` subclasses. This
script

1. trains a VAE on ring8 in a hand-written stock :class:`pyro.infer.SVI` loop with a
   stock ELBO of your choice (``TraceMeanField_ELBO``, analytic KL of the Gaussian
   latent, or ``RenyiELBO`` with alpha = 0, the importance-weighted bound);
2. trains a :class:`~pyro_vigen.models.VariationalGAN` in a hand-written loop with
   :class:`~pyro_vigen.infer.DiscriminatorELBO` and
   :class:`~pyro_vigen.infer.GeneratorELBO` (``prior="data"``): per iteration a
   snapshot of the generator, one discriminator step on its batch, then **two**
   generator steps against it (with one, the proximal penalty and its gradient are
   zero).

Each model registers its parameters under its own unique name, so both live in one
process (and one param store) without interfering. ::

    python examples/reuse_model_guide.py --elbo renyi
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI, RenyiELBO, TraceMeanField_ELBO

from pyro_vigen.data import ring8
from pyro_vigen.diagnostics import mode_coverage
from pyro_vigen.infer import DiscriminatorELBO, GeneratorELBO
from pyro_vigen.models import VAE, GANConfig, VAEConfig, VariationalGAN
from pyro_vigen.threads import torch_threads


def train_vae_by_hand(x: torch.Tensor, steps: int, elbo_name: str) -> VAE:
    vae = VAE(VAEConfig(data_shape=(2,), latent_dim=2))
    if elbo_name == "meanfield":
        elbo = TraceMeanField_ELBO()
    else:
        # RenyiELBO needs to know how many plates are nested to vectorise its particles.
        elbo = RenyiELBO(alpha=0.0, num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), elbo)
    # num_data scales the minibatch likelihood to the full data set (through the plate).
    # Not for the importance-weighted bound: it is not linear in the log-weights, so a
    # scale inside its log-sum-exp would change the objective; optimise it unscaled.
    num_data = len(x) if elbo_name == "meanfield" else None
    for step in range(steps):
        batch = x[torch.randint(len(x), (256,))]
        loss = svi.step(batch, num_data=num_data)
        if step % max(1, steps // 5) == 0:
            print(f"  vae step {step:5d}  loss/point {loss / (num_data or len(batch)):8.3f}")
    return vae


def train_gan_by_hand(x: torch.Tensor, steps: int, reg_weight: float) -> VariationalGAN:
    gan = VariationalGAN(GANConfig(data_shape=(2,)))
    adam = {"lr": 1e-3, "betas": (0.5, 0.999)}
    gen_elbo = GeneratorELBO(prior="data", reg_weight=reg_weight)
    # Two SVI objects on one model/guide pair: each phase moves only its own parameters
    # (DiscriminatorELBO the guide's phi, GeneratorELBO the model's theta).
    svi_d = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), DiscriminatorELBO())
    svi_g = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), gen_elbo)
    for step in range(steps):
        batch = x[torch.randint(len(x), (256,))]
        # theta' := theta, with the labelled batch (and z) both phases train on; the
        # loop holds it, the objectives take it by keyword.
        snapshot = gen_elbo.snapshot(gan.model, batch)
        d_loss = svi_d.step(batch, snapshot=snapshot)
        for _ in range(2):
            g_loss = svi_g.step(batch, snapshot=snapshot)  # the penalty included
        if step % max(1, steps // 5) == 0:
            print(f"  gan step {step:5d}  disc {d_loss:.3f}  gen {g_loss:.3f}")
    return gan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, for a smoke test")
    parser.add_argument("--out", default="runs/examples/reuse_model_guide", help="output folder")
    parser.add_argument("--elbo", choices=["meanfield", "renyi"], default="meanfield")
    parser.add_argument("--reg-weight", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pyro.set_rng_seed(args.seed)

    mixture = ring8()
    x = mixture.sample(2000 if args.quick else 10_000)
    steps = 100 if args.quick else 3000

    # Your own loops, on the library's thread policy: one torch thread (small nets gain
    # nothing from more, and more fight other processes for the cores).
    with torch_threads():
        print(f"VAE with stock SVI and {args.elbo}:")
        vae = train_vae_by_hand(x, steps, args.elbo)
        print("GAN with DiscriminatorELBO + GeneratorELBO(prior='data'), 2 generator steps:")
        gan = train_gan_by_hand(x, steps, args.reg_weight)

    # Any diagnostic takes the samples: here, modes captured on the ring.
    summary = {}
    for name, model in [("vae", vae), ("gan", gan)]:
        cov = mode_coverage(model.sample(2000), mixture.centers, mixture.std)
        summary[name] = cov
        print(
            f"{name}: modes captured {cov['modes_captured']} of {cov['num_modes']}, "
            f"hq_fraction {cov['hq_fraction']:.3f}"
        )
    # Plain state dicts: the models are torch.nn.Modules as well.
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"vae": vae.state_dict(), "gan": gan.state_dict()}, out / "models.pt")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'models.pt'} and {out / 'summary.json'}")


if __name__ == "__main__":
    main()
