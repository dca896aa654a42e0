"""The command line: what a user types, and what they see when the input is bad."""

import argparse
import json
import re
import shlex
import subprocess
import sys
import time

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_vigen.cli import build_parser, main
from pyro_vigen.data import DataConfig, load_dataset
from pyro_vigen.errors import UserError
from pyro_vigen.infer import GANTrainConfig, load_run
from pyro_vigen.models import VAE, VAEConfig
from pyro_vigen.models.likelihoods import model_data
from pyro_vigen.report import command_for


def run_cli(*args):
    """Run the command line in a new process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pyro_vigen.cli", *args], capture_output=True, text=True, timeout=600
    )


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


def test_the_reports_command_trains_the_same_run(cli, tmp_path):
    first = tmp_path / "linear"
    args = ["train", "vae", "--hidden", "", "--steps", "3", "--num-points", "300",
            "--elbo", "trace", "--data-root", tmp_path / "my 'data'", "--no-progress"]  # fmt: skip
    assert cli(*args, "--out", first).returncode == 0
    config = json.loads((first / "config.json").read_text())
    assert config["model"]["hidden"] == []  # the linear VAE

    command = command_for(config, tmp_path / "again")
    assert "--hidden ''" in command
    prog, *argv = shlex.split(command)
    assert prog == "pyro-vigen"
    result = cli(*argv, "--no-progress")
    assert result.returncode == 0, result.stderr
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert {k: again[k] for k in ("kind", "data", "model", "train")} == {
        k: config[k] for k in ("kind", "data", "model", "train")
    }


@pytest.mark.parametrize(
    "args, line",
    [
        # The library names the fields; the command line names their flags.
        (["--batch-size", "0"], "argument --batch-size: batch_size must be positive, got 0"),
        (["--pack", "64", "--batch-size", "32"], "--pack 64 is larger than --batch-size 32: "),
        (["--reg-weight", "2"], "--reg-weight 2.0 only applies to prior 'data'; "),
        (["--resume", "--overwrite"], "choose one of --resume and --overwrite, not both"),
    ],
)
def test_user_errors_name_the_flags(cli, tmp_path, args, line):
    result = cli("train", "gan", "--out", tmp_path / "r", "--no-progress", *args)
    assert_one_line_error(result, re.escape(f"pyro-vigen: error: {line}"))


def test_user_errors_name_the_fields_outside_the_command_line():
    with pytest.raises(UserError, match="batch_size must be positive, got 0") as e:
        GANTrainConfig(batch_size=0)
    assert e.value.field == "batch_size" and isinstance(e.value, ValueError)


def test_a_bug_keeps_its_traceback(cli, tmp_path, monkeypatch):
    import pyro_vigen.diagnostics

    def bug(*args, **kwargs):
        raise ValueError("an internal bug, not the user's input")

    monkeypatch.setattr(pyro_vigen.diagnostics, "diagnose", bug)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["diagnose", str(tmp_path), "--no-progress"])
    # In a real process: Python's traceback and status 1, not a one-line "error".
    code = (
        "import sys, pyro_vigen.diagnostics as d\n"
        "def bug(*a, **k): raise ValueError('an internal bug')\n"
        "d.diagnose = bug\n"
        "from pyro_vigen.cli import main\n"
        f"sys.exit(main(['diagnose', {str(tmp_path)!r}, '--no-progress']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: an internal bug" in result.stderr
    assert "pyro-vigen: error" not in result.stderr


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


def _subcommands(parser, prefix=()):
    """Every command that runs something, with its parser: ``("train", "vae") -> parser``."""
    commands = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands |= _subcommands(sub, (*prefix, name)) or {(*prefix, name): sub}
    return commands


def _option_help(help_text, option):
    """The help of one option in ``--help``'s output, its lines joined."""
    blocks = re.split(r"\n(?=  -)", help_text)
    (block,) = [b for b in blocks if re.match(rf"{re.escape(option)}(\s|,|$)", b.strip())]
    return " ".join(block.split())


def _shown(default):
    """A default as the help shows it, and as a user would type it."""
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    return f"{default:g}" if isinstance(default, float) else str(default)


def test_help_shows_every_default(cli):
    for command, parser in _subcommands(build_parser()).items():
        help_text = cli(*command, "--help").stdout
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue  # positionals, --help
            if action.nargs == 0 or action.required:
                continue  # flags are off unless given; a required option has no default
            text = _option_help(help_text, action.option_strings[-1])
            if action.default is None:
                # The library picks the value later, or there is none: the help says so.
                assert re.search(r"default:? \S", text, re.I), (command, text)
            else:
                shown = re.escape(_shown(action.default))
                assert re.search(rf"default:? {shown}\b", text), (command, text)


def test_help_shows_the_defaults_users_ask_about(cli):
    vae, gan = cli("train", "vae", "--help").stdout, cli("train", "gan", "--help").stdout
    assert _option_help(vae, "--data").endswith("(default: ring8)")
    assert _option_help(vae, "--lr").endswith("(default: 0.001)")
    assert _option_help(vae, "--checkpoint-every").endswith("(default: 500)")
    assert _option_help(gan, "--lr-disc").endswith("(default: 0.001)")
    assert _option_help(gan, "--hidden").endswith("(default: 128,128)")
    assert "(default: 2 with --prior data, else 1)" in _option_help(gan, "--gen-steps")


def assert_progress(result, line):
    """A command that succeeded and showed its progress, ``line`` on stderr."""
    assert result.returncode == 0, result.stderr
    assert line in result.stderr, result.stderr


def assert_no_progress(result, line):
    """A command that succeeded without progress; warnings may still be on stderr."""
    assert result.returncode == 0, result.stderr
    assert line not in result.stderr and "\r" not in result.stderr, result.stderr


def test_no_progress_silences_every_long_command(cli, tmp_path, monkeypatch):
    import pyro_vigen.diagnostics
    import pyro_vigen.report

    def slow(fn):
        """``fn`` taking over a second, after which the time spent appears."""

        def call(*args, **kwargs):
            time.sleep(1.5)
            return fn(*args, **kwargs)

        return call

    for kind in ("vae", "gan"):
        args = ["train", kind, "--steps", "5", "--hidden", "8", "--num-points", "300",
                "--batch-size", "64"]  # fmt: skip
        assert_progress(cli(*args, "--out", tmp_path / kind), f"train {kind}: 100%")
        run = tmp_path / f"{kind}_quiet"
        assert_no_progress(cli(*args, "--out", run, "--no-progress"), f"train {kind}:")

    # No steps to count: the command and its time so far, refreshed each second.
    monkeypatch.setattr(pyro_vigen.diagnostics, "diagnose", slow(pyro_vigen.diagnostics.diagnose))
    monkeypatch.setattr(pyro_vigen.report, "write_report", slow(pyro_vigen.report.write_report))
    args = ["diagnose", run, "--num-samples", "300"]
    assert_progress(cli(*args), f"diagnose {run}: 00:01")
    assert_no_progress(cli(*args, "--no-progress"), f"diagnose {run}")
    args = ["report", run, "--out", tmp_path / "report.html"]
    assert_progress(cli(*args), f"report {tmp_path / 'report.html'}: 00:01")
    assert_no_progress(cli(*args, "--no-progress"), f"report {tmp_path / 'report.html'}")

    args = ["compare", "--num-points", "300", "--seeds", "1", "--steps", "3", "--vae-steps", "3",
            "--num-samples", "200", "--out", tmp_path / "c"]  # fmt: skip
    assert_progress(cli(*args), "compare: 100%")
    # Rerun: every run is finished and skipped, so the bar would be at 4/4 at once.
    assert_no_progress(cli(*args, "--no-progress"), "compare:")
