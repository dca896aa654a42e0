"""Every model family on ring8 and grid25 at the main job's budget, beside published ALI rows.

Runs ``pyro-vigen compare --families vae,gan,iwgan,aae,ali`` (the main job's settings:
its steps, learning-rate decay, generator steps and data-prior weight; see
:func:`pyro_vigen.report.compare.configurations`) on each dataset and prints one row per
configuration: both KL directions between the data and the samples (k-NN, or importance
sampling for the VAE), modes captured, the high-quality fraction (within 3 std of a
mode), the mode KL (the histogram of the high-quality samples over the modes against the
uniform, PacGAN's "reverse KL"), and for the families with an encoder the share of
reconstructions on the input's mode and :math:`KL(q(z)\\,\\|\\,p(z))`, the aggregate
posterior against the prior. Each cell: mean and sd over the seeds.

Published ALI rows, for scale only (other nets and budgets, the same data and
measures): PacGAN (Lin et al., NeurIPS 2018), Table 1's protocol, ring 6.6 modes / 97.6%
high quality / reverse KL 0.36, grid 24.1 / 95.7% / 0.14; VEEGAN's setup (Srivastava et
al., NeurIPS 2017), ring 2.8 / 0.13%, grid 15.8 / 1.6%.

Not a test, and not cheap (about an hour on 2 cores); rerunning skips finished runs::

    python benchmarks/families.py --out runs/bench/families --json benchmarks/families.json
    python benchmarks/families.py --steps 50 --vae-steps 50 --seeds 1 --out /tmp/fam \\
        --json /tmp/families.json      # a smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pyro_vigen.data import DataConfig
from pyro_vigen.report.compare import FAMILY_GROUPS, compare

#: metric -> column heading, as printed.
COLUMNS = {
    "kl_forward": "KL(d||m)",
    "kl_reverse": "KL(m||d)",
    "modes_captured": "modes",
    "hq_fraction": "HQ",
    "mode_kl": "mode KL",
    "recon_same_mode": "rec. mode",
    "latent_kl_reverse": "KL(q(z)||p(z))",
}
PUBLISHED = {
    "ring8": {
        "ALI, PacGAN Table 1": {"modes_captured": 6.6, "hq_fraction": 0.976, "mode_kl": 0.36},
        "ALI, VEEGAN": {"modes_captured": 2.8, "hq_fraction": 0.0013},
    },
    "grid25": {
        "ALI, PacGAN Table 1": {"modes_captured": 24.1, "hq_fraction": 0.957, "mode_kl": 0.14},
        "ALI, VEEGAN": {"modes_captured": 15.8, "hq_fraction": 0.016},
    },
}


def table(rows: dict[str, dict]) -> str:
    """Markdown: one row per configuration, ``mean ± sd`` per column."""
    lines = ["| configuration | " + " | ".join(COLUMNS.values()) + " |"]
    lines.append("|---" * (len(COLUMNS) + 1) + "|")
    for label, metrics in rows.items():
        cells = []
        for key in COLUMNS:
            cell = metrics.get(key)
            if cell is None:
                cells.append("")
            elif isinstance(cell, dict):
                cells.append(f"{cell['mean']:.3g} ± {cell['sd']:.2g}")
            else:
                cells.append(f"{cell:.3g}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["ring8", "grid25"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="default: compare's")
    parser.add_argument("--vae-steps", type=int, default=None, help="default: compare's")
    parser.add_argument("--out", default="runs/bench/families")
    parser.add_argument("--json", default="benchmarks/families.json")
    args = parser.parse_args()

    results = {}
    for name in args.data:
        start = time.perf_counter()
        out = Path(args.out, name)
        compare(
            DataConfig(name),
            args.seeds,
            out,
            steps=args.steps,
            vae_steps=args.vae_steps,
            families=FAMILY_GROUPS,
            progress=False,
        )
        summary = json.loads((out / "summary.json").read_text())
        rows = {
            label: {k: v for k, v in metrics.items() if k in COLUMNS}
            for label, metrics in summary["configurations"].items()
        }
        results[name] = {"seeds": args.seeds, "rows": rows, "published": PUBLISHED[name]}
        print(f"\n{name} ({args.seeds} seeds, {time.perf_counter() - start:.0f} s)")
        print(table({**rows, **PUBLISHED[name]}))
    Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
