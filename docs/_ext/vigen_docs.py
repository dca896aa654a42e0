"""Local Sphinx directives of the pyro_vigen docs.

``.. cli-help::`` renders the ``--help`` text of every ``pyro-vigen`` command and
sub-command straight from :func:`pyro_vigen.cli.build_parser`, so the CLI reference
cannot drift from the code.

``.. benchmark-results::`` renders ``benchmarks/results.json`` (written by
``make bench``) as a table when the file exists, and a note saying how to produce it
when it does not. It never invents numbers.

``.. pacgan-protocol::`` renders ``benchmarks/pacgan_protocol.json`` (written by
``benchmarks/pacgan_protocol.py``) the same way: our rows beside the published ones of
PacGAN's Table 1, the budget used, the goals and the deviations from the reference code.

``.. stacked-modes::`` renders ``benchmarks/stacked_modes.json`` (written by
``benchmarks/stacked_modes.py``) the same way: our rows on stacked digits beside the
published rows on stacked MNIST, the budget used, the labeller's held-out accuracy and
how the runs differ from the published experiments.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            # choices keeps insertion order; aliases would repeat a parser, so dedupe.
            seen, out = set(), []
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    out.append((name, sub))
            return out
    return []


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]):
    yield path, parser
    for name, sub in _subparsers(parser):
        yield from _walk(sub, path + (name,))


class CliHelp(SphinxDirective):
    """Emit one section per command: a title and its ``format_help()`` as a literal block."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from pyro_vigen.cli import build_parser

        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"  # stable wrapping, independent of the terminal
        try:
            parser = build_parser()
            result: list[nodes.Node] = []
            for path, sub in _walk(parser, ("pyro-vigen",)):
                title = " ".join(path)
                section = nodes.section(ids=[nodes.make_id("cli " + title)])
                section += nodes.title(text=title)
                text = sub.format_help().rstrip()
                block = nodes.literal_block(text, text)
                block["language"] = "text"
                section += block
                result.append(section)
        finally:
            if old is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = old
        self.env.note_dependency(str(ROOT / "pyro_vigen" / "cli.py"))
        return result


def _ratio(value, base) -> str:
    return f"{value / base:.2f}" if isinstance(value, (int, float)) and base else ""


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _load_json(directive: SphinxDirective, name: str, how: str) -> dict | nodes.Node:
    """``benchmarks/<name>`` read (the build depends on it), or a note saying how to make it."""
    path = ROOT / "benchmarks" / name
    directive.env.note_dependency(str(path))
    if not path.exists():
        para = nodes.paragraph(
            text=f"benchmarks/{name} does not exist in this checkout: run {how} and rebuild "
            "the docs to see the numbers here."
        )
        return nodes.note("", para)
    return json.loads(path.read_text())


class _BenchmarkJson(SphinxDirective):
    """A directive that renders ``benchmarks/<json_name>``, or says how to make it."""

    has_content = False
    json_name: str  # the file under benchmarks/
    how: str  # the command that writes it, for the note when it is missing

    def run(self) -> list[nodes.Node]:
        data = _load_json(self, self.json_name, self.how)
        return [data] if isinstance(data, nodes.Node) else self.render(data)

    def render(self, data: dict) -> list[nodes.Node]:
        raise NotImplementedError


def _machine_text(budget: dict) -> str:
    """The machine and date of a benchmark's ``budget``, for its budget paragraph."""
    machine = budget.get("machine", {})
    return (
        f"{machine.get('cpus', '?')} CPU core(s) ({machine.get('workers', '?')} runs "
        f"at a time, {machine.get('torch_threads_per_run', '?')} torch thread each, "
        f"device {machine.get('device', '?')}), {budget.get('date', '')}"
    )


def _filled(parent: nodes.Element, child: type[nodes.Element], texts) -> nodes.Element:
    """``parent`` given one ``child`` per text, each holding its text as a paragraph."""
    for text in texts:
        item = child()
        item += nodes.paragraph(text=text)
        parent += item
    return parent


def _bullets(texts) -> nodes.bullet_list:
    """A bullet list of text paragraphs."""
    return _filled(nodes.bullet_list(), nodes.list_item, texts)


class BenchmarkResults(_BenchmarkJson):
    """Render benchmarks/results.json as a table, or say how to produce it."""

    json_name, how = "results.json", "`make bench`"

    def render(self, data: dict) -> list[nodes.Node]:
        header = [
            "benchmark", "ours", "stock Pyro", "baseline", "ratio", "stock ratio", "unit", "goal",
            "result",
        ]  # fmt: skip
        rows = []
        for name, r in data.get("results", {}).items():
            ours, stock, base = r.get("ours"), r.get("stock_pyro"), r.get("baseline")
            rows.append(
                [
                    name,
                    _fmt(ours),
                    _fmt(stock),
                    _fmt(base),
                    _ratio(ours, base),
                    _ratio(stock, base),
                    _fmt(r.get("unit", "")),
                    _fmt(r.get("goal", "")),
                    _fmt(r.get("ok", "")),
                ]
            )
        out: list[nodes.Node] = [_table(header, rows)]
        machine = data.get("machine")
        if machine:
            desc = ", ".join(f"{k}: {v}" for k, v in machine.items())
            out.append(nodes.paragraph(text=f"Machine of these numbers: {desc}."))
        return out


def _table(header: list[str], rows: list[list[str]]) -> nodes.table:
    """A docutils table of text cells."""
    table = nodes.table()
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    thead, tbody = nodes.thead(), nodes.tbody()
    group += thead
    group += tbody
    thead += _filled(nodes.row(), nodes.entry, header)
    for r in rows:
        tbody += _filled(nodes.row(), nodes.entry, r)
    return table


def _spread(stats: dict, spec: str, key: str, scale: float = 1.0) -> str:
    """``mean +- stats[key]`` (the mean alone where there is no spread)."""
    if stats.get("mean") is None:
        return ""
    text = format(stats["mean"] * scale, spec)
    spread = stats.get(key)
    return text if spread is None else f"{text} ± {format(spread * scale, spec)}"


def _ours(row: dict, source: str, metrics: list[tuple[str, str, float]]) -> list[str]:
    """The table row of one of our rows: label, source, runs (and failures), mean ± sd.

    :param metrics: (key, format spec, scale) of each metric column.
    """
    failed = f", {len(row['failed'])} failed" if row["failed"] else ""
    return [
        row["label"],
        source,
        f"{row['modes']['n']}{failed}",
        *(_spread(row[key], spec, "sd", scale) for key, spec, scale in metrics),
    ]


class PacganProtocol(_BenchmarkJson):
    """Render benchmarks/pacgan_protocol.json: our rows beside PacGAN's published Table 1."""

    json_name = "pacgan_protocol.json"
    how = "`python benchmarks/pacgan_protocol.py` (see above)"

    def render(self, data: dict) -> list[nodes.Node]:
        budget = data["budget"]
        out: list[nodes.Node] = [
            nodes.paragraph(
                text=f"Budget of these numbers: {budget['epochs']:g} epochs "
                f"({budget['iterations']:,} iterations; the protocol's is "
                f"{data['protocol']['epochs']}), {budget['seeds']} seed(s) per row (the "
                f"paper's: {data['protocol']['trials']} trials), "
                f"{'the full protocol' if budget['full_protocol'] else 'not the full protocol'}; "
                f"{_train_hours(budget)} h of training in all (runs extended by a later call "
                f"count their earlier training too), on {_machine_text(budget)}."
            )
        ]
        header = ["row", "source", "runs", "modes", "high quality %", "reverse KL"]
        columns = [("modes", ".1f", 1.0), ("hq", ".1f", 100.0), ("reverse_kl", ".2f", 1.0)]
        published = data["published"]
        for name in budget["datasets"]:
            rows = [
                _ours(row, "ours, mean ± sd", columns)
                for row in data["ours"].get(name, {}).values()
            ]
            for label, metrics in published.get(name, {}).items():
                rows.append(
                    [
                        label,
                        "Lin et al. 2018, mean ± se",
                        str(data["protocol"]["trials"]),
                        *(_spread(metrics[key], spec, "se", scale) for key, spec, scale in columns),
                    ]
                )
            section = nodes.rubric(text=name)
            out += [section, _table(header, rows)]
        met = {True: "met", False: "NOT met", None: "not checked (rows not run)"}
        goals = _bullets(f"{goal['goal']}: {met[goal['met']]}." for goal in data.get("goals", []))
        out += [nodes.paragraph(text="Goals:"), goals]
        out += [
            nodes.paragraph(text="Where these runs differ from the reference code:"),
            _bullets(data.get("deviations", [])),
        ]
        return out


class StackedModes(_BenchmarkJson):
    """Render benchmarks/stacked_modes.json: our stacked-digits rows beside stacked MNIST's."""

    json_name = "stacked_modes.json"
    how = "`python benchmarks/stacked_modes.py` (see above)"

    def render(self, data: dict) -> list[nodes.Node]:
        budget = data["budget"]
        accuracy = ", ".join(f"{a:.3f}" for a in data.get("labeller_accuracy", [])) or "?"
        out: list[nodes.Node] = [
            nodes.paragraph(
                text=f"Budget of these numbers: {budget['steps']:,} training steps per run, "
                f"{budget['seeds']} seed(s) per row, {budget['num_samples']:,} samples per "
                f"diagnosis (the protocol's: {data['protocol']['evaluation_samples']:,}); "
                f"{_train_hours(budget)} h of training in all, on {_machine_text(budget)}. "
                f"The digit labeller's held-out accuracy: {accuracy}."
            )
        ]
        header = ["row", "data, source", "runs", "modes (of 1,000)", "KL (nats)"]
        columns = [("modes", ".1f", 1.0), ("kl", ".2f", 1.0)]
        rows = [
            _ours(row, "stacked digits, ours, mean ± sd", columns) for row in data["ours"].values()
        ]
        for row in data["published"]["rows"]:
            rows.append(
                [
                    row["label"],
                    f"stacked MNIST, {row['source']}",
                    "",
                    f"{row['modes']:.1f}",
                    f"{row['kl']:.2f}",
                ]
            )
        out.append(_table(header, rows))
        out.append(nodes.paragraph(text=f"Published rows: {data['published']['note']}."))
        out += [
            nodes.paragraph(text="Where these runs differ from the published experiments:"),
            _bullets(data.get("deviations", [])),
        ]
        return out


# Packages whose ``__all__`` the API reference must cover.
PUBLIC_PACKAGES = (
    "pyro_vigen.config",
    "pyro_vigen.data",
    "pyro_vigen.nets",
    "pyro_vigen.models",
    "pyro_vigen.infer",
    "pyro_vigen.diagnostics",
    "pyro_vigen.report",
)


def check_public_names(app, env) -> None:
    """Warn (an error under -W) for a public name that the API reference does not document."""
    import importlib

    from sphinx.util import logging

    documented = {name for name, *_ in env.get_domain("py").get_objects()}
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        names = getattr(module, "__all__", None) or [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == package
        ]
        for name in names:
            if f"{package}.{name}" not in documented:
                logging.getLogger(__name__).warning(
                    f"{package}.{name} is public but missing from the API reference"
                )


def setup(app):
    app.add_directive("cli-help", CliHelp)
    app.add_directive("benchmark-results", BenchmarkResults)
    app.add_directive("pacgan-protocol", PacganProtocol)
    app.add_directive("stacked-modes", StackedModes)
    app.connect("env-check-consistency", check_public_names)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


def _train_hours(budget: dict) -> str:
    """Total single-thread training time of the runs, in hours, from their checkpoints."""
    per_run = budget.get("train_time_s_per_run") or {}
    if "mean" in per_run and "n" in per_run:
        return f"{per_run['mean'] * per_run['n'] / 3600:.2f}"
    return "?"
