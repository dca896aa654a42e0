"""An adversarial autoencoder on the ring of eight Gaussians: the VAE with a GAN on z.

Trains an :class:`~pyro_vigen.models.AdversarialAutoencoder` on ``ring8`` with
:func:`~pyro_vigen.infer.train` of the AAE family. Each iteration has three phases: the
reconstruction term of the ELBO alone (:class:`~pyro_vigen.infer.ReconstructionELBO`,
over the encoder and the decoder), then the GAN's two phases on z, the discriminator
telling draws of the prior :math:`p(z)` from codes of the data and the encoder, as the
generator, moving its codes onto the prior. That GAN replaces the VAE's per-point
:math:`KL(q(z|x)\\|p(z))` by the aggregate :math:`KL(q(z)\\|p(z))` and drops the mutual
information of x and z (see the docs' Theory page). Samples are decoder means of prior
draws, so the model is only as good as the aggregate posterior matches the prior.

:func:`~pyro_vigen.diagnostics.diagnose` then measures the samples (mode coverage, both
KLs) and, because the family has an encoder, the reconstructions (x to z to x: does it
come back to the same mode?) and the aggregate posterior against the prior. The script
prints modes captured (of 8), the share of reconstructions on their point's mode and
:math:`KL(q(z)\\|p(z))`. ``--quick`` only checks that it runs; the default (5,000
iterations) takes about a minute::

    python examples/aae_ring.py --out runs/examples/aae_ring
"""

from __future__ import annotations

import argparse

from pyro_vigen.data import DataConfig
from pyro_vigen.diagnostics import diagnose
from pyro_vigen.infer import AAETrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run, for a smoke test")
    parser.add_argument("--out", default="runs/examples/aae_ring", help="the run directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    steps, num_points, num_samples = (100, 2000, 500) if args.quick else (5000, 10_000, 5000)
    data = DataConfig(name="ring8", num_points=num_points)
    # The GAN on z is the classic one (mixed prior, one generator step); lr is the
    # reconstruction phase's learning rate, lr_disc and lr_gen the GAN's.
    settings = AAETrainConfig(steps=steps, seed=args.seed, num_saved_samples=num_samples)
    # overwrite=True: rerunning the example replaces the previous run in --out. One
    # torch thread, the library's default for its small nets (threads=N for more).
    train("aae", args.out, data, settings, overwrite=True, progress=False)

    # diagnose() reads the run back and writes metrics.json beside it: the KLs from the
    # samples by k-nearest neighbours, and the AAE's own recon_* and latent_kl_* keys.
    m = diagnose(args.out, num_samples=num_samples)
    print(f"modes captured: {m['modes_captured']} of {m['num_modes']}")
    print(f"hq_fraction: {m['hq_fraction']:.3f}")
    print(f"KL(data || model) forward: {m['kl_forward']:.3f} nats ({m['kl_method']})")
    print(f"KL(model || data) reverse: {m['kl_reverse']:.3f} nats ({m['kl_method']})")
    print(
        f"reconstruction: same mode {100 * m['recon_same_mode']:.1f}%, "
        f"relative error {m['recon_rel_error']:.3f}"
    )
    print(
        f"aggregate posterior: KL(q(z)||p(z)) = {m['latent_kl_reverse']:.3f} nats, "
        f"KL(p(z)||q(z)) = {m['latent_kl_forward']:.3f} ({m['latent_kl_method']})"
    )
    print(f"wrote {args.out}/metrics.json")


if __name__ == "__main__":
    main()
