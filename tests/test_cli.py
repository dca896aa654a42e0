"""The command line: what a user types, and what they see when the input is bad."""

import re
import subprocess
import sys

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_vigen.cli import main
from pyro_vigen.data import DataConfig, load_dataset
from pyro_vigen.infer import load_run
from pyro_vigen.infer.vae_training import model_data
from pyro_vigen.models import VAE, VAEConfig


def run_cli(*args):
    """Run the command line in a new process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pyro_vigen.cli", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def cli(capsys):
    """Run the command line in this process (fast); returns what a shell would see."""

    def call(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's own exits
            code = e.code
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return call


def assert_one_line_error(result, pattern):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_help_for_every_command():
    for args in (
        ["--help"],
        ["datasets", "--help"],
        ["train", "--help"],
        ["train", "vae", "--help"],
    ):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 0


def test_datasets_lists_names_and_sources(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("ring8", "grid25", "digits", "mnist", "mnist5k"):
        assert name in out
    assert "scikit-learn" in out and "torchvision" in out


def test_bernoulli_vae_on_digits_improves_the_held_out_elbo(tmp_path):
    out = tmp_path / "digits"
    result = run_cli(
        "train", "vae", "--data", "digits", "--steps", "150", "--seed", "0", "--out", str(out),
        "--latent-dim", "8", "--lr", "3e-3", "--batch-size", "128", "--no-progress",
        "--likelihood", "bernoulli",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config, trained = load_run(out)
    assert config["model"]["likelihood"] == "bernoulli"
    held_out = model_data(
        load_dataset(DataConfig.from_dict(config["data"]), split="holdout"), "bernoulli"
    )
    assert len(held_out) == 180

    # The same architecture at its initialisation: what training started from.
    pyro.set_rng_seed(config["train"]["seed"])
    untrained = VAE(VAEConfig.from_dict(config["model"]))

    def mean_elbo(vae):
        return -Trace_ELBO(num_particles=20, vectorize_particles=True, max_plate_nesting=1).loss(
            vae.model, vae.guide, held_out
        ) / len(held_out)

    before, after = mean_elbo(untrained), mean_elbo(trained)
    # 64 pixels near p = 1/2 cost about 64 log 2 = 44 nats; a trained model needs far fewer.
    assert before < -40
    assert after > before + 10, (before, after)


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--data", "ring9"], r"unknown dataset 'ring9'.*ring8"),
        (["--steps", "0"], "steps must be positive"),
        (["--steps", "-5"], "steps must be positive"),
        (["--batch-size", "0"], "batch_size must be positive"),
        (["--lr", "0"], "lr must be positive"),
        (["--elbo", "bogus"], "invalid choice"),
        (["--hidden", "a,b"], "comma-separated integers"),
        (
            ["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"],
            "device",
        ),
        (["--resume", "--overwrite"], "--resume and --overwrite"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(cli, tmp_path, args, pattern):
    result = cli("train", "vae", "--out", str(tmp_path / "r"), "--no-progress", *args)
    assert_one_line_error(result, pattern)


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("1,2\nnan,3\n", r"1 value\(s\) are NaN or inf \(first at index \(1, 0\)\)"),
        ("", "empty"),
        ("1,2\n3\n", "ragged"),
        ("1,2\n3,x\n", "non-numeric"),
    ],
)
def test_bad_data_files_from_the_cli(cli, tmp_path, content, pattern):
    path = tmp_path / "data.csv"
    path.write_text(content)
    result = cli("train", "vae", "--data", str(path), "--out", str(tmp_path / "r"), "--no-progress")
    assert_one_line_error(result, pattern)
    assert not (tmp_path / "r").exists()


def test_existing_run_and_bad_checkpoint_from_the_cli(cli, tmp_path):
    out = str(tmp_path / "r")
    base = [
        "train",
        "vae",
        "--out",
        out,
        "--steps",
        "20",
        "--hidden",
        "8",
        "--num-points",
        "300",
        "--no-progress",
    ]
    assert cli(*base).returncode == 0
    checkpoint = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    assert_one_line_error(cli(*base), "already holds a run")
    assert_one_line_error(cli(*base, "--resume", "--lr", "0.1"), r"settings differ in train\.lr")
    assert_one_line_error(
        cli(*base, "--data", "grid25", "--resume"), r"settings differ in data\.name"
    )
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == checkpoint
    (tmp_path / "r" / "checkpoint.pt").write_bytes(checkpoint[:100])
    assert_one_line_error(cli(*base, "--resume", "--steps", "30"), "not a readable checkpoint")


def test_wrong_dimension_for_the_model_from_the_cli(cli, tmp_path):
    out = str(tmp_path / "r")
    common = ["--out", out, "--steps", "20", "--hidden", "8", "--no-progress"]
    data = tmp_path / "a.csv"
    data.write_text("1,2\n3,4\n5,6\n")
    assert cli("train", "vae", "--data", str(data), *common).returncode == 0
    data.write_text("1,2,3\n3,4,5\n5,6,7\n")  # the file changed under the run
    result = cli("train", "vae", "--data", str(data), *common, "--resume", "--steps", "30")
    assert_one_line_error(result, r"settings differ in model\.data_shape")


def test_errors_from_a_real_process_are_one_line_without_traceback(tmp_path):
    result = run_cli("train", "vae", "--data", "ring9", "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "unknown dataset 'ring9'")


@pytest.mark.parametrize("threads", ["0", "-2"])
@pytest.mark.parametrize(
    "command",
    [
        ["train", "vae", "--out", "{tmp}/r", "--no-progress"],
        ["train", "gan", "--out", "{tmp}/r", "--no-progress"],
        ["diagnose", "{tmp}/r"],
        ["report", "{tmp}/r", "--out", "{tmp}/report.html"],
        ["compare", "--out", "{tmp}/c", "--no-progress"],
    ],
    ids=lambda c: " ".join(c[:2]) if c[0] == "train" else c[0],
)
def test_bad_threads_give_one_line_and_status_2(cli, tmp_path, command, threads):
    before = torch.get_num_threads()
    result = cli(*(a.format(tmp=tmp_path) for a in command), "--threads", threads)
    assert_one_line_error(result, f"threads must be positive, got {threads}")
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
    assert torch.get_num_threads() == before


def test_threads_are_a_runtime_setting(cli, tmp_path):
    out = tmp_path / "r"
    base = ["train", "gan", "--out", out, "--hidden", "8", "--num-points", "300",
            "--batch-size", "64", "--no-progress"]  # fmt: skip
    before = torch.get_num_threads()
    assert cli(*base, "--steps", "10", "--threads", "2").returncode == 0
    assert torch.get_num_threads() == before
    assert "threads" not in (out / "config.json").read_text()
    # Resuming on another thread count is the same run.
    assert cli(*base, "--steps", "20", "--resume", "--threads", "1").returncode == 0
    assert cli("diagnose", out, "--num-samples", "500", "--threads", "2").returncode == 0
    result = cli("report", out, "--out", tmp_path / "report.html", "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert torch.get_num_threads() == before


def test_help_says_the_thread_default_and_why(cli):
    for command in (["train", "vae"], ["train", "gan"], ["diagnose"], ["report"], ["compare"]):
        out = cli(*command, "--help").stdout
        text = " ".join(out.split())
        assert "--threads THREADS" in out, command
        assert "default 1" in text and "fight other processes" in text, command
