"""`make bench`: the project's benchmarks as one table (and JSON for the docs).

Each row: benchmark, ours, baseline, ratio, goal, pass/fail. Speed is reported as a
ratio to a baseline measured in the same run where a baseline exists; where the goal
is a wall-clock budget (the demo), the budget is the baseline.

    python benchmarks/run.py [--only NAME ...] [--json benchmarks/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _median_time(fn, repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_knn_kl() -> dict:
    """knn_kl both directions, 100,000 2-D points per side; goal under 0.5 s."""
    from pyro_vigen.diagnostics import knn_kl_both

    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(100_000, 2)), rng.normal(0.5, 1.5, size=(100_000, 2))
    t = _median_time(lambda: knn_kl_both(p, q), repeats=3)
    return {"ours": t, "baseline": 0.5, "unit": "s", "goal": "< 0.5 s", "ok": t < 0.5}


def bench_classifier_kl() -> dict:
    """classifier_kl both directions, 20,000 10-D points per side; goal under 10 s."""
    from pyro_vigen.diagnostics import classifier_kl_both

    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(20_000, 10)), rng.normal(0.3, 1.2, size=(20_000, 10))
    t = _median_time(lambda: classifier_kl_both(p, q), repeats=1, warmup=0)
    return {"ours": t, "baseline": 10.0, "unit": "s", "goal": "< 10 s", "ok": t < 10.0}


def bench_demo() -> dict:
    """`make demo`'s job (compare on ring8, 3 seeds), install excluded; goal under 3 minutes."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pyro_vigen.cli", "compare", "--data", "ring8", "--seeds", "3",
               "--out", f"{tmp}/demo", "--no-progress"]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        t = time.perf_counter() - t0
        summary = json.loads(Path(tmp, "demo", "summary.json").read_text())
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {
        "ours": t,
        "baseline": 180.0,
        "unit": "s",
        "goal": "< 180 s",
        "ok": t < 180.0,
        "peak_memory_gb_one_process": peak_gb,
        "summary": {k: {m: v["mean"] for m, v in s.items()} for k, s in summary.items()},
    }


def _per_step(step, steps: int = 50) -> float:
    """Median seconds per call of ``step`` over 5 timed blocks of ``steps`` calls."""

    def block():
        for _ in range(steps):
            step()

    return _median_time(block, repeats=5) / steps


def _vae_steps(data_dim: int, hidden: int, latent: int, batch: int) -> tuple[float, float]:
    """Seconds per step: the library's VAE with stock SVI, and the same nets hand-written."""
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from torch.nn import functional as F

    from pyro_vigen.models import VAE, VAEConfig

    x = torch.rand(batch, data_dim)
    vae = VAE(
        VAEConfig(data_shape=(data_dim,), hidden=(hidden,), latent_dim=latent, likelihood="normal")
    )
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    ours = _per_step(lambda: svi.step(x, num_data=10 * batch))

    # The same computation in plain PyTorch: reparameterised z, Normal likelihood with a
    # learned per-dimension scale, Monte Carlo KL (as Trace_ELBO), one Adam over all.
    twin = VAE(
        VAEConfig(data_shape=(data_dim,), hidden=(hidden,), latent_dim=latent, likelihood="normal")
    )
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)

    def hand_step():
        loc, raw = twin.encoder(x).chunk(2, -1)
        scale = F.softplus(raw) + 1e-5
        z = loc + scale * torch.randn_like(scale)
        log_px = (
            torch.distributions.Normal(twin.decoder(z), twin.log_scale.exp()).log_prob(x).sum(-1)
        )
        log_q = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        loss = -(log_px + log_pz - log_q).sum() * 10
        opt.zero_grad()
        loss.backward()
        opt.step()

    return ours, _per_step(hand_step)


def bench_vae_step_mnist_size() -> dict:
    """VAE step, 784-400-50 MLPs, batch 256: library (stock SVI) / hand-written PyTorch."""
    ours, base = _vae_steps(784, 400, 50, 256)
    return {
        "ours": ours,
        "baseline": base,
        "unit": "s/step",
        "goal": "ratio <= 1.10",
        "ok": ours / base <= 1.10,
    }


def bench_vae_step_toy_size() -> dict:
    """VAE step, 2-128-2 MLPs, batch 512: library (stock SVI) / hand-written PyTorch."""
    ours, base = _vae_steps(2, 128, 2, 512)
    return {
        "ours": ours,
        "baseline": base,
        "unit": "s/step",
        "goal": "ratio <= 1.3",
        "ok": ours / base <= 1.3,
    }


def bench_gan_iteration() -> dict:
    """One GAN iteration (both phases), ring8, 2-64-2 MLPs, batch 256: library / hand-written."""
    import pyro
    import torch
    from pyro.infer import SVI
    from torch.nn import functional as F

    from pyro_vigen.infer import DiscriminatorELBO, GeneratorELBO
    from pyro_vigen.models import GANConfig, VariationalGAN

    x = torch.randn(256, 2)
    config = GANConfig(data_shape=(2,), hidden=(64,))
    gan = VariationalGAN(config)
    adam = {"lr": 1e-3, "betas": (0.5, 0.999)}
    svi_d = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), DiscriminatorELBO())
    gen_elbo = GeneratorELBO()
    svi_g = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), gen_elbo)

    def ours_step():  # the iteration train_gan runs, with gen_steps=1
        svi_d.step(x)
        gen_elbo.snapshot(gan.model, x)
        svi_g.step(x)

    twin = VariationalGAN(config)
    opt_d = torch.optim.Adam(twin.discriminator.parameters(), **adam)
    opt_g = torch.optim.Adam(twin.generator.parameters(), **adam)

    def hand_step():
        with torch.no_grad():
            fake = twin.generator(torch.randn(256, 2))
        loss_d = F.softplus(-twin.logits(x)).mean() + F.softplus(twin.logits(fake)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-twin.logits(twin.generator(torch.randn(256, 2)))).mean()
        opt_g.zero_grad()
        loss_g.backward(inputs=list(twin.generator.parameters()))
        opt_g.step()

    ours, base = _per_step(ours_step), _per_step(hand_step)
    return {
        "ours": ours,
        "baseline": base,
        "unit": "s/iter",
        "goal": "ratio <= 1.3",
        "ok": ours / base <= 1.3,
    }


BENCHMARKS = {
    "vae_step_784": bench_vae_step_mnist_size,
    "vae_step_2": bench_vae_step_toy_size,
    "gan_iteration": bench_gan_iteration,
    "knn_kl": bench_knn_kl,
    "classifier_kl": bench_classifier_kl,
    "demo": bench_demo,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument(
        "--json", default=str(ROOT / "benchmarks" / "results.json"), help="where to write JSON"
    )
    args = parser.parse_args()
    results = {}
    for name in args.only or BENCHMARKS:
        results[name] = BENCHMARKS[name]()
        r = results[name]
        print(f"{name:<16} ours {r['ours']:8.4f} {r['unit']}  baseline {r['baseline']:8.4f}  "
              f"ratio {r['ours'] / r['baseline']:5.2f}  goal {r['goal']:<8} {'pass' if r['ok'] else 'FAIL'}", flush=True)  # fmt: skip
    machine = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    Path(args.json).write_text(
        json.dumps({"machine": machine, "results": results}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
