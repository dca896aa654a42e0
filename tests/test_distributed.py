"""Data-parallel training under torchrun: 2 ranks of gloo on this machine, no network."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_vigen.infer import BatchSampler
from pyro_vigen.storage import load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
CLI = [str(Path(sys.executable).with_name("pyro-vigen"))]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# A VAE run small enough for several launches, long enough to be killed mid-run.
VAE_RUN = [
    "train", "vae", "--data", "ring8", "--num-points", "2000", "--hidden", "16",
    "--batch-size", "64", "--steps", "400", "--checkpoint-every", "10", "--no-progress",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, nproc: int = 2, wait: bool = True, **launcher):
    """``torchrun --nproc-per-node nproc`` on a fresh localhost port, or as given."""
    flags = {"nproc-per-node": nproc, "master-addr": "127.0.0.1", "master-port": free_port()}
    flags.update(launcher)
    cmd = [*TORCHRUN, *(f"--{k}={v}" for k, v in flags.items()), *map(str, args)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


def model_state(run: Path) -> dict:
    return load_checkpoint(run / "checkpoint.pt")["model"]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_averaged_gradients_and_two_ranks_against_one_process(tmp_path):
    """The worker checks, on both ranks, that every phase's averaged gradient is the mean
    of the ranks' own (VAE; GAN discriminator and data-prior generator phases) and that
    the ranks' parameters stay identical. Here: 2 ranks of batch b end where one process
    with batch 2b, fed the same examples and the same noise, ends, to 1e-6."""
    out = torchrun(Path(worker.__file__), tmp_path)
    assert "rank 0: ok" in out and "rank 1: ok" in out
    x, b = worker.data(), worker.GLOBAL_BATCH // 2
    vae = worker.vae_model()
    optim = torch.optim.Adam(vae.parameters(), lr=1e-2)
    elbo = Trace_ELBO()
    sampler = BatchSampler(worker.N, worker.GLOBAL_BATCH, seed=2)
    for step in range(worker.STEPS):
        batch = x[sampler.next()]
        # The global batch's loss, its rows' noise drawn as each rank draws it.
        loss = 0.0
        for rank in range(2):
            pyro.set_rng_seed(1000 * step + rank)
            part = batch[rank * b : (rank + 1) * b]
            loss = loss + elbo.differentiable_loss(vae.model, vae.guide, part, num_data=worker.N)
        (loss / 2).backward()
        optim.step()
        optim.zero_grad()
    two_ranks = torch.load(tmp_path / "vae_2ranks.pt", weights_only=True)
    for key, value in vae.state_dict().items():
        assert torch.allclose(two_ranks[key], value, atol=1e-6), key


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 2-rank run of VAE_RUN, on one launcher."""
    run = tmp_path_factory.mktemp("dist") / "reference"
    torchrun(*CLI, *VAE_RUN, "--out", run)
    return run


def test_train_under_torchrun_writes_one_run(reference):
    config = json.loads((reference / "config.json").read_text())
    assert config["distributed"]["world_size"] == 2
    assert config["distributed"]["batch_size_per_rank"] == 32  # --batch-size is global
    rows = (reference / "history.csv").read_text().splitlines()
    assert len(rows) == 401 and rows[-1].startswith("400,")  # one writer, every step once
    state = load_checkpoint(reference / "checkpoint.pt")
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    assert not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])


def test_two_launchers_as_two_machines_equal_one_launcher(reference, tmp_path):
    """``--nnodes 2 --nproc-per-node 1``, rendezvous on localhost: two "machines"."""
    run, port = tmp_path / "nodes", free_port()
    nodes = [
        torchrun(
            *CLI, *VAE_RUN, "--out", run, nproc=1, wait=False, nnodes=2,
            **{"node-rank": rank, "master-port": port},
        )
        for rank in range(2)
    ]  # fmt: skip
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    assert_same_state(model_state(run), model_state(reference))


def _rank_pids(launcher_pid: int) -> dict[int, int]:
    """The worker processes of a torchrun launcher, by their RANK."""
    pids = {}
    for pid in subprocess.run(
        ["pgrep", "-P", str(launcher_pid)], capture_output=True, text=True
    ).stdout.split():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        rank = [e for e in environ if e.startswith(b"RANK=")]
        if rank:
            pids[int(rank[0].split(b"=")[1])] = int(pid)
    return pids


def test_killing_a_rank_keeps_the_checkpoint_and_resume_is_bit_identical(reference, tmp_path):
    run = tmp_path / "killed"
    launcher = torchrun(*CLI, *VAE_RUN, "--out", run, wait=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if load_checkpoint(run / "checkpoint.pt")["step"] >= 50:
                break
        except Exception:  # not written yet
            pass
        time.sleep(0.05)
    pids = _rank_pids(launcher.pid)
    assert set(pids) == {0, 1}
    os.kill(pids[1], signal.SIGKILL)
    launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    state = load_checkpoint(run / "checkpoint.pt")  # intact: written atomically
    assert 50 <= state["step"] < 400 and state["step"] % 10 == 0
    # A world size other than the checkpoint's is refused, in one line.
    alone = subprocess.run(
        [*CLI, *VAE_RUN, "--out", run, "--resume"], env=ENV, capture_output=True, text=True
    )
    assert alone.returncode == 2 and "resume it on 2 (torchrun" in alone.stderr
    assert len(alone.stderr.strip().splitlines()) == 1
    torchrun(*CLI, *VAE_RUN, "--out", run, "--resume")
    assert_same_state(model_state(run), model_state(reference))
    assert (run / "history.csv").read_text().count("\n") == 401


def test_compare_under_torchrun_writes_the_same_summary(tmp_path):
    args = [
        "compare", "--data", "ring8", "--num-points", "400", "--seeds", "1", "--steps", "10",
        "--vae-steps", "10", "--num-samples", "200", "--no-progress",
    ]  # fmt: skip
    out = torchrun(*CLI, *args, "--out", tmp_path / "ranks")
    assert out.count("report:") == 1  # rank 0 speaks
    plain = subprocess.run(
        [*CLI, *args, "--out", tmp_path / "plain"], env=ENV, capture_output=True, text=True
    )
    assert plain.returncode == 0, plain.stderr
    ranks, alone = (
        json.loads((tmp_path / d / "summary.json").read_text()) for d in ("ranks", "plain")
    )
    assert ranks == alone
