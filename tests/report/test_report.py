"""The report and the compare main job: contents, a real browser, bad input."""

import importlib
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch

from pyro_vigen.cli import build_parser, main
from pyro_vigen.data import DataConfig, Dataset
from pyro_vigen.diagnostics import diagnose
from pyro_vigen.infer import GANTrainConfig, VAETrainConfig, load_run, train_gan, train_vae
from pyro_vigen.models import VAEConfig
from pyro_vigen.report import command_for, compare, read_runs, summarise, write_report
from pyro_vigen.report.document import panel_rows

DATA = DataConfig("ring8", num_points=1000)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two seeds of a short VAE and one short GAN on ring8, diagnosed."""
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        train_vae(
            root / f"vae{seed}",
            DATA,
            VAETrainConfig(steps=60, seed=seed, num_saved_samples=500),
            progress=False,
        )
        diagnose(root / f"vae{seed}", num_samples=500)
    train_gan(root / "gan", DATA, GANTrainConfig(steps=60, num_saved_samples=500), progress=False)
    diagnose(root / "gan", num_samples=500)
    return root


def cli_result(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr()


def test_summary_is_mean_and_sd_over_seeds(runs):
    records = read_runs([runs])
    summary = summarise(records)
    vae = [
        json.loads((runs / f"vae{s}" / "metrics.json").read_text())["kl_reverse"] for s in (0, 1)
    ]
    assert summary["VAE"]["kl_reverse"]["n"] == 2
    assert summary["VAE"]["kl_reverse"]["mean"] == pytest.approx((vae[0] + vae[1]) / 2)
    assert summary["VAE"]["kl_reverse"]["sd"] == pytest.approx(abs(vae[0] - vae[1]) / np.sqrt(2))
    assert set(summary) == {"VAE", "GAN mixed prior, 1 gen step"}


def test_html_is_self_contained_and_has_a_markdown_twin(runs, tmp_path):
    out = write_report([runs], tmp_path / "rep" / "report.html")
    html = out.read_text()
    assert html.count('class="run-row"') == 3
    assert not re.search(r'(src|href)="(https?:)?//', html), (
        "the report must not load anything from the network"
    )
    assert "<script" not in html
    images = re.findall(r'src="data:image/png;base64,', html)
    assert len(images) >= 5  # KL chart, samples + histograms, curves, k-hat
    md = out.with_suffix(".md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(linked) == len(images) and all((out.parent / p).is_file() for p in linked)
    for needle in ("pyro-vigen train vae", "pyro-vigen train gan", "KL(data||model)", "k-hat"):
        assert needle in html


def test_commands_in_the_report_reproduce_the_settings(runs):
    for path in (runs / "vae0", runs / "gan"):
        config, _ = load_run(path)
        argv = command_for(config, path).split()[1:]
        args = build_parser().parse_args(argv)
        assert args.data == config["data"]["name"] and args.seed == config["train"]["seed"]
        assert (
            args.steps == config["train"]["steps"]
            and args.num_points == config["data"]["num_points"]
        )


def test_report_in_a_real_browser(runs, tmp_path):
    from playwright.sync_api import sync_playwright

    out = write_report([runs], tmp_path / "report.html")
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (scripts/ensure-chromium.sh installs it)"
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all(
            "img", "els => els.map(e => e.complete ? e.naturalWidth : 0)"
        )
        rows = page.locator("#runs tbody tr").count()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert widths and all(w > 0 for w in widths), widths
    assert rows == 3
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_bad_input(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = cli_result(capsys, "report", empty, "--out", tmp_path / "r.html")
    assert code == 2 and "no run directories" in out.err and len(out.err.strip().splitlines()) == 1

    undiagnosed = tmp_path / "undiag"
    shutil.copytree(runs / "vae0", undiagnosed)
    os.remove(undiagnosed / "metrics.json")
    code, out = cli_result(capsys, "report", undiagnosed, "--out", tmp_path / "r.html")
    assert (
        code == 2
        and "never diagnosed" in out.err
        and f"pyro-vigen diagnose {undiagnosed}" in out.err
    )

    half = tmp_path / "half"
    shutil.copytree(runs / "vae1", half)
    os.remove(half / "checkpoint.pt")
    code, out = cli_result(capsys, "report", half, "--out", tmp_path / "r.html")
    assert code == 2 and "half-written" in out.err and "checkpoint.pt" in out.err
    assert not (tmp_path / "r.html").exists()
    assert (runs / "vae0" / "metrics.json").exists()  # nothing already finished is lost


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--seeds", "0"], "--seeds must be a positive integer"),
        (["--data", "ring9"], "unknown dataset 'ring9'"),
        (["--steps", "0"], r"steps \(--steps\) must be positive, got 0"),
        (["--vae-steps", "-5"], r"vae_steps \(--vae-steps\) must be positive, got -5"),
    ],
)
def test_compare_bad_input(tmp_path, capsys, args, pattern):
    code, out = cli_result(capsys, "compare", "--out", tmp_path / "c", "--no-progress", *args)
    assert code == 2 and re.search(pattern, out.err) and len(out.err.strip().splitlines()) == 1


def test_compare_trains_four_configurations_and_resumes(tmp_path, capsys):
    out = tmp_path / "c"
    args = [
        "compare",
        "--data",
        "ring8",
        "--num-points",
        "600",
        "--seeds",
        "1",
        "--steps",
        "30",
        "--vae-steps",
        "30",
        "--num-samples",
        "300",
    ]
    code, printed = cli_result(capsys, *args, "--out", out, "--no-progress")
    assert code == 0, printed.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "ring8" and len(summary["configurations"]) == 4
    for stats in summary["configurations"].values():
        assert {"mean", "sd", "n"} <= set(stats["kl_forward"])
    # One seed of all four configurations decides every claim (held or not, at 30 steps).
    assert [(c["key"], c["seeds_checked"]) for c in summary["claims"]] == [(k, 1) for k in "abcde"]
    for key in "abcde":  # the CLI prints the table
        assert re.search(rf"^\({key}\) held in [01] of 1 seeds", printed.out, re.M), printed.out
    html = (out / "report.html").read_text()
    assert html.count('class="run-row"') == 4 and 'id="claims"' in html
    checkpoints = {p: p.stat().st_mtime_ns for p in out.rglob("checkpoint.pt")}
    assert len(checkpoints) == 4
    code, printed = cli_result(capsys, *args, "--out", out, "--no-progress")
    assert code == 0
    assert {
        p: p.stat().st_mtime_ns for p in out.rglob("checkpoint.pt")
    } == checkpoints  # finished runs skipped


def test_compare_from_python_returns_the_report(tmp_path):
    path = compare(
        DataConfig("ring8", num_points=500),
        1,
        tmp_path,
        steps=20,
        vae_steps=20,
        num_samples=200,
        progress=False,
        workers=1,
    )
    assert path == tmp_path / "report.html" and path.is_file()
    assert (tmp_path / "report.md").is_file() and (tmp_path / "summary.json").is_file()


def test_vae_labels_name_a_likelihood_other_than_the_default():
    from pyro_vigen.report.runs import config_label

    def vae(shape, likelihood):
        return {"kind": "vae", "model": {"data_shape": shape, "likelihood": likelihood}}

    assert config_label(vae([2], "normal")) == "VAE"
    assert config_label(vae([1, 8, 8], "discretized_logistic")) == "VAE"
    # Another likelihood is another configuration: its ELBO is on another scale.
    assert config_label(vae([1, 8, 8], "bernoulli")) == "VAE, bernoulli likelihood"


def test_compare_budget_follows_the_data():
    # The package's name `compare` is the function; the module by its full name.
    compare_module = importlib.import_module("pyro_vigen.report.compare")

    ring, digits = DataConfig("ring8", num_points=500), DataConfig("digits")
    assert compare_module.default_steps(ring) == (compare_module.STEPS, compare_module.VAE_STEPS)
    # Images: the budget of their side (8x8 digits), and minibatches of 64 in every run.
    steps, vae_steps = compare_module.default_steps(digits)
    assert steps == compare_module.IMAGE_STEPS[8] and vae_steps == compare_module.IMAGE_VAE_STEPS
    for _, settings in compare_module.configurations(digits).values():
        assert settings["batch_size"] == compare_module.IMAGE_BATCH_SIZE
    for _, settings in compare_module.configurations(ring).values():
        assert "batch_size" not in settings  # the training configs' default


def test_panel_rows_show_every_class_equally_on_class_sorted_data():
    # Five classes of 20, sorted by class as mnist5k is: the first 15 rows are all class 0.
    labels = torch.arange(5).repeat_interleave(20)
    data = Dataset("sorted", torch.zeros(100, 1, 8, 8), "test", labels=labels)
    rows = panel_rows(data, 15)
    assert torch.bincount(labels[rows], minlength=5).tolist() == [3, 3, 3, 3, 3]
    assert labels[rows[:5]].tolist() == [0, 1, 2, 3, 4]  # round-robin, in reading order
    assert len(set(rows.tolist())) == 15
    assert torch.equal(rows, panel_rows(data, 15))  # seeded
    assert not torch.equal(rows, panel_rows(data, 15, seed=1))
    # 32 rows over 5 classes: as even as can be.
    assert sorted(torch.bincount(labels[panel_rows(data, 32)]).tolist()) == [6, 6, 6, 7, 7]


def test_panel_rows_without_labels_are_a_seeded_random_sample():
    data = Dataset("plain", torch.zeros(100, 1, 8, 8), "test")
    rows = panel_rows(data, 10)
    assert len(set(rows.tolist())) == 10 and not torch.equal(rows, torch.arange(10))
    assert torch.equal(rows, panel_rows(data, 10))
    assert sorted(panel_rows(data, 500).tolist()) == list(range(100))  # all, when fewer


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory):
    """Short digits runs, diagnosed: a default (discretised-logistic) VAE and a GAN in
    one folder, a Bernoulli VAE in another (labelled "VAE, bernoulli likelihood")."""
    root = tmp_path_factory.mktemp("image_runs")
    digits = DataConfig("digits")
    short = {"steps": 30, "batch_size": 64, "num_saved_samples": 64}
    train_vae(root / "grey" / "vae", digits, VAETrainConfig(**short), progress=False)
    # jit only changes the speed; the uncompiled GAN keeps this test off the compiler.
    train_gan(root / "grey" / "gan", digits, GANTrainConfig(**short, jit=False), progress=False)
    train_vae(
        root / "binary" / "vae",
        digits,
        VAETrainConfig(**short),
        VAEConfig(likelihood="bernoulli"),
        progress=False,
    )
    for run in ("grey/vae", "grey/gan", "binary/vae"):
        diagnose(root / run, num_samples=200, num_particles=8, cache_dir=root / "cache")
    return root


def captions(html_path):
    return [
        c.replace("&#39;", "'")
        for c in re.findall(r"<figcaption>(.*?)</figcaption>", html_path.read_text())
    ]


def test_image_report_shows_the_vae_decoder_means_first(image_runs, tmp_path):
    shown = captions(write_report([image_runs / "grey"], tmp_path / "grey.html"))
    images = [c for c in shown if c.startswith(("VAE (seed", "GAN mixed prior, 1 gen step (seed"))]
    assert images == [
        "VAE (seed 0): decoder means (the blur), not draws",
        "GAN mixed prior, 1 gen step (seed 0): samples",
        "VAE (seed 0): draws, decoder means plus the likelihood's noise",
        "VAE (seed 0): data (odd) and reconstruction (even), 3 per class",
    ]
    assert not any("binarised" in c for c in shown)


def test_image_report_names_the_binarised_bernoulli(image_runs, tmp_path):
    shown = captions(write_report([image_runs / "binary"], tmp_path / "binary.html"))
    assert (
        "VAE, bernoulli likelihood (seed 0): decoder means (the blur), not draws; "
        "Bernoulli on images binarised at 0.5" in shown
    )
    assert all(
        "binarised at 0.5" in c for c in shown if c.startswith("VAE, bernoulli likelihood (")
    )
