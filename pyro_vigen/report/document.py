"""The diagnostic report: one self-contained HTML file and its Markdown twin."""

from __future__ import annotations

import base64
import json
import os
import platform
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import torch

from .. import __version__
from ..data import DataConfig, Dataset, load_dataset
from ..infer import load_run
from ..infer.run import DIAGNOSTICS
from . import plots
from .claims import check_claims
from .runs import RunRecord, read_runs, summarise

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
]

# Settings that the command line sets under another name or not at all.
_FLAGS = {"data.name": "--data", "data.seed": "--data-seed"}
_NO_FLAG = {
    "model.data_shape",
    "model.activation",
    "train.num_saved_samples",
    "train.device",
    "train.betas_disc",
    "train.betas_gen",
    "train.jit",  # a speed setting: compiled and uncompiled runs give the same numbers
}


def command_for(config: dict[str, Any], out: str | os.PathLike) -> str:
    """The ``pyro-vigen train`` command that reproduces a run's settings.

    :param dict config: a run's ``config.json`` as a dict.
    :param out: the run directory the command writes to.
    :returns: the command as one line (values are not shell-quoted).

    Example::

        from pyro_vigen.infer import RunDir
        from pyro_vigen.report import command_for
        command_for(RunDir("runs/vae").read_config(), "runs/vae2")
        # 'pyro-vigen train vae --holdout 0.1 --data ring8 ... --steps 200 --out runs/vae2'
    """
    parts = ["pyro-vigen", "train", config["kind"]]
    for section in ("data", "model", "train"):
        for key, value in config[section].items():
            name = f"{section}.{key}"
            if value is None or name in _NO_FLAG:
                continue
            flag = _FLAGS.get(name, "--" + key.replace("_", "-"))
            if isinstance(value, bool):
                parts += [flag] if value else []
                continue
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            parts += [flag, str(value)]
    return " ".join([*parts, "--out", str(out)])


def _khat(record: RunRecord) -> np.ndarray | None:
    path = record.path / DIAGNOSTICS
    if record.kind != "vae" or not path.is_file():
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
    from ..infer.vae_training import model_data

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


def _figures(records: list[RunRecord], summary: dict) -> list[dict[str, Any]]:
    """Figure sections: ``{"title", "images": [(caption, png bytes)]}``."""
    sections = [
        {
            "title": "Both KL directions",
            "images": [("mean and sd over seeds", plots.kl_chart(summary))],
        }
    ]
    by_label: dict[str, list[RunRecord]] = {}
    for r in records:
        by_label.setdefault(r.label, []).append(r)

    first = records[0]
    data_config = DataConfig.from_dict(first.config["data"])
    dataset = load_dataset(data_config, split="holdout" if data_config.holdout > 0 else "all")
    sample_images = []
    # Image panels: the VAEs' decoder means, then the GANs' samples (what each model
    # shows at a glance, side by side), then the VAEs' draws and reconstructions.
    vae_means, gan_samples, vae_details = [], [], []
    for label, group in by_label.items():
        r = min(group, key=lambda g: g.seed)
        caption = f"{label} (seed {r.seed})"
        if r.samples.dim() == 4 and r.kind == "vae":
            means, details = _vae_image_panels(r, caption, dataset)
            vae_means.append(means)
            vae_details += details
        elif r.samples.dim() == 4:
            gan_samples.append(
                (f"{caption}: samples", plots.image_grid(r.samples[:64], f"{caption}: samples"))
            )
        elif dataset.mixture is not None and r.samples.shape[1:] == (2,):
            from ..diagnostics import mode_coverage

            sample_images.append(
                (caption, plots.samples_over_density(r.samples, dataset.mixture, caption))
            )
            cov = mode_coverage(r.samples, dataset.mixture.centers, dataset.mixture.std)
            sample_images.append(
                (
                    f"{caption}: HQ samples per mode",
                    plots.mode_histogram(list(cov["counts"]), caption),
                )
            )
    sample_images += vae_means + gan_samples + vae_details
    if sample_images:
        sections.append({"title": "Samples", "images": sample_images})
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
    return sections


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else spec.format(value)


def _cell(metrics: dict[str, Any], key: str, spec: str) -> str:
    """A run's metric as printed: blank where the run has none, ``n/a`` where it has one
    that is undefined (null in metrics.json, e.g. a degenerate feature KL: see its
    ``kl_note``)."""
    if key in metrics and metrics[key] is None:
        return "n/a"
    return _fmt(metrics.get(key), spec)


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
        raise ValueError(f"--out must name an .html file, got {out}")
    records = sorted(read_runs(list(paths)), key=lambda r: (r.label, r.seed, str(r.path)))
    summary = summarise(records)
    claims = _claim_rows(check_claims(records))
    columns = [c for c in COLUMNS if any(c[0] in r.metrics for r in records)]
    sections = _figures(records, summary)

    rows = [
        {
            "run": str(r.path),
            "config": r.label,
            "seed": r.seed,
            "steps": r.config["train"]["steps"],
            "cells": [_cell(r.metrics, key, spec) for key, _, spec in columns],
        }
        for r in records
    ]
    summary_rows = [
        {
            "config": label,
            "n": max((m["n"] for m in stats.values()), default=0),
            "cells": [
                f"{spec.format(stats[key]['mean'])} ± {spec.format(stats[key]['sd'])}"
                if key in stats
                # Undefined (null) in every run of the configuration that has it.
                else "n/a"
                if any(r.label == label and _cell(r.metrics, key, spec) == "n/a" for r in records)
                else ""
                for key, _, spec in columns
            ],
        }
        for label, stats in summary.items()
    ]
    context = {
        "title": title,
        "claims": claims if any(c["seeds"] for c in claims) else [],
        "dataset": records[0].config["data"]["name"],
        "headers": [name for _, name, _ in columns],
        "rows": rows,
        "summary_rows": summary_rows,
        "methods": sorted({str(r.metrics.get("kl_method")) for r in records}),
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
    for i, section in enumerate(sections):
        html_images, md_images = [], []
        for j, (caption, png) in enumerate(section["images"]):
            name = f"fig{i:02d}_{j:02d}.png"
            (files_dir / name).write_bytes(png)
            html_images.append((caption, base64.b64encode(png).decode("ascii")))
            md_images.append((caption, f"{files_dir.name}/{name}"))
        html_sections.append({"title": section["title"], "images": html_images})
        md_sections.append({"title": section["title"], "images": md_images})

    env = jinja2.Environment(
        autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined
    )
    _atomic_write(out, env.from_string(_HTML).render(sections=html_sections, **context))
    md_env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    _atomic_write(
        out.with_suffix(".md"),
        md_env.from_string(_MARKDOWN).render(sections=md_sections, **context),
    )
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child, td.config { text-align: left; }
figure { display: inline-block; margin: 6px; vertical-align: top; }
figcaption { font-size: 12px; color: #555; max-width: 420px; }
#claims th, #claims td { text-align: left; vertical-align: top; }
tr.failed td { background: #fde8e8; }
p.warning { color: #a00; font-weight: bold; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
</style></head>
<body>
<h1>{{ title }}</h1>
<p>Data: <b>{{ dataset }}</b>; seeds {{ seeds | join(", ") }}; KL estimated by {{ methods | join(", ") }}.
The VAE minimises a KL with the model in the second slot (forward, mode covering): it should
have the lower forward KL. The GAN's generator minimises one with the model in the first slot
(reverse, mode seeking): sharper samples (higher HQ fraction) but possibly dropped modes. The
data prior adds a proximal penalty that acts only with two or more generator steps per
snapshot; compare it with the ablation that has the same steps and no penalty.</p>
{% if claims %}<h2>The theory's claims, seed by seed</h2>
<table id="claims"><thead><tr><th>claim</th><th>held in</th><th>the numbers behind it</th></tr></thead>
<tbody>{% for c in claims %}<tr class="{{ 'held' if c.held else 'failed' }}"><td class="config">({{ c.key }}) {{ c.text }}</td><td>{{ c.verdict }}</td><td class="config">{% for s in c.seeds %}{{ s }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>{% endfor %}</tbody></table>
{% for c in claims if c.failures %}<p class="warning">Claim ({{ c.key }}) failed in {{ c.failures | length }} of {{ c.seeds | length }} seeds: {{ c.failures | join("; ") }}.</p>
{% endfor %}{% endif %}<h2>Per configuration (mean ± sd over seeds)</h2>
<table id="summary"><thead><tr><th>configuration</th><th>runs</th>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in summary_rows %}<tr><td class="config">{{ row.config }}</td><td>{{ row.n }}</td>{% for c in row.cells %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>
<h2>Per run</h2>
<table id="runs"><thead><tr><th>run</th><th>configuration</th><th>seed</th><th>steps</th>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in rows %}<tr class="run-row"><td>{{ row.run }}</td><td class="config">{{ row.config }}</td><td>{{ row.seed }}</td><td>{{ row.steps }}</td>{% for c in row.cells %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>
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

Data: **{{ dataset }}**; seeds {{ seeds | join(", ") }}; KL estimated by {{ methods | join(", ") }}.
{% if claims %}
## The theory's claims, seed by seed

| claim | held in | the numbers behind it |
|---|---|---|
{% for c in claims %}| ({{ c.key }}) {{ c.text }} | {{ c.verdict }} | {{ c.seeds | join("<br>") }} |
{% endfor %}{% for c in claims if c.failures %}
**Claim ({{ c.key }}) failed in {{ c.failures | length }} of {{ c.seeds | length }} seeds:** {{ c.failures | join("; ") }}.
{% endfor %}{% endif %}
## Per configuration (mean ± sd over seeds)

| configuration | runs |{% for h in headers %} {{ h }} |{% endfor %}
|---|---|{% for h in headers %}---|{% endfor %}
{% for row in summary_rows %}| {{ row.config }} | {{ row.n }} |{% for c in row.cells %} {{ c }} |{% endfor %}
{% endfor %}
## Per run

| run | configuration | seed | steps |{% for h in headers %} {{ h }} |{% endfor %}
|---|---|---|---|{% for h in headers %}---|{% endfor %}
{% for row in rows %}| {{ row.run }} | {{ row.config }} | {{ row.seed }} | {{ row.steps }} |{% for c in row.cells %} {{ c }} |{% endfor %}
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
