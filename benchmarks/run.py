"""`make bench`: the project's benchmarks as one table (and JSON for the docs).

Each row: benchmark, ours, stock Pyro, baseline, ratio, stock ratio, unit, goal,
pass/fail. Speed is reported as a ratio to a baseline measured in the same run where a
baseline exists (hand-written PyTorch for the training steps, beside the same model
written with stock Pyro); where the goal is a budget (the demo's time and memory), the
budget is the baseline.

    python benchmarks/run.py [--only NAME ...] [--json benchmarks/results.json]

With ``--only``, the rows run update an existing JSON file and keep its other rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyro
import torch

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
    return {"knn_kl": {"ours": t, "baseline": 0.5, "unit": "s", "goal": "< 0.5 s", "ok": t < 0.5}}


def bench_classifier_kl() -> dict:
    """classifier_kl both directions, 20,000 10-D points per side; goal under 10 s."""
    from pyro_vigen.diagnostics import classifier_kl_both

    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(20_000, 10)), rng.normal(0.3, 1.2, size=(20_000, 10))
    t = _median_time(lambda: classifier_kl_both(p, q), repeats=1, warmup=0)
    row = {"ours": t, "baseline": 10.0, "unit": "s", "goal": "< 10 s", "ok": t < 10.0}
    return {"classifier_kl": row}


def _kl_accuracy_cases() -> dict:
    """2-D and 5-D Gaussian pairs ``(mean0, cov0, mean1, cov1, rounding of P or None)``."""
    eye2, eye5 = np.eye(2), np.eye(5)
    return {
        "quantised": (np.zeros(2), eye2, np.array([0.4, -0.3]), np.array([[1.3, 0.2], [0.2, 0.9]]), 1),
        "ratio 1": (np.zeros(2), eye2, np.array([0.8, -0.5]), eye2, None),
        "ratio 1.5": (np.zeros(2), eye2, np.zeros(2), np.diag([1.5, 1.0]), None),
        "ratio 2": (np.zeros(2), eye2, np.zeros(2), np.diag([2.0, 1.0]), None),
        "ratio 3": (np.zeros(2), eye2, np.zeros(2), np.diag([3.0, 1.0]), None),
        "ratio 3 iso": (np.zeros(2), eye2, np.zeros(2), 3 * eye2, None),
        "5-D shift": (np.zeros(5), eye5, np.full(5, 0.3), eye5, None),
        "5-D ratio 2": (np.zeros(5), eye5, np.zeros(5), np.diag([2.0, 1.5, 1, 1, 1]), None),
    }  # fmt: skip


def bench_kl_accuracy(n: int = 20_000, seeds: int = 3) -> dict:
    """knn_kl's accuracy beside universal-divergence's (the plain Wang-Kulkarni-Verdu
    estimator, same k = 3) on the same samples, against the closed form: one row per case,
    the mean over ``seeds`` of the larger error of the two directions, in nats."""
    import warnings

    from universal_divergence import estimate

    from pyro_vigen.diagnostics import gaussian_kl, knn_kl_both

    rows = {}
    for case, (m0, c0, m1, c1, decimals) in _kl_accuracy_cases().items():
        exact = (gaussian_kl(m0, c0, m1, c1), gaussian_kl(m1, c1, m0, c0))
        ours, theirs, per_seed = [], [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            p, q = rng.multivariate_normal(m0, c0, size=n), rng.multivariate_normal(m1, c1, size=n)
            if decimals is not None:
                p = np.round(p, decimals)
            with warnings.catch_warnings():  # the dequantisation notice; divide by zero
                warnings.simplefilter("ignore")
                a = knn_kl_both(p, q)
                b = (estimate(p, q, k=3), estimate(q, p, k=3))
            b = np.asarray(b, dtype=float)  # inf or NaN where points repeat
            ours.append(float(np.abs(np.subtract(a, exact)).max()))
            theirs.append(float(np.where(np.isfinite(b), np.abs(b - exact), np.inf).max()))
            ud = [float(x) if np.isfinite(x) else None for x in b]
            per_seed.append({"ours": list(a), "universal_divergence": ud})
        err, base = float(np.mean(ours)), float(np.mean(theirs))
        rows[f"kl_acc {case}"] = {
            "ours": err,
            "baseline": base,
            "unit": "nats",
            "goal": "<= 0.03 or u-d",
            "ok": err <= max(0.03, base),
            "closed_form": list(exact),
            "estimates": per_seed,
        }
    return rows


def _tree_memory(root: int) -> int:
    """Bytes the process ``root`` and all its descendants hold now (Linux: summed PSS).

    PSS splits each shared page among the processes that map it, so the sum over the
    tree counts the libraries the spawned workers share once.
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we read
        children.setdefault(ppid, []).append(int(stat.parent.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1)) * 1024
    return total


def bench_demo() -> dict:
    """`make demo`'s job (compare on ring8, 3 seeds), install excluded: its time (goal under
    3 minutes) and the peak memory of its whole process tree (goal under 2 GB)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pyro_vigen.cli", "compare", "--data", "ring8", "--seeds", "3",
               "--out", f"{tmp}/demo", "--no-progress"]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        peak = 0
        while proc.poll() is None:
            if Path("/proc/self/smaps_rollup").exists():
                peak = max(peak, _tree_memory(proc.pid))
            time.sleep(0.1)
        t = time.perf_counter() - t0
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
        summary = json.loads(Path(tmp, "demo", "summary.json").read_text())
    if not peak:  # no /proc: the largest single process is a lower bound
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    peak_gb = peak / 2**30
    return {
        "demo": {
            "ours": t,
            "baseline": 180.0,
            "unit": "s",
            "goal": "< 180 s",
            "ok": t < 180.0,
            "summary": {
                k: {m: v["mean"] for m, v in s.items()}
                for k, s in summary["configurations"].items()
            },
            "claims": {
                c["key"]: f"{c['seeds_held']}/{c['seeds_checked']}" for c in summary["claims"]
            },
        },
        "demo_peak_memory": {
            "ours": peak_gb,
            "baseline": 2.0,
            "unit": "GB",
            "goal": "< 2 GB",
            "ok": peak_gb < 2.0,
        },
    }


def _per_step(contenders: dict, steps: int = 50, rounds: int = 7) -> dict[str, float]:
    """Median seconds per call of each contender, timed in turns.

    After one warm-up block each, the contenders take turns running blocks of ``steps``
    calls for ``rounds`` rounds, so a change in the machine's speed (another job, the
    clock) hits all of them alike rather than whichever ran at that moment.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(rounds + 1):
        for name, step in contenders.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            if round_:  # round 0 warms up (and compiles)
                times[name].append((time.perf_counter() - t0) / steps)
    return {name: float(np.median(t)) for name, t in times.items()}


def _in_training(step):
    """``step`` as the training loop runs it after a run's first step (see ``fit``)."""

    def run():
        with pyro.validation_enabled(False):
            step()

    return run


def _vae_steps(data_dim: int, hidden: int, latent: int, batch: int) -> dict:
    """Seconds per VAE step: the library's, stock Pyro's and hand-written PyTorch's.

    The same nets, batch, data scaling (``num_data`` = 10 batches), one particle and
    Adam over every parameter in all three.
    """
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from torch.nn import functional as F

    from pyro_vigen.infer import VAETrainConfig, vae_svi
    from pyro_vigen.models import VAE, VAEConfig

    pyro.clear_param_store()
    x, num_data = torch.rand(batch, data_dim), 10 * batch
    config = VAEConfig(
        data_shape=(data_dim,), hidden=(hidden,), latent_dim=latent, likelihood="normal"
    )

    # The library: the step the VAE family trains with, timed as fit runs it after a run's first step.
    svi = vae_svi(VAE(config), VAETrainConfig(lr=1e-3), x, num_data=num_data)

    # Stock Pyro, as its VAE tutorials write it: pyro.module per net, a subsampled plate,
    # SVI with pyro.optim.Adam and Trace_ELBO, Pyro's default validation.
    nets = VAE(config)

    def model(x):
        pyro.module("decoder", nets.decoder)
        scale = pyro.param("log_scale", nets.log_scale).exp()
        with pyro.plate("data", num_data, subsample=torch.arange(len(x))):
            zeros = x.new_zeros(len(x), latent)
            z = pyro.sample("z", dist.Normal(zeros, torch.ones_like(zeros)).to_event(1))
            pyro.sample("x", dist.Normal(nets.decoder(z), scale).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", nets.encoder)
        with pyro.plate("data", num_data, subsample=torch.arange(len(x))):
            loc, raw = nets.encoder(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, F.softplus(raw) + 1e-5).to_event(1))

    stock_svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())

    # Hand-written PyTorch: reparameterised z, Normal likelihood with a learned
    # per-dimension scale, Monte Carlo KL (as Trace_ELBO), one Adam, no argument checks.
    twin = VAE(config)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    normal = torch.distributions.Normal

    def hand_step():
        loc, raw = twin.encoder(x).chunk(2, -1)
        scale = F.softplus(raw) + 1e-5
        z = loc + scale * torch.randn_like(scale)
        px = normal(twin.decoder(z), twin.log_scale.exp(), validate_args=False)
        log_q = normal(loc, scale, validate_args=False).log_prob(z).sum(-1)
        log_pz = normal(0.0, 1.0, validate_args=False).log_prob(z).sum(-1)
        loss = -(px.log_prob(x).sum(-1) + log_pz - log_q).sum() * (num_data / batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t = _per_step(
        {
            "ours": _in_training(lambda: svi.step(x, num_data=num_data)),
            "stock_pyro": lambda: stock_svi.step(x),
            "baseline": hand_step,
        }
    )
    return {**t, "unit": "s/step"}


def bench_vae_step_mnist_size() -> dict:
    """VAE step, 784-400-50 MLPs, batch 256: library / hand-written PyTorch."""
    r = _vae_steps(784, 400, 50, 256)
    return {"vae_step_784": {**r, "goal": "ratio <= 1.10", "ok": r["ours"] / r["baseline"] <= 1.10}}


def bench_vae_step_toy_size() -> dict:
    """VAE step, 2-128-2 MLPs, batch 512: library / hand-written PyTorch."""
    r = _vae_steps(2, 128, 2, 512)
    return {"vae_step_2": {**r, "goal": "ratio <= 1.3", "ok": r["ours"] / r["baseline"] <= 1.3}}


def _gan_iterations(config, x: torch.Tensor) -> dict[str, float]:
    """Seconds per GAN iteration (classic GAN, one step per phase) on the batch ``x``:
    the library's, stock Pyro's and hand-written PyTorch's, the same nets in all three."""
    from pyro.infer import SVI
    from torch.nn import functional as F

    from pyro_vigen.infer import DiscriminatorELBO, GANIteration, GANTrainConfig, GeneratorELBO
    from pyro_vigen.models import VariationalGAN

    pyro.clear_param_store()
    adam = {"lr": 1e-3, "betas": (0.5, 0.999)}
    n = x.shape[0]

    # The library: the iteration the GAN family runs (classic GAN, one step per phase), timed as
    # fit runs it after a run's first step.
    iteration = GANIteration(
        VariationalGAN(config), GANTrainConfig(lr_disc=adam["lr"], lr_gen=adam["lr"])
    )

    # Stock Pyro, the straightforward way: the same model, guide and objectives under two
    # pyro.infer.SVI with pyro.optim.Adam, Pyro's default validation.
    gan = VariationalGAN(config)
    svi_d = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), DiscriminatorELBO())
    svi_g = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), GeneratorELBO())

    def stock_step():
        svi_d.step(x)
        svi_g.step(x)

    # Hand-written PyTorch: a generator pass without gradient for the discriminator's
    # step, one with gradient for the generator's (as the library's two phases).
    twin = VariationalGAN(config)
    opt_d = torch.optim.Adam(twin.discriminator.parameters(), **adam)
    opt_g = torch.optim.Adam(twin.generator.parameters(), **adam)

    def hand_step():
        z = torch.randn(n, config.noise_dim)
        with torch.no_grad():
            fake = twin.generator(z)
        logits = twin.logits(torch.cat([x, fake]))
        loss_d = F.softplus(-logits[:n]).mean() + F.softplus(logits[n:]).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-twin.logits(twin.generator(z))).mean()
        opt_g.zero_grad()
        loss_g.backward(inputs=list(twin.generator.parameters()))
        opt_g.step()

    return _per_step(
        {
            "ours": _in_training(lambda: iteration(lambda: x)),
            "stock_pyro": stock_step,
            "baseline": hand_step,
        }
    )


def bench_gan_iteration() -> dict:
    """One GAN iteration (both phases), ring8, 2-64-2 MLPs, batch 256: library / hand-written."""
    from pyro_vigen.models import GANConfig

    t = _gan_iterations(GANConfig(data_shape=(2,), hidden=(64,)), torch.randn(256, 2))
    ok = t["ours"] / t["baseline"] <= 1.3
    return {"gan_iteration": {**t, "unit": "s/iter", "goal": "ratio <= 1.3", "ok": ok}}


def bench_gan_image_iteration() -> dict:
    """One GAN iteration on 28x28 images: the DCGAN nets, batch 64; goal ratio <= 1.10."""
    from pyro_vigen.models import GANConfig

    torch.manual_seed(0)
    t = _gan_iterations(GANConfig(data_shape=(1, 28, 28)), torch.rand(64, 1, 28, 28))
    ok = t["ours"] / t["baseline"] <= 1.10
    return {"gan_image_iter": {**t, "unit": "s/iter", "goal": "ratio <= 1.10", "ok": ok}}


#: The timed run of the ``neighbours`` rows, at the library's default threads.
_TIMED = ["train", "gan", "--data", "ring8", "--steps", "1500"]
#: The neighbours it is timed beside, each at the library's default threads, started
#: first with more steps than the measurement lasts and killed after it.
_NEIGHBOURS = {
    "beside_toy_gan": ["train", "gan", "--data", "ring8", "--steps", "1000000"],
    "beside_digits_vae": ["train", "vae", "--data", "digits", "--steps", "1000000"],
}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyro_vigen.cli", *args, "--no-progress"]


def _loop_time(out: Path) -> float:
    """Seconds of a finished run's training loop: the last ``wall_time`` of its
    ``history.csv`` (start-up, data loading and saving samples excluded)."""
    last = (out / "history.csv").read_text().strip().splitlines()[-1]
    return float(last.split(",")[-1])


def _training_time(out: Path) -> float:
    """:func:`_loop_time` of one ``pyro-vigen train gan`` run of :data:`_TIMED`."""
    cmd = _cli(*_TIMED, "--out", str(out))
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return _loop_time(out)


def bench_neighbours(repeats: int = 3) -> dict:
    """A ring8 GAN training (1,500 iterations) at the library's default threads, timed
    alone and beside one other training (a toy GAN, a digits VAE), each at the library's
    defaults: its time beside each neighbour over its time alone (medians of ``repeats``
    runs). Goal at most 2.2; at torch's default two threads it took 2.9x to 3.7x."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = (Path(tmp, f"timed{i}") for i in itertools.count())
        load = os.getloadavg()[0]
        alone = float(np.median([_training_time(next(runs)) for _ in range(repeats)]))
        rows = {}
        for name, neighbour in _NEIGHBOURS.items():
            nb_out = Path(tmp, name)
            proc = subprocess.Popen(
                _cli(*neighbour, "--out", str(nb_out)), cwd=ROOT, stdout=subprocess.DEVNULL
            )
            try:
                # Timing starts once the neighbour trains: its first checkpoint (500 steps).
                while not (nb_out / "checkpoint.pt").exists():
                    if proc.poll() is not None:
                        raise subprocess.CalledProcessError(proc.returncode, neighbour)
                    time.sleep(0.2)
                times = [_training_time(next(runs)) for _ in range(repeats)]
                if proc.poll() is not None:
                    raise RuntimeError(f"the neighbour {name} stopped before the measurement ended")
            finally:
                proc.kill()
                proc.wait()
            beside = float(np.median(times))
            rows[name] = {
                "ours": beside,
                "baseline": alone,
                "unit": "s",
                "goal": "ratio <= 2.2",
                "ok": beside / alone <= 2.2,
                "timed": "pyro-vigen " + " ".join(_TIMED) + " (history.csv wall_time)",
                "neighbour": "pyro-vigen " + " ".join(neighbour[:-2]),
                "load_avg_before": round(load, 2),
            }
    return rows


#: The conv VAE run of the ``distributed`` rows: 28x28 digits, a global batch of 128.
_CONV_VAE = ["train", "vae", "--data", "mnist5k", "--steps", "300", "--batch-size", "128"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_distributed(repeats: int = 3) -> dict:
    """A conv VAE's training loop (28x28 mnist5k, 300 steps, global batch 128) on 2 ranks
    of ``torchrun`` (gloo, one thread each, 64 images per rank) against 1 process (one
    thread): time over time, ideal 0.5 (medians of ``repeats`` runs; the loop's
    ``wall_time``, start-up excluded). Goal at most 0.75 (scaling efficiency, 1 / (2
    ratio), of two thirds or more) on 2 idle cores."""
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = (Path(tmp, f"run{i}") for i in itertools.count())

        def timed(ranks: int) -> float:
            out = next(runs)
            launcher = [*launch, f"--master-port={free_port()}"] if ranks > 1 else [sys.executable]
            subprocess.run(
                [*launcher, "-m", "pyro_vigen.cli", *_CONV_VAE, "--out", str(out), "--no-progress"],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            return _loop_time(out)

        alone = float(np.median([timed(1) for _ in range(repeats)]))
        ranks = float(np.median([timed(2) for _ in range(repeats)]))
    return {
        "ranks_2_conv_vae": {
            "ours": ranks,
            "baseline": alone,
            "unit": "s",
            "goal": "ratio <= 0.75",
            "ok": ranks / alone <= 0.75,
            "timed": "pyro-vigen " + " ".join(_CONV_VAE) + " (history.csv wall_time)",
            "scaling_efficiency": round(alone / (2 * ranks), 3),
        }
    }


BENCHMARKS = {
    "vae_step_784": bench_vae_step_mnist_size,
    "vae_step_2": bench_vae_step_toy_size,
    "gan_iteration": bench_gan_iteration,
    "gan_image_iteration": bench_gan_image_iteration,
    "knn_kl": bench_knn_kl,
    "classifier_kl": bench_classifier_kl,
    "kl_accuracy": bench_kl_accuracy,
    "demo": bench_demo,
    "neighbours": bench_neighbours,
    "distributed": bench_distributed,
}


def _cell(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument(
        "--json", default=str(ROOT / "benchmarks" / "results.json"), help="where to write JSON"
    )
    args = parser.parse_args()
    results = {}
    print(f"{'benchmark':<18} {'ours':>9} {'stock Pyro':>10} {'baseline':>9} {'ratio':>6} "
          f"{'stock':>6}  unit    goal           result")  # fmt: skip
    for name in args.only or BENCHMARKS:
        for row_name, r in BENCHMARKS[name]().items():
            results[row_name] = r
            stock = r.get("stock_pyro")
            print(f"{row_name:<18} {r['ours']:9.4f} {_cell(stock, '10.4f'):>10} {r['baseline']:9.4f} "
                  f"{r['ours'] / r['baseline']:6.2f} {_cell(stock and stock / r['baseline'], '6.2f'):>6}  "
                  f"{r['unit']:<7} {r['goal']:<14} {'pass' if r['ok'] else 'FAIL'}", flush=True)  # fmt: skip
    machine = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }
    path = Path(args.json)
    if args.only and path.exists():
        # A partial run updates its rows and keeps the others.
        results = {**json.loads(path.read_text()).get("results", {}), **results}
    path.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
