"""The report and the compare main job: contents, a real browser, bad input."""

import base64
import contextlib
import dataclasses
import importlib
import io
import itertools
import json
import os
import re
import shlex
import shutil
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from pyro_vigen.cli import build_parser, sections
from pyro_vigen.data import DataConfig, Dataset, load_dataset
from pyro_vigen.diagnostics import diagnose
from pyro_vigen.flags import config_from_args, options
from pyro_vigen.infer import (
    GANTrainConfig,
    VAETrainConfig,
    families,
    get_family,
    train,
)
from pyro_vigen.infer.family import run_config
from pyro_vigen.models import VAEConfig
from pyro_vigen.report import command_for, compare, read_runs, summarise, write_report
from pyro_vigen.report.document import COLUMNS, panel_rows
from pyro_vigen.storage import CONFIG, RunDir

DATA = DataConfig("ring8", num_points=1000)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two seeds of a short VAE and one short GAN on ring8, diagnosed."""
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        train(
            "vae",
            root / f"vae{seed}",
            DATA,
            VAETrainConfig(steps=60, seed=seed, num_saved_samples=500),
            progress=False,
        )
        diagnose(root / f"vae{seed}", num_samples=500)
    train(
        "gan", root / "gan", DATA, GANTrainConfig(steps=60, num_saved_samples=500), progress=False
    )
    diagnose(root / "gan", num_samples=500)
    return root


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
    for needle in ("pyro-vigen train vae", "pyro-vigen train gan", "KL(data||<wbr>model)", "k-hat"):
        assert needle in html
    assert "KL(data||model)" in md


#: A value other than its default for every field of every family's configs, by section:
#: an empty tuple (--hidden ''), a one-item tuple, fields whose default is None, both
#: kinds of switch (--gen-batch-norm, --no-jit), choices, a float in exponent notation,
#: zeros, and paths the shell must quote. The test fails where a field has no value here.
CHANGED = {
    "data": {
        "name": "my data/points.npy",
        "num_points": 777,
        "seed": 99,  # --data-seed, not the training's --seed
        "data_root": "/tmp/mnist files",
        "holdout": 0.0,
    },
    "model": {
        "latent_dim": 3,
        "noise_dim": 6,
        "hidden": (),
        "gen_hidden": (7,),
        "disc_hidden": (5, 3),
        "likelihood": "continuous_bernoulli",
        "scale": 0.05,
        "activation": "leaky_relu",
        "obs_scale": 1e-05,
        "pack": 2,
        "gen_batch_norm": True,
        "disc_maxout": 5,
        "init_std": 0.02,
        "conv_width": 16,
    },
    "train": {
        "steps": 7,
        "batch_size": 24,
        "disc_steps": 2,
        "gen_steps": 3,
        "prior": "data",
        "reg_weight": 2.5,
        "loss": "minimax",
        "lr": 5e-4,
        "lr_disc": 2e-4,
        "lr_gen": 2e-05,
        "lr_decay": 0.25,
        "betas_disc": (0.0, 0.9),
        "betas_gen": (0.8, 0.99),
        "elbo": "iwae",
        "num_particles": 4,
        "seed": 11,
        "checkpoint_every": 3,
        "num_saved_samples": 50,
        "jit": False,
        "device": "cuda:1",
    },
}


@pytest.mark.parametrize("changed", [False, True], ids=["defaults", "every-field-changed"])
@pytest.mark.parametrize("kind", list(families()))
def test_commands_in_the_report_reproduce_the_settings(tmp_path, kind, changed):
    """The report's command, parsed by the CLI, builds every config of the run again,
    field by field: with every field at its default as training resolves it, and with
    every field changed from its default (all but data_shape, which the data sets: a
    field without a flag would be lost from the command)."""
    built, fields = {}, {}
    for section, cls in sections(get_family(kind)).items():
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name != "data_shape"}
        fields[section] = list(defaults)
        assert set(defaults) <= set(CHANGED[section]), f"give CHANGED[{section!r}] a value for each"
        values = {name: CHANGED[section][name] for name in defaults} if changed else {}
        # Training fills data_shape from the data: points here.
        built[section] = cls(**values, data_shape=(2,)) if section == "model" else cls(**values)
        if changed:  # none left at its default, however __post_init__ resolves it
            left = [name for name in defaults if getattr(built[section], name) == defaults[name]]
            assert left == [], f"{kind}: CHANGED leaves {left} at the default"
    # A run's config.json, as training writes it.
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_json(CONFIG, run_config(kind, built["data"], built["model"], built["train"]))

    out = tmp_path / "the copy"
    argv = shlex.split(command_for(run.read_config(), out))
    assert argv[:3] == ["pyro-vigen", "train", kind]
    args = build_parser().parse_args(argv[1:])
    assert args.model == kind and args.out == str(out)
    for section, cls in sections(get_family(kind)).items():
        parsed = config_from_args(cls, args)
        # The command has no flag for data_shape: training takes it from the data again.
        original = built[section]
        if section == "model":
            original = original.replace(data_shape=None)
        flags = {o.field: o.flag for o in options(cls)}
        for name in fields[section]:
            got, want = getattr(parsed, name), getattr(original, name)
            assert (type(got), got) == (type(want), want), f"{kind}: {flags.get(name, name)}"
        assert parsed == original


@contextlib.contextmanager
def browser_page(width=1280, height=900):
    """A page of headless Debian chromium, and the console errors it logs."""
    from playwright.sync_api import sync_playwright

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
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield page, errors
        finally:
            browser.close()


def test_report_in_a_real_browser(runs, tmp_path):
    out = write_report([runs], tmp_path / "report.html")
    with browser_page() as (page, errors):
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all(
            "img", "els => els.map(e => e.complete ? e.naturalWidth : 0)"
        )
        rows = page.locator("#runs tbody tr.run-row").count()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert errors == []
    assert widths and all(w > 0 for w in widths), widths
    assert rows == 3
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_bad_input(runs, tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("report", empty, "--out", tmp_path / "r.html")
    assert (
        r.returncode == 2
        and "no run directories" in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )

    undiagnosed = tmp_path / "undiag"
    shutil.copytree(runs / "vae0", undiagnosed)
    os.remove(undiagnosed / "metrics.json")
    r = cli("report", undiagnosed, "--out", tmp_path / "r.html")
    assert (
        r.returncode == 2
        and "never diagnosed" in r.stderr
        and f"pyro-vigen diagnose {undiagnosed}" in r.stderr
    )

    half = tmp_path / "half"
    shutil.copytree(runs / "vae1", half)
    os.remove(half / "checkpoint.pt")
    r = cli("report", half, "--out", tmp_path / "r.html")
    assert r.returncode == 2 and "half-written" in r.stderr and "checkpoint.pt" in r.stderr
    assert not (tmp_path / "r.html").exists()
    assert (runs / "vae0" / "metrics.json").exists()  # nothing already finished is lost


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--seeds", "0"], "argument --seeds: seeds must be a positive integer"),
        (["--data", "ring9"], "unknown dataset 'ring9'"),
        (["--steps", "0"], "argument --steps: steps must be positive, got 0"),
        (["--vae-steps", "-5"], "argument --vae-steps: vae_steps must be positive, got -5"),
        (["--families", "vae,flow"], "argument --families: families: unknown 'flow'; give one"),
        (["--families", "gan,gan"], "argument --families: families: each name once"),
        (["--data", "digits", "--families", "ali"], "ALI takes points, and digits holds images"),
    ],
)
def test_compare_bad_input(tmp_path, cli, args, pattern):
    r = cli("compare", "--out", tmp_path / "c", "--no-progress", *args)
    assert (
        r.returncode == 2
        and re.search(pattern, r.stderr)
        and len(r.stderr.strip().splitlines()) == 1
    )


def test_compare_trains_four_configurations_and_resumes(tmp_path, cli):
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
    r = cli(*args, "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "ring8" and len(summary["configurations"]) == 4
    for stats in summary["configurations"].values():
        assert {"mean", "sd", "n"} <= set(stats["kl_forward"])
    # One seed of all four configurations decides every claim (held or not, at 30 steps).
    assert [(c["key"], c["seeds_checked"]) for c in summary["claims"]] == [(k, 1) for k in "abcde"]
    for key in "abcde":  # the CLI prints the table
        assert re.search(rf"^\({key}\) held in [01] of 1 seeds", r.stdout, re.M), r.stdout
    html = (out / "report.html").read_text()
    assert html.count('class="run-row"') == 4 and 'id="claims"' in html
    checkpoints = {p: p.stat().st_mtime_ns for p in out.rglob("checkpoint.pt")}
    assert len(checkpoints) == 4
    r = cli(*args, "--out", out, "--no-progress")
    assert r.returncode == 0
    assert {
        p: p.stat().st_mtime_ns for p in out.rglob("checkpoint.pt")
    } == checkpoints  # finished runs skipped


def test_compare_families_end_to_end(tmp_path, cli):
    """Every group of --families trains, is diagnosed and reaches the summary and report;
    the claims are still checked on the four configurations they are about."""
    out = tmp_path / "c"
    r = cli(
        "compare", "--data", "ring8", "--num-points", "600", "--seeds", "1", "--steps", "20",
        "--vae-steps", "20", "--num-samples", "300", "--families", "vae,gan,iwgan,aae,ali",
        "--out", out, "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = {p.parent.parent.name for p in out.rglob("checkpoint.pt")}
    assert names == {
        "vae", "gan_mixed_1step", "gan_mixed_3steps", "gan_data_3steps",
        "iwgan_mixed_1step", "aae", "ali_mixed_1step",
    }  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    labels = summary["configurations"]
    assert len(labels) == 7
    iwgan = next(label for label in labels if label.startswith("IWGAN"))
    aae = next(label for label in labels if label.startswith("AAE"))
    ali = next(label for label in labels if label.startswith("ALI"))
    for label in (aae, ali, "VAE"):
        assert {"recon_same_mode", "latent_kl_reverse"} <= set(labels[label])
    assert "recon_same_mode" not in labels[iwgan]
    # The IWGAN is not the classic GAN: the claims saw one run per role, as without it.
    assert all(c["seeds_checked"] == 1 for c in summary["claims"])
    html = (out / "report.html").read_text()
    assert html.count('class="run-row"') == 7 and "recon. mode" in html


def test_compare_families_default_is_the_four_configurations():
    compare_module = importlib.import_module("pyro_vigen.report.compare")
    ring = DataConfig("ring8", num_points=500)
    assert (
        compare_module.configurations(ring).keys()
        == compare_module.configurations(ring, ("vae", "gan")).keys()
        == {"vae", "gan_mixed_1step", "gan_mixed_3steps", "gan_data_3steps"}
    )
    settings = compare_module.configurations(ring, ("iwgan",))["iwgan_mixed_1step"][1]
    assert settings["loss"] == "importance_weighted" and settings["gen_steps"] == 1


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
    train("vae", root / "grey" / "vae", digits, VAETrainConfig(**short), progress=False)
    # jit only changes the speed; the uncompiled GAN keeps this test off the compiler.
    train("gan", root / "grey" / "gan", digits, GANTrainConfig(**short, jit=False), progress=False)
    train(
        "vae",
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


def embedded_images(html_path):
    """The PNGs a report embeds, by their caption (the image's alt text)."""
    found = re.findall(
        r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)">', html_path.read_text()
    )
    return {unescape(alt): base64.b64decode(data) for alt, data in found}


def ink_runs(mask):
    """``(start, stop)`` of each run of True in a 1-D mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def grid_cells(png):
    """The 8x8 grey images of a grid figure, read back from its pixels, as rows of cells.

    The grid puts a white pixel between images, and the figure draws every pixel of the
    grid as a block of ``s`` by ``s`` screen pixels; its title is a band of text above.
    Checks that the cells are ``8 s`` square with gaps of ``s``: 8x8 images, padded by 1.
    """
    rgb = imread(io.BytesIO(png))[..., :3]
    ink = (rgb < 0.99).any(-1)  # not white
    bands = ink_runs(ink.any(1))
    tallest = max(stop - start for start, stop in bands)
    rows = [(a, b) for a, b in bands if b - a > tallest / 2]  # not the title's lines
    assert bands[-len(rows) :] == rows, bands  # the title above the grid, nothing below
    cols = ink_runs(ink[rows[0][0] : rows[-1][1]].any(0))
    # The outer padding is white on white: the grid shows from the first cell's edge
    # to the last's, 9 n - 1 pixels of the grid for n cells.
    s = (cols[-1][1] - cols[0][0]) / (9 * len(cols) - 1)
    assert s > 2, s  # at least 2 screen pixels a grid pixel
    assert (rows[-1][1] - rows[0][0]) == pytest.approx((9 * len(rows) - 1) * s, abs=2)
    for band in (rows, cols):
        assert all(b - a == pytest.approx(8 * s, abs=1.5) for a, b in band), band
        gaps = [b[0] - a[1] for a, b in itertools.pairwise(band)]
        assert all(g == pytest.approx(s, abs=1.5) for g in gaps), band
    centres = (np.arange(8) + 0.5) * s  # of a cell's pixels, from its corner
    return [
        [
            rgb[np.ix_((top + centres).astype(int), (left + centres).astype(int))][..., 0]
            for left in cols[0][0] + 9 * s * np.arange(len(cols))
        ]
        for top in rows[0][0] + 9 * s * np.arange(len(rows))
    ]


#: The per-run table's columns, written out: metrics.json's key, the header, decimals.
TABLE = [
    ("kl_forward", "KL(data||model)", 3),
    ("kl_reverse", "KL(model||data)", 3),
    ("modes_captured", "modes", 1),
    ("hq_fraction", "HQ fraction", 3),
    ("mode_kl", "mode KL", 3),
    ("precision", "precision", 3),
    ("recall", "recall", 3),
    ("density", "density", 3),
    ("coverage", "coverage", 3),
    ("elbo", "ELBO", 3),
    ("iwae", "IWAE", 3),
    ("joint_kl", "joint KL", 3),
    ("khat_mean", "mean k-hat", 2),
    ("jsd", "JSD (disc.)", 3),
    ("recon_same_mode", "recon. mode", 3),
    ("latent_kl_reverse", "KL(q(z)||p(z))", 3),
]


def test_image_report_grids_reconstructions_and_numbers(image_runs, tmp_path):
    """The image report read back: its grids cell by cell from the PNGs' pixels, the
    reconstruction panel against the held-out digits, the table against metrics.json."""
    out = write_report([image_runs / "grey"], tmp_path / "grey.html")
    images = embedded_images(out)
    # The Markdown twin links the very same PNGs, saved beside it.
    linked = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", out.with_suffix(".md").read_text())
    assert {caption: (out.parent / path).read_bytes() for caption, path in linked} == images

    vae, gan = image_runs / "grey" / "vae", image_runs / "grey" / "gan"
    vae_caption, gan_caption = "VAE (seed 0)", "GAN mixed prior, 1 gen step (seed 0)"
    means = f"{vae_caption}: decoder means (the blur), not draws"
    samples = f"{gan_caption}: samples"
    draws = f"{vae_caption}: draws, decoder means plus the likelihood's noise"
    pairs = f"{vae_caption}: data (odd) and reconstruction (even), 3 per class"
    # 64 images in rows of 8; the reconstructions: 32 // 10 = 3 digits of each of the
    # 10 classes, each beside its reconstruction, a pair per class in a row of 20.
    grids = {means: (8, 8), samples: (8, 8), draws: (8, 8), pairs: (3, 20)}
    cells = {caption: grid_cells(images[caption]) for caption in grids}
    assert {caption: (len(c), len(c[0])) for caption, c in cells.items()} == grids

    # The GAN's samples and the VAE's draws are the first 64 of the runs' samples.pt.
    for caption, run in ((samples, gan), (draws, vae)):
        saved = RunDir(run).read_samples()[:64, 0].clamp(0, 1).numpy()
        shown = np.stack([cell for row in cells[caption] for cell in row])
        assert np.abs(shown - saved).max() < 0.01, caption

    holdout = load_dataset(DataConfig("digits"), split="holdout")
    flat = holdout.x.reshape(len(holdout), 64).numpy()
    matched = []
    for row in cells[pairs]:
        for k in range(10):
            data, reconstruction = row[2 * k].ravel(), row[2 * k + 1].ravel()
            distance = np.abs(flat - data).max(1)
            i = int(distance.argmin())
            assert distance[i] < 0.01, f"pair {k}: not a held-out digit (8-bit PNG)"
            assert holdout.labels[i] == k, "a pair per class in each row, in label order"
            # The VAE's reconstruction, not the digit again.
            assert np.abs(reconstruction - data).max() > 0.1, f"pair {k}: the digit twice"
            matched.append(i)
    assert len(set(matched)) == 30

    # The per-run table: metrics.json's numbers, formatted; null is "n/a" (the VAE's
    # k-hat at 30 steps is infinite), a metric the run lacks an empty cell.
    metrics = {run: json.loads((run / "metrics.json").read_text()) for run in (vae, gan)}
    for m in metrics.values():
        assert isinstance(m["precision"], float) and isinstance(m["recall"], float)
    columns = [c for c in TABLE if any(c[0] in m for m in metrics.values())]
    html = out.read_text()
    table = html[html.index('<table id="runs">') :]
    table = table[: table.index("</table>")]
    headers = re.findall(r"<th>(.*?)</th>", table[: table.index("</thead>")])
    assert [unescape(h.replace("<wbr>", "")) for h in headers] == [
        "run", "seed", "steps", *[header for _, header, _ in columns]
    ]  # fmt: skip
    rows = re.findall(r'<tr class="run-row"><td class="path" title="([^"]*)">(.*?)</tr>', table)
    assert sorted(path for path, _ in rows) == sorted(map(str, metrics))
    for path, row in rows:
        m = metrics[Path(path)]
        seed, steps, *row_cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert (seed, steps) == ("0", "30") and len(row_cells) == len(columns)
        for (key, header, decimals), cell in zip(columns, row_cells, strict=True):
            value, *details = re.split(r'<span class="detail">', cell)
            if key not in m:
                expected = ""
            elif m[key] is None:
                expected = "n/a"
            else:
                expected = f"{m[key]:.{decimals}f}"
            assert value == expected, (path, header)
            if m.get(f"{key}_interval"):
                lo, hi = m[f"{key}_interval"]
                assert details[0] == f"[{lo:.{decimals}f}, {hi:.{decimals}f}]</span>"


#: The four compare configurations: role -> (fixture run, training settings).
CONFIGURATIONS = {
    "vae": ("vae{seed}", {}),
    "classic": ("gan", {"prior": "mixed", "gen_steps": 1}),
    "data_prior": ("gan", {"prior": "data", "gen_steps": 3, "reg_weight": 5.0}),
    "ablation": ("gan", {"prior": "mixed", "gen_steps": 3}),
}


def handwritten_metrics(seed, role):
    """Every metric column the report has (image metrics too), with 95% intervals on
    the divergences: one in the clear, one below zero within noise, one below zero
    beyond its interval; and the VAE's k-hat above 0.7 at 93% of points in seed 0 only."""
    metrics = {key: 0.5 + seed for key, _, _ in COLUMNS}
    metrics.update(
        kl_forward=0.83 + 0.08 * seed,
        kl_forward_interval=[0.79 + 0.08 * seed, 0.87 + 0.08 * seed],
        kl_reverse=117.14,
        kl_reverse_interval=[110.2, 125.3],
        jsd=-0.012,
        jsd_interval=[-0.03, 0.01],
        joint_kl=-0.2,
        joint_kl_interval=[-0.3, -0.1],
        mode_kl=None,  # undefined: no interval, "n/a"
        modes_captured=8,
        num_modes=8,
        khat_mean=0.91 if seed == 0 else 0.4,
        khat_frac_over_0_7=0.93 if seed == 0 else 0.0,
        kl_method="mc (VAE log-density by importance sampling, 100 particles)",
        interval_method="bootstrap over the samples, 200 resamples",
        num_samples=500,
    )
    if role != "vae":  # a GAN has no k-hat
        del metrics["khat_mean"], metrics["khat_frac_over_0_7"]
    return metrics


@pytest.fixture(scope="module")
def wide_runs(runs, tmp_path_factory):
    """The four compare configurations, two seeds each, with :func:`handwritten_metrics`:
    copies of the short ring8 runs with their settings rewritten (the report reads the
    samples, history and metrics, not the weights, of runs on points)."""
    root = tmp_path_factory.mktemp("wide")
    for seed in (0, 1):
        for role, (source, settings) in CONFIGURATIONS.items():
            run = root / role / f"seed{seed}"
            shutil.copytree(runs / source.format(seed=seed), run)
            config = json.loads((run / "config.json").read_text())
            config["train"].update(settings, seed=seed)
            (run / "config.json").write_text(json.dumps(config))
            (run / "metrics.json").write_text(json.dumps(handwritten_metrics(seed, role)))
    return root


def test_report_fits_1280_px_and_shows_the_samples_side_by_side(wide_runs, image_runs, tmp_path):
    reports = [
        write_report([wide_runs], tmp_path / "wide.html"),
        write_report([image_runs / "grey"], tmp_path / "images.html"),
    ]
    overflow = """() => Array.from(document.querySelectorAll("body *"))
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
        .map(e => e.tagName + " " + (e.id || e.className) + " " + e.getBoundingClientRect().right)"""
    with browser_page(width=1280) as (page, errors):
        for out in reports:
            page.goto(out.as_uri())
            page.wait_for_load_state("load")
            scroll = page.evaluate("document.documentElement.scrollWidth")
            inner = page.evaluate("window.innerWidth")
            assert inner == 1280 and scroll <= inner, (out.name, scroll)
            assert page.evaluate(overflow) == [], out.name
            # The samples of every configuration, side by side on the first screen.
            tops = page.eval_on_selector_all(
                "#samples figure", "els => els.map(e => e.getBoundingClientRect().top)"
            )
            assert len(tops) >= 2 and len(set(tops)) == 1 and tops[0] < 900, (out.name, tops)
            page.screenshot(path=str(tmp_path / f"{out.stem}.png"), full_page=True)
    assert errors == []


def test_first_screen_is_samples_then_claims_then_numbers(wide_runs, tmp_path):
    html = write_report([wide_runs], tmp_path / "r.html").read_text()
    order = [
        'id="samples"',
        'id="claims"',
        'id="summary"',
        'id="runs"',
        "<h2>Both KL directions",
        "<h2>Training curves",
    ]
    positions = [html.index(needle) for needle in order]
    assert positions == sorted(positions)
    samples = html[positions[0] : positions[1]]
    assert re.findall(r"<figcaption>(.*?)</figcaption>", samples) == [
        "GAN data prior, 3 gen steps, lambda=5.0 (seed 0)",
        "GAN mixed prior, 1 gen step (seed 0)",
        "GAN mixed prior, 3 gen steps (seed 0)",
        "VAE (seed 0)",
    ]
    assert "over the data&#39;s density" in html[: positions[0]]


def test_intervals_and_estimates_below_zero_are_shown(wide_runs, tmp_path):
    out = write_report([wide_runs], tmp_path / "r.html")
    html = out.read_text()
    runs_table = html[html.index('id="runs"') :]

    def detail(*lines):
        return "".join(f'<span class="detail">{line}</span>' for line in lines)

    # Per run: the estimate and its interval; below zero, a word on whether it is noise.
    assert "<td>0.830" + detail("[0.790, 0.870]") + "</td>" in runs_table
    assert "<td>0.910" + detail("[0.870, 0.950]") + "</td>" in runs_table
    assert (
        "<td>-0.012" + detail("[-0.030, 0.010]", "below zero: within noise of 0") + "</td>"
        in runs_table
    )
    assert (
        '<td class="flag">-0.200'
        + detail("[-0.300, -0.100]", "below zero beyond noise: biased")
        + "</td>"
        in runs_table
    )
    assert "<td>n/a</td>" in runs_table  # mode KL undefined
    # Per configuration: the mean over the seeds and their range.
    summary = html[html.index('id="summary"') : html.index('id="runs"')]
    assert "<td>0.870" + detail("0.830 to 0.910") + "</td>" in summary
    assert '<td class="flag">-0.200' + detail("below zero beyond noise") + "</td>" in summary
    assert "Intervals (95%, in brackets under an estimate): bootstrap over the samples" in html
    md = out.with_suffix(".md").read_text()
    assert "| 0.830 [0.790, 0.870] |" in md
    assert "| -0.012 [-0.030, 0.010] (below zero: within noise of 0) |" in md
    assert "| 0.870 (0.830 to 0.910) |" in md


def test_khat_above_0_7_is_flagged_in_words(wide_runs, tmp_path):
    html = write_report([wide_runs], tmp_path / "r.html").read_text()
    warning = (
        "VAE, seed 0: k-hat above 0.7 for 93% of points: the importance-sampled "
        "log-density (the IWAE bound and the KL estimates from it) is unreliable for this run"
    )
    assert warning in html
    assert html.count("k-hat above 0.7 for") == 1  # not in seed 1: no point above 0.7
    assert '<td class="flag">0.91<span class="detail">93% of points above 0.7</span>' in html
    summary = html[html.index('id="summary"') : html.index('id="runs"')]
    assert (
        '<td class="flag">0.66<span class="detail">0.40 to 0.91</span>'
        '<span class="detail">0% to 93% of points above 0.7</span>' in summary
    )


@pytest.mark.parametrize("over, warned", [(0.93, True), (0.0, False)])
def test_diagnose_prints_the_khat_warning(monkeypatch, cli, over, warned):
    import pyro_vigen.diagnostics

    metrics = {"kl_forward": 0.8, "khat_mean": 0.9, "khat_frac_over_0_7": over}
    monkeypatch.setattr(pyro_vigen.diagnostics, "diagnose", lambda *a, **k: dict(metrics))
    r = cli("diagnose", "runs/x")
    assert r.returncode == 0
    expected = "pyro-vigen: warning: k-hat above 0.7 for 93% of points: the importance-sampled"
    assert (expected in r.stderr) is warned, r.stderr


def test_samples_of_the_users_own_points_are_drawn(tmp_path):
    gen = np.random.default_rng(0)
    blobs = np.concatenate([gen.normal(-2, 0.3, (200, 2)), gen.normal(2, 0.3, (200, 2))])
    # Five dimensions spread mostly along the first two (0.99 of the variance).
    wide = gen.normal(size=(400, 5)) * [3.0, 1.0, 0.1, 0.1, 0.1]
    for name, data in (("blobs", blobs), ("wide", wide)):
        np.save(tmp_path / f"{name}.npy", data)
        config = DataConfig(str(tmp_path / f"{name}.npy"))
        settings = GANTrainConfig(steps=20, num_saved_samples=300, jit=False)
        train("gan", tmp_path / name / "gan", config, settings, progress=False)
        diagnose(tmp_path / name / "gan", num_samples=300)

    html = write_report([tmp_path / "blobs"], tmp_path / "blobs.html").read_text()
    assert "Samples of each configuration (blue) over the data (grey): the 400 points of" in html
    samples = html[html.index('id="samples"') : html.index("</div>", html.index('id="samples"'))]
    assert samples.count("<figure>") == 1

    html = write_report([tmp_path / "wide"], tmp_path / "wide.html").read_text()
    assert "5-dimensional, projected on the data&#39;s first two principal components" in html
    from pyro_vigen.report.document import principal_axes

    _, axes, share = principal_axes(wide)
    assert share.sum() > 0.95 and np.allclose(np.abs(axes[:2]), np.eye(2), atol=0.05)

    # The file gone (moved, or the report written from elsewhere): the points that the
    # diagnosis stored stand in for it, and the page says so.
    os.rename(tmp_path / "blobs.npy", tmp_path / "moved.npy")
    html = write_report([tmp_path / "blobs"], tmp_path / "blobs2.html").read_text()
    assert "400 of its points as stored in diagnostics.nc" in html
