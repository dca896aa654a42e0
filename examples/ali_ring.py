"""ALI/BiGAN on the ring of eight Gaussians: the VAE's two joints, discriminated.

Trains an :class:`~pyro_vigen.models.ALI` on ``ring8`` with :func:`~pyro_vigen.infer.train`
of the ALI family. ALI takes the VAE's two joint distributions, the encoder's
:math:`q(x,z) = p_{data}(x)\\,q(z|x)` and the decoder's :math:`p(x,z) = p(z)\\,p(x|z)`,
labels their pairs y = 1 and y = 0, and runs the GAN's two phases on the pairs: the
discriminator :math:`D(x, z)` infers the label, and the generator phase
(:class:`~pyro_vigen.infer.GeneratorELBO` with ``rows="both"``) moves the encoder *and*
the decoder to fool it. At the optimal discriminator the two joints meet, so the encoder
inverts the decoder, though nothing asks a reconstruction to land on its own point:
ALI's reconstructions are known to be faithful in kind (the same mode) rather than in
place. See the docs' Theory page.

It trains with the GAN family's settings (:class:`~pyro_vigen.infer.GANTrainConfig`:
the classic mixed prior, one generator step), the learning rates decaying to zero over
the second half of the run, then :func:`~pyro_vigen.diagnostics.diagnose` measures the
samples and the reconstructions. The script prints modes captured (of 8) and the share
of reconstructions on their point's mode. ``--quick`` only checks that it runs; the
default (10,000 iterations) takes about two minutes::

    python examples/ali_ring.py --out runs/examples/ali_ring
"""

from __future__ import annotations

import argparse

from pyro_vigen.data import DataConfig
from pyro_vigen.diagnostics import diagnose
from pyro_vigen.infer import GANTrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run, for a smoke test")
    parser.add_argument("--out", default="runs/examples/ali_ring", help="the run directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    steps, num_points, num_samples = (100, 2000, 500) if args.quick else (10_000, 10_000, 5000)
    data = DataConfig(name="ring8", num_points=num_points)
    # The GAN's own settings: the discriminator phase unchanged, the generator phase
    # scoring both labels (the ALI family sets that). lr_decay=0.5: both learning
    # rates fall linearly to zero over the second half, as compare's runs do.
    settings = GANTrainConfig(
        steps=steps, seed=args.seed, lr_decay=0.5, num_saved_samples=num_samples
    )
    # overwrite=True: rerunning the example replaces the previous run in --out. One
    # torch thread, the library's default for its small nets (threads=N for more).
    train("ali", args.out, data, settings, overwrite=True, progress=False)

    # ALI has no density: diagnose() estimates both KLs by k-nearest neighbours, and
    # adds the reconstructions (x to its mean code to G(code)) and the aggregate
    # posterior against the prior.
    m = diagnose(args.out, num_samples=num_samples)
    print(f"modes captured: {m['modes_captured']} of {m['num_modes']}")
    print(f"hq_fraction: {m['hq_fraction']:.3f}")
    print(f"KL(data || model) forward: {m['kl_forward']:.3f} nats ({m['kl_method']})")
    print(f"KL(model || data) reverse: {m['kl_reverse']:.3f} nats ({m['kl_method']})")
    print(
        f"reconstruction: same mode {100 * m['recon_same_mode']:.1f}%, "
        f"relative error {m['recon_rel_error']:.3f}"
    )
    print(f"aggregate posterior: KL(q(z)||p(z)) = {m['latent_kl_reverse']:.3f} nats")
    print(f"wrote {args.out}/metrics.json")


if __name__ == "__main__":
    main()
