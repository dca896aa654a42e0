"""Smoke tests: every script in examples/ runs with --quick and delivers what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# script -> (files it writes under --out, a line its output must contain)
CASES = {
    "kl_directions.py": (["kl_directions.png"], "reverse KL fit (gradient descent): mean="),
    "vae_ring.py": (["metrics.json", "checkpoint.pt"], "modes captured:"),
    "gan_ring.py": (["prior_mixed/metrics.json", "prior_data/metrics.json"], "prior=data: modes captured"),
    "aae_ring.py": (["metrics.json", "checkpoint.pt"], "aggregate posterior: KL(q(z)||p(z)) ="),
    "ali_ring.py": (["metrics.json", "checkpoint.pt"], "reconstruction: same mode"),
    "iwgan_ring.py": (
        ["nonsaturating/metrics.json", "importance_weighted/metrics.json"],
        "importance_weighted: modes captured",
    ),
    "vae_digits.py": (["samples.png", "reconstructions.png"], "wrote"),
    "reuse_model_guide.py": (["models.pt", "summary.json"], "gan: modes captured"),
    "diagnose_your_samples.py": (
        ["covering.npy", "seeking.npy", "diagnostics.json"],
        "seeking: KL forward",
    ),
}  # fmt: skip


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs_quick(script, tmp_path):
    files, line = CASES[script]
    out = tmp_path / "out"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # nothing may be written outside --out
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert line in proc.stdout, proc.stdout
    for name in files:
        assert (out / name).is_file(), f"{script} did not write {name}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
