"""Stacked digits, 1,000 modes: the stacked-MNIST protocol run with the library.

The mode-collapse measure of Metz et al., "Unrolled Generative Adversarial Networks",
ICLR 2017, VEEGAN (Srivastava et al., NeurIPS 2017) and PacGAN (Lin et al., NeurIPS 2018,
Tables 2 and 3), on ``stacked_digits``: 50,000 images of three scikit-learn digits
(8x8) stacked as channels, one of 1,000 label triples each (see
:mod:`pyro_vigen.data.stacked`). Each run is diagnosed on 26,000 samples: a digit
labeller trained on the single digits labels every channel, and the run's "modes" is
the number of the 1,000 triples that at least one sample falls to, its "KL" the KL
between the samples' histogram over the triples and the uniform distribution, in nats
(``modes_captured`` and ``mode_kl`` of ``pyro-vigen diagnose``, see
:mod:`pyro_vigen.diagnostics.stacked`).

Rows, each trained with the library's public API and its defaults for image data (the
nets of :class:`~pyro_vigen.models.GANConfig` and :class:`~pyro_vigen.models.VAEConfig`,
the optimisers and batch of :class:`~pyro_vigen.infer.GANTrainConfig` and
:class:`~pyro_vigen.infer.VAETrainConfig`), all for the same number of steps: the VAE;
the classic GAN; the data prior (``prior="data"``, 2 generator steps); packing 2 and 4
(PacGAN2, PacGAN4); the data prior with packing 2. Each row: mean, sd and standard error
over the seeds, printed beside published rows on stacked MNIST, which is other data
(28x28 MNIST digits, other nets) under the same protocol: a comparison of the
protocol's scale, not of numbers.

Not a test, and not cheap: a run trains ``--steps`` iterations on one CPU thread and
its diagnosis labels 78,000 channel images. A run interrupted is resumed from its
checkpoint by the next call with the same ``--out``; a finished and diagnosed run is
reused::

    python benchmarks/stacked_modes.py --steps 10000 --seeds 3 \\
        --out runs/bench/stacked --json benchmarks/stacked_modes.json
    python benchmarks/stacked_modes.py --steps 20 --seeds 1 --out /tmp/stacked \\
        --json /tmp/stacked_modes.json     # a smoke test
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from protocol_runs import (
    add_output_arguments,
    fmt,
    row_summary,
    run_budget,
    run_jobs,
    train_and_diagnose,
    write_report,
)

from pyro_vigen.data import DataConfig
from pyro_vigen.diagnostics.stacked import PROTOCOL_SAMPLES
from pyro_vigen.infer import GANTrainConfig, VAETrainConfig
from pyro_vigen.models import GANConfig, VAEConfig

ROOT = Path(__file__).resolve().parent.parent
DATA = "stacked_digits"
DEFAULT_STEPS = 10_000
DEFAULT_SEEDS = 3
CHECKPOINT_EVERY = 1000  # fixed, so a run resumes under a larger --steps

PROTOCOL = {
    "papers": [
        'Metz, Poole, Pfau and Sohl-Dickstein, "Unrolled Generative Adversarial '
        'Networks", ICLR 2017',
        'Srivastava, Valkov, Russell, Gutmann and Sutton, "VEEGAN: Reducing mode collapse '
        'in GANs using implicit variational learning", NeurIPS 2017',
        'Lin, Khetan, Fanti and Oh, "PacGAN: The power of two samples in generative '
        'adversarial networks", NeurIPS 2018, Tables 2 and 3',
    ],
    "reference_code": "https://github.com/fjxmlzn/PacGAN, stacked_MNIST_experiments/",
    "data": "stacked_digits: 50,000 stacks of 3 scikit-learn digits (8x8) as channels, "
    "drawn uniformly with DataConfig seed 1234, all used for training (no hold-out)",
    "num_modes": 1000,
    "evaluation_samples": PROTOCOL_SAMPLES,
    "labeller": "small conv net per channel, trained on 80% of the 1,797 digits, "
    "accuracy measured on the other 20% (pyro_vigen.diagnostics.digit_labeller)",
    "modes": "number of the 1,000 label triples that at least one sample falls to",
    "kl": "KL(histogram of the samples over the 1,000 triples || uniform), nats",
    "models": "the library's defaults for image data (GANConfig, VAEConfig, "
    "GANTrainConfig, VAETrainConfig), the same number of steps for every row",
}

#: Where these runs differ from the published experiments.
DEVIATIONS = [
    "Data: stacks of scikit-learn's 8x8 digits (1,797 source images), not of 28x28 MNIST "
    "(70,000 in PacGAN's reference code); 50,000 training points, not 128,000.",
    "Labeller: a conv net trained on 1,438 digits (its held-out accuracy is in the "
    "JSON's labeller_accuracy), not an MNIST classifier trained on 60,000 digits (about 99%).",
    "Models: the library's default image nets and optimisers, not the DCGAN "
    "architectures and optimisers of the papers; the budget is this file's steps.",
]

#: Published rows on stacked MNIST: (label, modes, KL, source).
PUBLISHED = [
    ("DCGAN", 99.0, 3.40, "Srivastava et al. 2017 (VEEGAN), Table 2; also PacGAN Table 2"),
    (
        "DCGAN",
        78.9,
        4.50,
        "Lin et al. 2018 (PacGAN), Table 3: unrolled-GAN architecture, discriminator "
        "1/4 of the generator",
    ),
    (
        "VAE",
        341.0,
        2.41,
        'Elfeki, Couprie, Riviere and Elhoseiny, "GDPP: Learning Diverse Generations '
        'Using Determinantal Point Processes", ICML 2019',
    ),
    ("PacDCGAN2", 1000.0, 0.06, "Lin et al. 2018 (PacGAN), Table 2"),
]
METRIC_KEYS = {"modes": "modes_captured", "kl": "mode_kl"}

#: Our rows: label, model kind, pack, GANTrainConfig settings.
ROWS = {
    "vae": ("VAE", "vae", 1, {}),
    "gan": ("GAN", "gan", 1, {"prior": "mixed", "gen_steps": 1}),
    "data_prior": ("data prior, 2 generator steps", "gan", 1, {"prior": "data", "gen_steps": 2}),
    "pacgan2": ("PacGAN2", "gan", 2, {"prior": "mixed", "gen_steps": 1}),
    "pacgan4": ("PacGAN4", "gan", 4, {"prior": "mixed", "gen_steps": 1}),
    "data_prior_pacgan2": (
        "data prior + PacGAN2, 2 generator steps",
        "gan",
        2,
        {"prior": "data", "gen_steps": 2},
    ),
}


def data_config() -> DataConfig:
    """``stacked_digits`` with the default data seed, every point for training."""
    return DataConfig(DATA, holdout=0.0)


def run_one(row: str, seed: int, steps: int, num_samples: int, out: str, device: str) -> dict:
    """Train one run (resuming a partial one) and diagnose it; in a worker process.

    :param str row: a key of :data:`ROWS`.
    :param int seed: the run's seed (training and diagnosis).
    :param int steps: training iterations.
    :param int num_samples: samples of the diagnosis.
    :param str out: the run directory.
    :param str device: the torch device.
    :returns: the run's modes, KL, labeller accuracy and times, or its error.
    """
    _, kind, pack, settings = ROWS[row]
    common = dict(steps=steps, seed=seed, checkpoint_every=CHECKPOINT_EVERY, device=device)
    if kind == "vae":
        config, model = VAETrainConfig(**common), VAEConfig()
    else:
        config, model = GANTrainConfig(**common, **settings), GANConfig(pack=pack)
    return train_and_diagnose(
        Path(out),
        {"row": row, "seed": seed},
        kind,
        data_config(),
        config,
        model,
        num_samples=num_samples,
        seed=seed,
        metric_keys={**METRIC_KEYS, "labeller_accuracy": "labeller_accuracy"},
    )


def summarise(results: list[dict], rows: list[str]) -> dict:
    """Per row: settings, per-seed values, and mean/sd/se of modes and KL."""
    return {
        row: row_summary(*ROWS[row], [r for r in results if r["row"] == row], METRIC_KEYS)
        for row in rows
    }


def _published_json() -> dict:
    return {
        "data": "stacked MNIST (28x28 MNIST digits, 1,000 modes), 26,000 samples",
        "note": "other data and nets, the same protocol: for the scale, not a comparison",
        "rows": [
            {"label": label, "modes": modes, "kl": kl, "source": source}
            for label, modes, kl, source in PUBLISHED
        ],
    }


def print_table(ours: dict) -> None:
    print("\nstacked_digits: ours mean +- sd over seeds; published: stacked MNIST")
    print(f"{'row':<42} {'n':>3} {'modes (of 1000)':>17} {'KL (nats)':>13}")
    for row in ours.values():
        failed = f"  (failed seeds {row['failed']})" if row["failed"] else ""
        print(
            f"{row['label']:<42} {row['modes']['n']:>3} {fmt(row['modes'], '.1f'):>17} "
            f"{fmt(row['kl'], '.2f'):>13}{failed}"
        )
    for label, modes, kl, source in PUBLISHED:
        print(f"{'published ' + label:<42} {'':>3} {modes:>17.1f} {kl:>13.2f}  {source}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training iterations")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds 0..K-1 per row")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument(
        "--num-samples",
        type=int,
        default=PROTOCOL_SAMPLES,
        help=f"samples of each diagnosis (default {PROTOCOL_SAMPLES:,}, the protocol's)",
    )
    add_output_arguments(parser, "runs/bench/stacked", ROOT / "benchmarks" / "stacked_modes.json")
    args = parser.parse_args()
    for name in ("steps", "seeds", "num_samples", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    jobs = [
        (
            row,
            seed,
            args.steps,
            args.num_samples,
            str(Path(args.out) / row / f"seed{seed}"),
            args.device,
        )
        for row in args.rows
        for seed in range(args.seeds)
    ]
    t0 = time.perf_counter()
    results = run_jobs(
        run_one,
        jobs,
        args.workers,
        lambda r: f"{r['row']:<20} seed {r['seed']}",
        lambda r: (
            f"{r['modes']} modes, KL {r['kl']:.3f} "
            f"(trained {r['train_s']:.0f} s, this call {r['this_call_s']:.0f} s)"
        ),
    )
    wall = time.perf_counter() - t0
    ours = summarise(results, args.rows)
    print_table(ours)
    # One cached labeller serves every run: one value, unless its cache was replaced.
    accuracies = sorted({r["labeller_accuracy"] for r in results if "labeller_accuracy" in r})
    report = {
        "benchmark": "stacked_modes",
        "command": "python benchmarks/stacked_modes.py "
        + f"--steps {args.steps} --seeds {args.seeds} --rows {' '.join(args.rows)} "
        + f"--num-samples {args.num_samples} --out {args.out}",
        "protocol": PROTOCOL,
        "labeller_accuracy": accuracies,
        "deviations": DEVIATIONS,
        "budget": {
            "steps": args.steps,
            "seeds": args.seeds,
            "rows": args.rows,
            "num_samples": args.num_samples,
            **run_budget(wall, results, args.device, args.workers),
        },
        "ours": ours,
        "published": _published_json(),
    }
    write_report(args.json, report, wall)


if __name__ == "__main__":
    main()
