"""The diagnostics on plain arrays from anywhere: samples you saved from another framework.

The estimators in :mod:`pyro_vigen.diagnostics` take NumPy arrays (or tensors) of
samples; they do not need a model from this library. Here two fake "models" stand in
for samples saved by, say, a JAX or TensorFlow script as ``.npy`` files:

- ``covering.npy``: mass on all 8 modes of the ring but smeared around them (a
  VAE-like model);
- ``seeking.npy``: sharp points on only 3 of the 8 modes (a collapsed GAN).

They are saved, loaded back as any user's files would be, and compared with draws of
the data distribution (``ring8``) by

- :func:`~pyro_vigen.diagnostics.kl_directions`: both KL directions from samples alone
  (k-nearest-neighbour estimates in 2-D);
- :func:`~pyro_vigen.diagnostics.knn_kl`: one direction at a time, with your own ``k``;
- :func:`~pyro_vigen.diagnostics.mode_coverage`: modes captured and the fraction of
  high-quality samples, given the modes' centres and width.

Expect the covering set to have the lower forward :math:`KL(p_{data}\\|q)` and the
seeking set the lower reverse :math:`KL(q\\|p_{data})` with far fewer modes. (Sample-based
estimates are biased: the forward KL of a set missing modes is large in truth, far larger
than its k-NN estimate, which sees only the distance to the nearest captured mode.) ::

    python examples/diagnose_your_samples.py --out runs/examples/diagnose_your_samples
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pyro_vigen.data import ring8
from pyro_vigen.diagnostics import kl_directions, knn_kl, mode_coverage


def fake_samples(n: int, rng: np.random.Generator, centers: np.ndarray, out: Path) -> None:
    """Write two sample sets as .npy, as another framework might have."""
    # Mode covering: every mode, but with 5x the data's spread.
    idx = rng.integers(len(centers), size=n)
    covering = centers[idx] + 0.05 * rng.standard_normal((n, 2))
    # Mode seeking: three modes only, as sharp as the data.
    idx = rng.choice([0, 3, 5], size=n)
    seeking = centers[idx] + 0.01 * rng.standard_normal((n, 2))
    np.save(out / "covering.npy", covering.astype(np.float32))
    np.save(out / "seeking.npy", seeking.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke test")
    parser.add_argument("--out", default="runs/examples/diagnose_your_samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = 2000 if args.quick else 10_000

    mixture = ring8()
    centers = mixture.centers.numpy()
    rng = np.random.default_rng(args.seed)
    fake_samples(n, rng, centers, out)

    # Draws of the data distribution to compare with (here we know it exactly).
    idx = rng.integers(len(centers), size=n)
    data = centers[idx] + mixture.std * rng.standard_normal((n, 2))

    results = {}
    for name in ("covering", "seeking"):
        samples = np.load(out / f"{name}.npy")  # what you would do with your own files
        kl = kl_directions(data, samples)  # "auto": k-NN on 2-D samples
        forward_k10 = knn_kl(data, samples, k=10)  # the forward direction alone, k = 10
        cov = mode_coverage(samples, centers, mixture.std)
        results[name] = {**kl, "knn_kl_forward_k10": forward_k10, **cov}
        print(
            f"{name}: KL forward {kl['forward']:.2f}, reverse {kl['reverse']:.2f} "
            f"({kl['method']}); knn_kl(k=10) forward {forward_k10:.2f}; "
            f"modes captured {cov['modes_captured']} of {cov['num_modes']}, "
            f"hq_fraction {cov['hq_fraction']:.3f}"
        )
    (out / "diagnostics.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'diagnostics.json'}")


if __name__ == "__main__":
    main()
