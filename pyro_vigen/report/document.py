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

from .. import __version__
from ..data import DataConfig, load_dataset
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
    for label, group in by_label.items():
        r = min(group, key=lambda g: g.seed)
        caption = f"{label} (seed {r.seed})"
        if dataset.mixture is not None and r.samples.shape[1:] == (2,):
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
        elif r.samples.dim() == 4:
            sample_images.append(
                (f"{caption}: samples", plots.image_grid(r.samples[:64], f"{caption}: samples"))
            )
            if r.kind == "vae":
                _, model = load_run(r.path)
                x = dataset.x[:32]
                if model.config.likelihood == "bernoulli":
                    x = (x > 0.5).to(x.dtype)
                pairs = np.stack([x.numpy(), model.reconstruct(x).numpy()], 1).reshape(
                    -1, *x.shape[1:]
                )
                import torch

                sample_images.append(
                    (
                        f"{caption}: data (odd) and reconstruction (even)",
                        plots.image_grid(torch.from_numpy(pairs), f"{caption}: reconstructions"),
                    )
                )
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
            "cells": [_fmt(r.metrics.get(key), spec) for key, _, spec in columns],
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
