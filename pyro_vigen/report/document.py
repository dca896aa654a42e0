"""The diagnostic report: one self-contained HTML file and its Markdown twin."""

from __future__ import annotations

import base64
import json
import os
import platform
import shlex
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import torch
from markupsafe import Markup

from .. import __version__
from ..cli import PROG, train_argv
from ..data import DATASETS, DataConfig, Dataset, load_dataset
from ..errors import UserError
from ..infer import VAE_FAMILY, load_run
from ..models.likelihoods import model_data
from ..storage import DIAGNOSTICS, atomic_write
from . import plots
from .claims import check_claims
from .runs import RunRecord, numeric_metrics, read_runs, summarise

# Metrics shown in the tables, in this order, with how to print them.
COLUMNS = [
    ("kl_forward", "KL(data||model)", "{:.3f}"),
    ("kl_reverse", "KL(model||data)", "{:.3f}"),
    ("modes_captured", "modes", "{:.1f}"),
    ("hq_fraction", "HQ fraction", "{:.3f}"),
    ("mode_kl", "mode KL", "{:.3f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("density", "density", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("elbo", "ELBO", "{:.3f}"),
    ("iwae", "IWAE", "{:.3f}"),
    ("joint_kl", "joint KL", "{:.3f}"),
    ("khat_mean", "mean k-hat", "{:.2f}"),
    ("jsd", "JSD (disc.)", "{:.3f}"),
    ("recon_same_mode", "recon. mode", "{:.3f}"),
    ("latent_kl_reverse", "KL(q(z)||p(z))", "{:.3f}"),
]


def command_for(config: dict[str, Any], out: str | os.PathLike) -> str:
    """The ``pyro-vigen train`` command that reproduces a run's settings.

    :param dict config: a run's ``config.json`` as a dict.
    :param out: the run directory the command writes to.
    :returns: the command as one line, shell-quoted: every setting not at its default
        (:func:`pyro_vigen.cli.train_argv`), so that the command trains the same run.

    Example::

        from pyro_vigen.infer import RunDir
        from pyro_vigen.report import command_for
        command_for(RunDir("runs/vae").read_config(), "runs/vae2")
        # "pyro-vigen train vae --hidden '' --likelihood normal ... --out runs/vae2"
    """
    return shlex.join([PROG, *train_argv(config), "--out", str(out)])


def _khat(record: RunRecord) -> np.ndarray | None:
    path = record.path / DIAGNOSTICS
    # Only a family with the vi_quality diagnostic has a k-hat.
    if "vi_quality" not in record.family.diagnostics or not path.is_file():
        return None
    import arviz

    idata = arviz.from_netcdf(path)
    for group in idata.groups():
        ds = idata[group]
        if "khat" in ds:
            return np.asarray(ds["khat"]).ravel()
    return None


#: Seed of the report's image panels: the codes of the decoder means, the data shown.
PANEL_SEED = 0
#: Data images in the data-and-reconstruction panel (rounded down to a multiple of the
#: number of classes, so that every class shows equally often).
PANEL_IMAGES = 32


def panel_rows(dataset: Dataset, n: int, *, seed: int = PANEL_SEED) -> torch.Tensor:
    """Rows of ``dataset`` for an image panel: a stratified sample, never the first rows.

    Data sets can be sorted by class (``mnist5k`` is), so their first rows may all show
    one digit. With labels the rows go round-robin over the classes in label order, each
    class's rows in a seeded random order: every class shows ``n // classes`` times or
    once more (fewer only where a class runs out). Without labels they are a seeded
    random sample.

    :param Dataset dataset: the data.
    :param int n: how many rows (all of them, permuted, when the data has fewer).
    :param int seed: seed of the random order.
    :returns: a ``(min(n, len(dataset)),)`` tensor of row indices.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.report.document import panel_rows
        digits = load_dataset("digits")
        digits.labels[panel_rows(digits, 20)]     # 0, 1, ..., 9, 0, 1, ..., 9
    """
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    if dataset.labels is None:
        return order[:n]
    classes, cls = torch.unique(dataset.labels[order], return_inverse=True)
    # A row's rank among its class's rows (in the random order); sorting by (rank,
    # class) deals the rows round-robin over the classes.
    rank = torch.empty_like(cls)
    for c in range(len(classes)):
        members = cls == c
        rank[members] = torch.arange(int(members.sum()))
    return order[torch.argsort(rank * len(classes) + cls)[:n]]


def _vae_image_panels(
    record: RunRecord, caption: str, dataset: Dataset
) -> tuple[tuple[str, bytes], list[tuple[str, bytes]]]:
    """A VAE's image panels: ``(decoder means, [draws, data and reconstructions])``.

    The decoder means are what a VAE's images look like without the likelihood's
    per-pixel noise (blurred where the posterior is uncertain); its draws add that noise.
    """
    likelihood = record.config["model"]["likelihood"]
    # The binarised Bernoulli sees (and draws) other images than the data's grey levels.
    binarised = "; Bernoulli on images binarised at 0.5" if likelihood == "bernoulli" else ""
    _, model = load_run(record.path)
    means = model.sample(64, generator=torch.Generator().manual_seed(PANEL_SEED), noise=False)
    means_caption = f"{caption}: decoder means (the blur), not draws{binarised}"
    draws_caption = f"{caption}: draws, decoder means plus the likelihood's noise{binarised}"

    num_classes = 0 if dataset.labels is None else len(dataset.labels.unique())
    rows = panel_rows(dataset, _panel_size(num_classes))
    x = model_data(dataset, likelihood)[rows]
    pairs = torch.stack([x, model.reconstruct(x)], 1).reshape(-1, *x.shape[1:])
    shown = f"{len(rows) // num_classes} per class" if num_classes else "a random sample"
    # With classes, one row of the grid holds one (data, reconstruction) pair per class.
    nrow = 2 * num_classes if num_classes else 8
    return (
        (means_caption, plots.image_grid(means, f"{caption}: decoder means")),
        [
            (draws_caption, plots.image_grid(record.samples[:64], f"{caption}: draws")),
            (
                f"{caption}: data (odd) and reconstruction (even), {shown}{binarised}",
                plots.image_grid(pairs, f"{caption}: reconstructions", nrow=nrow),
            ),
        ],
    )


def _panel_size(num_classes: int) -> int:
    """Data images in a reconstruction panel: :data:`PANEL_IMAGES` without classes; with
    ``num_classes`` classes, the largest multiple of ``num_classes`` up to
    :data:`PANEL_IMAGES` (at least one image per class)."""
    if not num_classes:
        return PANEL_IMAGES
    return max(1, PANEL_IMAGES // num_classes) * num_classes


def _first_seeds(records: list[RunRecord]) -> dict[str, RunRecord]:
    """Each configuration's run of the lowest seed, the one its figures show."""
    first: dict[str, RunRecord] = {}
    for r in records:
        if r.label not in first or r.seed < first[r.label].seed:
            first[r.label] = r
    return first


#: Data points drawn under the samples of a user's own data (a seeded random subset).
SCATTER_POINTS = 2000


def _user_points(records: list[RunRecord]) -> tuple[np.ndarray, str]:
    """The data points a user's own file holds, and where they came from.

    The file is read again from the path the runs recorded. Where it is gone (moved, or
    the report is written from another folder than the training was, and the path is
    relative), the points the diagnosis stored in ``diagnostics.nc`` stand in: a GAN's
    run keeps the data it was compared with, a VAE's the held-out points of its k-hat.
    """
    config = DataConfig.from_dict(records[0].config["data"])
    try:
        points = load_dataset(config, split="all").x.numpy()
        source = f"the {len(points)} points of {config.name}"
    except UserError:
        import arviz

        stored = []
        for r in records:
            path = r.path / DIAGNOSTICS
            if path.is_file():
                idata = arviz.from_netcdf(path)
                if "observed_data" in idata.groups():
                    stored.append(np.asarray(idata["observed_data"]["x"]))
        if not stored:
            raise UserError(
                f"{config.name}, the runs' data file, cannot be read and no run stores its "
                "points in diagnostics.nc; write the report from the folder the runs were "
                "trained in"
            ) from None
        points = max(stored, key=len)
        source = (
            f"{len(points)} of its points as stored in diagnostics.nc "
            f"({config.name} cannot be read from here)"
        )
    gen = np.random.default_rng(PANEL_SEED)
    if len(points) > SCATTER_POINTS:
        points = points[np.sort(gen.choice(len(points), SCATTER_POINTS, replace=False))]
    return points, source


def principal_axes(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data's mean and its first two principal axes, with their share of its variance.

    :param data: ``(N, D)`` points, ``D >= 2``.
    :returns: ``(mean (D,), axes (D, 2), variance share (2,))``; ``(x - mean) @ axes``
        projects points ``x`` onto the plane where the data spreads most.

    Example::

        import numpy as np
        from pyro_vigen.report.document import principal_axes
        x = np.random.default_rng(0).normal(size=(500, 5)) * [5, 2, 0.1, 0.1, 0.1]
        mean, axes, share = principal_axes(x)
        np.abs(axes[:2]).round(2)     # close to the identity: the first two coordinates
    """
    mean = data.mean(0)
    _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
    variance = singular**2
    return mean, vt[:2].T, variance[:2] / variance.sum()


def _limits(arrays: list[np.ndarray]) -> list[tuple[float, float]]:
    """Axis limits per coordinate shared by every panel: the 0.5 to 99.5 percentiles
    of the data and all samples, padded by a tenth, so that a few far-flung samples do
    not shrink the rest to a dot but samples off the data still show."""
    stacked = np.concatenate(arrays)
    lo, hi = np.percentile(stacked, [0.5, 99.5], axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-6)
    return list(zip(lo - pad, hi + pad, strict=True))


def _point_panels(
    first: dict[str, RunRecord], records: list[RunRecord], mixture
) -> tuple[list[tuple[str, bytes]], str]:
    """The first screen's panels for points: each configuration's samples over the data
    (its density where known), and a sentence saying what they show."""
    if mixture is not None and mixture.centers.shape[1] == 2:
        # The density's square, widened to the samples that fall off it.
        box = np.array(plots.mixture_box(mixture))
        spread = np.array(_limits([r.samples.numpy() for r in first.values()])).T
        limits = (np.minimum(box[0], spread[0]), np.maximum(box[1], spread[1]))
        panels = [
            (
                f"{label} (seed {r.seed})",
                plots.samples_over_density(
                    r.samples, mixture, f"{label} (seed {r.seed})", limits=limits
                ),
            )
            for label, r in first.items()
        ]
        return panels, (
            "Samples of each configuration (blue) over the data's density (grey contours), "
            "its modes marked with red + signs."
        )
    data, source = _user_points(records)
    samples = {f"{label} (seed {r.seed})": r.samples.numpy() for label, r in first.items()}
    dim = data.shape[1]
    if dim == 1:
        (limits,) = _limits([data, *samples.values()])
        panels = [
            (title, plots.samples_histogram(s[:, 0], data[:, 0], title, limits=limits))
            for title, s in samples.items()
        ]
        return panels, (
            f"Samples of each configuration (blue outline) against the data (grey): {source}, "
            "as histograms."
        )
    if dim == 2:
        labels = ("x1", "x2")
        what = f"Samples of each configuration (blue) over the data (grey): {source}."
    else:
        mean, axes, share = principal_axes(data)
        data = (data - mean) @ axes
        samples = {title: (s - mean) @ axes for title, s in samples.items()}
        labels = (f"PC1 ({share[0]:.0%} of variance)", f"PC2 ({share[1]:.0%})")
        what = (
            f"Samples of each configuration (blue) over the data (grey): {source}, "
            f"{dim}-dimensional, projected on the data's first two principal components "
            f"({share.sum():.0%} of the data's variance); samples off that plane land on it too."
        )
    limits = _limits([data, *samples.values()])
    panels = [
        (
            title,
            plots.samples_over_points(s, data, title, limits=limits, axis_labels=labels),
        )
        for title, s in samples.items()
    ]
    return panels, what


def _figures(
    records: list[RunRecord], summary: dict
) -> tuple[list[tuple[str, bytes]], str, list[dict[str, Any]]]:
    """The first screen's sample panels, the sentence above them, and the other figure
    sections: ``(panels, sentence, [{"title", "images": [(caption, png bytes)]}])``."""
    first = _first_seeds(records)
    by_label: dict[str, list[RunRecord]] = {}
    for r in records:
        by_label.setdefault(r.label, []).append(r)
    sections = [
        {
            "title": "Both KL directions",
            "images": [("mean and sd over seeds", plots.kl_chart(summary))],
        }
    ]
    data_config = DataConfig.from_dict(records[0].config["data"])
    if records[0].samples.dim() == 4:
        split = "holdout" if data_config.holdout > 0 else "all"
        dataset = load_dataset(data_config, split=split)
        # The VAEs' decoder means, then the GANs' samples: what each model shows at a
        # glance, side by side; the VAEs' draws and reconstructions further down.
        vae_means, gan_samples, vae_details = [], [], []
        for label, r in first.items():
            caption = f"{label} (seed {r.seed})"
            if r.family is VAE_FAMILY:
                means, details = _vae_image_panels(r, caption, dataset)
                vae_means.append(means)
                vae_details += details
            else:
                gan_samples.append(
                    (f"{caption}: samples", plots.image_grid(r.samples[:64], f"{caption}: samples"))
                )
        panels = vae_means + gan_samples
        what = (
            "Images of each configuration: the VAEs' decoder means (what the VAE draws "
            "before the likelihood's pixel noise), then the GANs' samples."
        )
        if vae_details:
            sections.append({"title": "VAE draws and reconstructions", "images": vae_details})
    else:
        dataset = load_dataset(data_config, split="all") if data_config.name in DATASETS else None
        mixture = None if dataset is None else dataset.mixture
        panels, what = _point_panels(first, records, mixture)
        if mixture is not None:
            from ..diagnostics import mode_coverage

            counts = []
            for label, r in first.items():
                cov = mode_coverage(r.samples, mixture.centers, mixture.std)
                caption = f"{label} (seed {r.seed})"
                counts.append(
                    (
                        f"{caption}: HQ samples per mode",
                        plots.mode_histogram(list(cov["counts"]), caption),
                    )
                )
            sections.append({"title": "High-quality samples per mode", "images": counts})
    sections.append(
        {
            "title": "Training curves",
            "images": [
                (label, plots.loss_curves([r.history for r in group], label))
                for label, group in by_label.items()
            ],
        }
    )
    khats = [(r, k) for r in records if (k := _khat(r)) is not None]
    if khats:
        sections.append(
            {
                "title": "VAE guide quality: PSIS k-hat",
                "images": [
                    (
                        "k-hat per data point (lines at 0.5 and 0.7)",
                        plots.khat_plot([k for _, k in khats], "VAE runs"),
                    )
                ],
            }
        )
    return panels, what, sections


#: Metrics that are divergences, never below zero: an estimate below zero is noise or bias.
DIVERGENCES = {
    "kl_forward",
    "kl_reverse",
    "joint_kl",
    "mode_kl",
    "jsd",
    "pack_jsd",
    "disc_kl_forward",
    "disc_kl_reverse",
}


def _interval(metrics: dict[str, Any], key: str) -> tuple[float, float] | None:
    """A metric's 95% interval, ``metrics[key + "_interval"]``, where one was computed."""
    value = metrics.get(f"{key}_interval")
    if not isinstance(value, (list, tuple)) or len(value) != 2 or None in value:
        return None
    return float(value[0]), float(value[1])


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction >= 0.01 else f"{100 * fraction:.1g}%"


def _estimate(metrics: dict[str, Any], key: str, spec: str) -> dict[str, Any]:
    """A run's metric as printed: ``{"value", "details", "flag"}``.

    The value is blank where the run has none and ``n/a`` where it has one that is
    undefined (null in metrics.json, e.g. a degenerate feature KL: see its ``kl_note``).
    The details are its 95% interval, where one was computed, and for a divergence below
    zero whether that is within noise of 0 (the interval covers 0) or not (flagged:
    then the estimator is biased, or its interval too narrow).
    """
    value = metrics.get(key)
    if value is None:
        return {"value": "n/a" if key in metrics else "", "details": [], "flag": False}
    details, flag = [], False
    interval = _interval(metrics, key)
    if interval is not None:
        details.append(f"[{spec.format(interval[0])}, {spec.format(interval[1])}]")
    if key in DIVERGENCES and value < 0:
        if interval is not None and interval[1] >= 0:
            details.append("below zero: within noise of 0")
        else:
            flag = True
            details.append(
                "below zero beyond noise: biased"
                if interval is not None
                else "below zero (no interval)"
            )
    return {"value": spec.format(value), "details": details, "flag": flag}


def _khat_flag(cell: dict[str, Any], runs: list[RunRecord]) -> dict[str, Any]:
    """The mean k-hat's cell, flagged with the share of points above 0.7 where some run
    has any (also where the mean itself is undefined: an infinite k-hat)."""
    over = [r.metrics.get("khat_frac_over_0_7") or 0.0 for r in runs]
    if max(over, default=0.0) > 0:
        lo, hi = _percent(min(over)), _percent(max(over))
        share = hi if lo == hi else f"{lo} to {hi}"
        cell = {**cell, "details": [*cell["details"], f"{share} of points above 0.7"], "flag": True}
    return cell


def _cell(record: RunRecord, key: str, spec: str) -> dict[str, Any]:
    """A cell of the per-run table (see :func:`_estimate` and :func:`_khat_flag`)."""
    cell = _estimate(record.metrics, key, spec)
    return _khat_flag(cell, [record]) if key == "khat_mean" else cell


def _summary_cell(group: list[RunRecord], key: str, spec: str) -> dict[str, Any]:
    """A configuration's metric over its seeds: the mean, and the lowest and highest seed.

    With one seed it is that run's cell (with its interval). Over seeds, the range of
    the seeds' estimates shows how much training varies; each run's own interval (the
    estimator's noise) is in the per-run table. A divergence whose mean is below zero is
    flagged unless some seed's estimate, or its interval, reaches 0.
    """
    # The runs that summarise() pools: those with a finite number.
    runs = [r for r in group if key in numeric_metrics(r)]
    if len(runs) <= 1:
        # One seed, or none with a number: "n/a" where some run has the key (null).
        cell = _estimate(runs[0].metrics if runs else _null_if_any(group, key), key, spec)
    else:
        values = [float(r.metrics[key]) for r in runs]
        mean = float(np.mean(values))
        lo, hi = spec.format(min(values)), spec.format(max(values))
        cell = {"value": spec.format(mean), "details": [] if lo == hi else [f"{lo} to {hi}"]}
        cell["flag"] = False
        if key in DIVERGENCES and mean < 0:
            reach = max(
                (_interval(r.metrics, key) or (float(r.metrics[key]),) * 2)[1] for r in runs
            )
            cell["flag"] = reach < 0
            cell["details"].append(
                "below zero beyond noise" if reach < 0 else "below zero: within noise of 0"
            )
    return _khat_flag(cell, group) if key == "khat_mean" else cell


def _null_if_any(group: list[RunRecord], key: str) -> dict[str, Any]:
    """``{key: None}`` where some run has the key undefined, else ``{}``."""
    return {key: None} if any(key in r.metrics for r in group) else {}


def _markdown_cell(cell: dict[str, Any]) -> str:
    """A cell on one line: ``0.83 [0.79, 0.87] (note; note)``."""
    bracketed = [d for d in cell["details"] if d.startswith("[")]
    notes = [d for d in cell["details"] if not d.startswith("[")]
    return " ".join([cell["value"], *bracketed, *([f"({'; '.join(notes)})"] if notes else [])])


def _khat_warnings(records: list[RunRecord]) -> list[str]:
    """A sentence per run whose k-hat passes 0.7 at some points."""
    # Imported here: the diagnostics' estimators (scipy) load only when a report is written.
    from ..diagnostics.run import khat_warning

    return [
        f"{r.label}, seed {r.seed}: {warning}."
        for r in records
        if (warning := khat_warning(r.metrics)) is not None
    ]


def _run_names(records: list[RunRecord]) -> tuple[str, list[str]]:
    """The folder the runs share, and each run's path below it (the short name the
    per-run table shows; the full paths are in the reproducibility section)."""
    paths = [r.path.resolve() for r in records]
    if len(paths) == 1:
        return str(records[0].path.parent), [records[0].path.name]
    root = Path(os.path.commonpath(paths))
    names = [str(p.relative_to(root)) if p != root else p.name for p in paths]
    shown = os.path.relpath(root) if not records[0].path.is_absolute() else str(root)
    return shown, names


_ROLE_NAMES = {
    "vae": "VAE",
    "classic": "classic GAN",
    "data_prior": "data prior",
    "ablation": "ablation",
}


def _claim_rows(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The claims table: verdict, and per seed the numbers behind it in words."""
    rows = []
    for claim in claims:
        seeds, failures = [], []
        for s in claim["seeds"]:
            numbers = ", ".join(
                f"{_ROLE_NAMES[name.split('.')[0]]} {name.split('.')[1]} {value:.3g}"
                for name, value in s["numbers"].items()
            )
            seeds.append(f"seed {s['seed']} {'held' if s['held'] else 'FAILED'}: {numbers}")
            if not s["held"]:
                failures.append(f"seed {s['seed']} ({numbers})")
        checked = claim["seeds_checked"]
        rows.append(
            {
                "key": claim["key"],
                "text": claim["text"],
                "verdict": f"{claim['seeds_held']} of {checked} seeds"
                if checked
                else "not checked (needs the four compare configurations on data with known modes)",
                "held": checked > 0 and claim["seeds_held"] == checked,
                "seeds": seeds,
                "failures": failures,
            }
        )
    return rows


def write_report(
    paths: list[str | os.PathLike], out: str | os.PathLike, *, title: str = "pyro_vigen report"
) -> Path:
    """Write the report of every run under ``paths`` to ``out`` (HTML) and ``out``.md.

    The HTML embeds its figures as PNG data, so it is one file with no external assets;
    the Markdown twin references the same figures saved in ``<out stem>_files/``.

    :raises ValueError: no runs, or runs that are half-written or never diagnosed.
    :returns: the HTML file's path.
    :param list paths: run directories, or folders holding them.
    :param out: the HTML file to write (must end in ``.html``).
    :param str title: the report's title.

    Example::

        from pyro_vigen.report import write_report
        write_report(["runs/compare"], "runs/compare/ring8.html", title="ring8, one seed")
        # PosixPath('runs/compare/ring8.html'), plus runs/compare/ring8.md and its figures
    """
    out = Path(out)
    if out.suffix.lower() != ".html":
        raise UserError(f"out must name an .html file, got {out}", field="out")
    records = sorted(read_runs(list(paths)), key=lambda r: (r.label, r.seed, str(r.path)))
    summary = summarise(records)
    claims = _claim_rows(check_claims(records))
    columns = [c for c in COLUMNS if any(c[0] in r.metrics for r in records)]
    panels, samples_text, sections = _figures(records, summary)

    root, names = _run_names(records)
    rows = [
        {
            "run": name,
            "path": str(r.path),
            "config": r.label,
            "seed": r.seed,
            "steps": r.config["train"]["steps"],
            "cells": [_cell(r, key, spec) for key, _, spec in columns],
        }
        for r, name in zip(records, names, strict=True)
    ]
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.label, []).append(r)
    summary_rows = [
        {
            "config": label,
            "n": max((m["n"] for m in stats.values()), default=0),
            "cells": [_summary_cell(groups[label], key, spec) for key, _, spec in columns],
        }
        for label, stats in summary.items()
    ]
    for row in rows + summary_rows:
        row["md_cells"] = [_markdown_cell(c) for c in row["cells"]]
    context = {
        "title": title,
        "claims": claims if any(c["seeds"] for c in claims) else [],
        "dataset": records[0].config["data"]["name"],
        "headers": [name for _, name, _ in columns],
        # "KL(data||model)" may break after its bars: the narrow columns keep the table in the page.
        "html_headers": [Markup("||<wbr>").join(name.split("||")) for _, name, _ in columns],
        "rows": rows,
        "runs_root": root,
        "summary_rows": summary_rows,
        "warnings": _khat_warnings(records),
        "methods": sorted({str(r.metrics.get("kl_method")) for r in records}),
        # Each run's "<estimates>: <method>; ...", the parts that several runs share once.
        "interval_methods": list(
            dict.fromkeys(
                part
                for r in records
                if r.metrics.get("interval_method")
                for part in str(r.metrics["interval_method"]).split("; ")
            )
        ),
        "samples_text": samples_text,
        "commands": [command_for(r.config, r.path) for r in records],
        "configs": [(str(r.path), json.dumps(r.config, indent=2, sort_keys=True)) for r in records],
        "versions": {
            "pyro_vigen": __version__,
            "python": platform.python_version(),
            **records[0].config.get("versions", {}),
        },
        "seeds": sorted({r.seed for r in records}),
    }

    files_dir = out.with_name(out.stem + "_files")
    files_dir.mkdir(parents=True, exist_ok=True)
    html_sections, md_sections = [], []
    # The sample panels are figure group 0, the first screen; the sections follow.
    for i, section in enumerate([{"title": "Samples", "images": panels}, *sections]):
        html_images, md_images = [], []
        for j, (caption, png) in enumerate(section["images"]):
            name = f"fig{i:02d}_{j:02d}.png"
            atomic_write(files_dir / name, png)
            html_images.append((caption, base64.b64encode(png).decode("ascii")))
            md_images.append((caption, f"{files_dir.name}/{name}"))
        html_sections.append({"title": section["title"], "images": html_images})
        md_sections.append({"title": section["title"], "images": md_images})

    env = jinja2.Environment(
        autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined
    )
    html = env.from_string(_HTML).render(
        samples=html_sections[0], sections=html_sections[1:], **context
    )
    atomic_write(out, html)
    md_env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    atomic_write(
        out.with_suffix(".md"),
        md_env.from_string(_MARKDOWN).render(
            samples=md_sections[0], sections=md_sections[1:], **context
        ),
    )
    return out


# A table cell (the macro): the estimate, then its interval and notes on lines of their own.
_HTML = """{% macro cell(c) %}<td{% if c.flag %} class="flag"{% endif %}>{{ c.value }}{% for d in c.details %}<span class="detail">{{ d }}</span>{% endfor %}</td>{% endmacro %}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 16px; max-width: 1100px; color: #222; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 12px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: top; }
/* Run paths may break anywhere, so that the per-run table wraps within the page. */
td.path { overflow-wrap: anywhere; min-width: 7em; }
th:first-child, td:first-child, td.config { text-align: left; }
tr.group th { text-align: left; background: #f3f3f3; }
td.flag { background: #fde8e8; }
.detail { display: block; color: #666; font-size: 11px; }
figure { display: inline-block; margin: 6px; vertical-align: top; max-width: 100%; }
figcaption { font-size: 12px; color: #555; max-width: 420px; }
#samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 8px; }
#samples figure { margin: 0; }
#samples img { width: 100%; }
#claims th, #claims td { text-align: left; }
tr.failed td { background: #fde8e8; }
.warning { color: #a00; font-weight: bold; }
ul.warnings { color: #a00; font-size: 14px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
</style></head>
<body>
<h1>{{ title }}</h1>
<p>Data: <b>{{ dataset }}</b>; seeds {{ seeds | join(", ") }}. {{ samples_text }}</p>
<div id="samples">{% for caption, data in samples.images %}<figure><img alt="{{ caption }}" src="data:image/png;base64,{{ data }}"><figcaption>{{ caption }}</figcaption></figure>{% endfor %}</div>
{% if claims %}<h2>The theory's claims, seed by seed</h2>
<p>The VAE minimises a KL with the model in the second slot (forward, mode covering): it should
have the lower forward KL. The GAN's generator minimises one with the model in the first slot
(reverse, mode seeking): sharper samples (higher HQ fraction) but possibly dropped modes. The
data prior adds a proximal penalty that acts only with two or more generator steps per
snapshot; compare it with the ablation that has the same steps and no penalty.</p>
<table id="claims"><thead><tr><th>claim</th><th>held in</th><th>the numbers behind it</th></tr></thead>
<tbody>{% for c in claims %}<tr class="{{ 'held' if c.held else 'failed' }}"><td class="config">({{ c.key }}) {{ c.text }}</td><td>{{ c.verdict }}</td><td class="config">{% for s in c.seeds %}{{ s }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>{% endfor %}</tbody></table>
{% for c in claims if c.failures %}<p class="warning">Claim ({{ c.key }}) failed in {{ c.failures | length }} of {{ c.seeds | length }} seeds: {{ c.failures | join("; ") }}.</p>
{% endfor %}{% endif %}<h2>The numbers</h2>
<p>KL estimated by {{ methods | join(", ") }}.{% if interval_methods %} Intervals (95%, in brackets under an estimate): {{ interval_methods | join("; ") }}.{% endif %}</p>
{% if warnings %}<ul class="warnings">{% for w in warnings %}<li>{{ w }}</li>{% endfor %}</ul>
{% endif %}<h3>Per configuration: mean over seeds, and the lowest and highest seed</h3>
<table id="summary"><thead><tr><th>configuration</th><th>runs</th>{% for h in html_headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in summary_rows %}<tr><td class="config">{{ row.config }}</td><td>{{ row.n }}</td>{% for c in row.cells %}{{ cell(c) }}{% endfor %}</tr>{% endfor %}</tbody></table>
<h3>Per run (under {{ runs_root }})</h3>
<table id="runs"><thead><tr><th>run</th><th>seed</th><th>steps</th>{% for h in html_headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in rows %}{% if loop.first or row.config != loop.previtem.config %}<tr class="group"><th colspan="{{ headers | length + 3 }}">{{ row.config }}</th></tr>{% endif %}<tr class="run-row"><td class="path" title="{{ row.path }}">{{ row.run }}</td><td>{{ row.seed }}</td><td>{{ row.steps }}</td>{% for c in row.cells %}{{ cell(c) }}{% endfor %}</tr>{% endfor %}</tbody></table>
{% for section in sections %}<h2>{{ section.title }}</h2>
{% for caption, data in section.images %}<figure><img alt="{{ caption }}" src="data:image/png;base64,{{ data }}"><figcaption>{{ caption }}</figcaption></figure>
{% endfor %}{% endfor %}
<h2>Reproducibility</h2>
<p>Library versions: {% for k, v in versions.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>
<pre>{% for c in commands %}{{ c }}
{% endfor %}</pre>
{% for path, cfg in configs %}<details><summary>{{ path }}/config.json</summary><pre>{{ cfg }}</pre></details>
{% endfor %}</body></html>
"""

_MARKDOWN = """# {{ title }}

Data: **{{ dataset }}**; seeds {{ seeds | join(", ") }}. {{ samples_text }}

{% for caption, path in samples.images %}![{{ caption }}]({{ path }})
{% endfor %}{% if claims %}
## The theory's claims, seed by seed

| claim | held in | the numbers behind it |
|---|---|---|
{% for c in claims %}| ({{ c.key }}) {{ c.text }} | {{ c.verdict }} | {{ c.seeds | join("<br>") }} |
{% endfor %}{% for c in claims if c.failures %}
**Claim ({{ c.key }}) failed in {{ c.failures | length }} of {{ c.seeds | length }} seeds:** {{ c.failures | join("; ") }}.
{% endfor %}{% endif %}
## The numbers

KL estimated by {{ methods | join(", ") }}.{% if interval_methods %} Intervals (95%, in brackets): {{ interval_methods | join("; ") }}.{% endif %}
{% for w in warnings %}
**Warning:** {{ w }}
{% endfor %}
### Per configuration: mean over seeds, and the lowest and highest seed

| configuration | runs |{% for h in headers %} {{ h }} |{% endfor %}
|---|---|{% for h in headers %}---|{% endfor %}
{% for row in summary_rows %}| {{ row.config }} | {{ row.n }} |{% for c in row.md_cells %} {{ c }} |{% endfor %}
{% endfor %}
### Per run

| run | configuration | seed | steps |{% for h in headers %} {{ h }} |{% endfor %}
|---|---|---|---|{% for h in headers %}---|{% endfor %}
{% for row in rows %}| {{ row.path }} | {{ row.config }} | {{ row.seed }} | {{ row.steps }} |{% for c in row.md_cells %} {{ c }} |{% endfor %}
{% endfor %}
{% for section in sections %}## {{ section.title }}

{% for caption, path in section.images %}![{{ caption }}]({{ path }})
{% endfor %}
{% endfor %}## Reproducibility

Library versions: {% for k, v in versions.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}.

```
{% for c in commands %}{{ c }}
{% endfor %}```
"""
