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


BENCHMARKS = {"knn_kl": bench_knn_kl, "classifier_kl": bench_classifier_kl, "demo": bench_demo}


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
        print(f"{name:<16} ours {r['ours']:8.3f} {r['unit']}  baseline {r['baseline']:8.3f}  "
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
