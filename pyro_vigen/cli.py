"""The ``pyro-vigen`` command line: ``datasets``, ``train``, ``diagnose``, ``report`` and ``compare``."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from . import __version__
from .data import DataConfig
from .distributed import world
from .errors import UserError
from .flags import add_flags, config_from_args, to_argv
from .infer import Family, families, get_family, train

PROG = "pyro-vigen"


def sections(family: Family) -> dict[str, type]:
    """The configs a ``train <family>`` command builds, by their section of a run's
    ``config.json``."""
    return {"data": DataConfig, "model": family.model_config, "train": family.train_config}


def _show_default(value) -> str:
    """A default as a user would type it: ``(128, 128)`` as ``128,128``, ``0.001`` as is."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class _HelpFormatter(argparse.HelpFormatter):
    """Help that ends every option's text with its default, ``(default: X)``.

    Unless the text already says its default: a default of ``None`` means the library
    picks the value later (by the data, say), which only the option's own words can tell.
    Flags (``--resume``, ``--no-jit``) are off unless given, and say nothing.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default in (None, argparse.SUPPRESS)
            or action.nargs == 0
            or "default" in text.lower()
        ):
            return text
        # The help is a %-format string; a default is shown as it is.
        return f"{text} (default: {_show_default(action.default).replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2."""

    def __init__(self, *args, formatter_class=_HelpFormatter, **kwargs) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    add_flags(g, DataConfig)
    g.add_argument(
        "--download", action="store_true", help="let mnist and stacked_mnist download MNIST's files"
    )


def _add_threads_arg(p: argparse.ArgumentParser, per: str = "") -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"torch intra-op threads{per} (default 1: the library's nets gain little "
        "from more, and more threads fight other processes for the cores, many times "
        "slower on a busy machine)",
    )


def _add_progress_arg(p) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


@contextlib.contextmanager
def _elapsed(desc: str, show: bool) -> Iterator[None]:
    """Show ``desc`` and the time spent so far on stderr, refreshed every second.

    The progress of commands with no steps to count (diagnose, report), so that a long
    measurement is seen to be running. It appears after the first second: a command
    that fails at once (a bad argument) prints its one-line error alone.
    """
    if not show:
        yield
        return
    from tqdm.auto import tqdm

    done = threading.Event()
    with tqdm(desc=desc, bar_format="{desc}: {elapsed}", delay=1.0, dynamic_ncols=True) as bar:

        def tick() -> None:
            while not done.wait(1.0):
                bar.update(0)  # redraws the time once the delay has passed

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()


def _add_tensorboard_arg(p, runs: str) -> None:
    p.add_argument(
        "--tensorboard",
        metavar="DIR",
        default=None,
        help=f"write a TensorBoard log of {runs} to DIR: every loss at every step, model "
        "samples at every checkpoint (a grid of images, or points over the data); watch "
        "with `tensorboard --logdir DIR` (needs `pip install tensorboard`; default: no log)",
    )


def _add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="run directory to write")
    g.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    _add_progress_arg(g)
    _add_tensorboard_arg(g, "the run")
    _add_threads_arg(g)


def _cmd_train(args: argparse.Namespace) -> int:
    """Build the configs of ``train <family>`` from the flags, and train."""
    family = get_family(args.model)
    train(
        family,
        args.out,
        config_from_args(DataConfig, args),
        config_from_args(family.train_config, args),
        config_from_args(family.model_config, args),
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        download=args.download,
        threads=args.threads,
        tensorboard=args.tensorboard,
    )
    if world().is_main:  # under torchrun, rank 0 speaks for the run
        print(f"run directory: {args.out}")
    return 0


def train_argv(config: dict[str, Any]) -> list[str]:
    """The arguments of ``pyro-vigen`` that train a run with these settings, but ``--out``.

    The inverse of the ``train`` commands' parsers: every setting not at its default,
    spelled as the flags read it (:func:`pyro_vigen.flags.to_argv`).

    :param dict config: a run's ``config.json`` as a dict.
    :returns: the arguments, ``["train", "vae", "--hidden", "", ...]``; print them with
        :func:`shlex.join`.
    """
    argv = ["train", config["kind"]]
    for section, cls in sections(get_family(config["kind"])).items():
        argv += to_argv(cls.from_dict(config[section]))
    return argv


def _cmd_datasets(args: argparse.Namespace) -> int:
    from .data import list_datasets

    infos = list_datasets()
    width = max(len(info.name) for info in infos)
    for info in infos:
        print(f"{info.name:<{width}} {info.description}\n{'':<{width}} source: {info.source}")
    print(f"{'PATH':<{width}} your own N x D array in a .npy, .pt, .csv, .tsv or .txt file")
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .diagnostics import diagnose
    from .diagnostics.run import khat_warning

    with _elapsed(f"diagnose {args.run}", not args.no_progress):
        metrics = diagnose(
            args.run,
            num_samples=args.num_samples,
            seed=args.seed,
            threads=args.threads,
            centers=args.centers,
            std=args.std,
        )
    for key in sorted(metrics):
        value = metrics[key]
        print(f"{key:<20} {value:.4g}" if isinstance(value, float) else f"{key:<20} {value}")
    print(f"wrote {args.run}/metrics.json and {args.run}/diagnostics.nc")
    warning = khat_warning(metrics)
    if warning is not None:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report
    from .threads import torch_threads

    with torch_threads(args.threads), _elapsed(f"report {args.out}", not args.no_progress):
        path = write_report(args.runs, args.out)
    print(f"report: {path} (and {path.with_suffix('.md')})")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import json

    from .report import claims_table, compare

    path = compare(
        config_from_args(DataConfig, args),
        args.seeds,
        args.out,
        num_samples=args.num_samples,
        progress=not args.no_progress,
        threads=args.threads,
        steps=args.steps,
        vae_steps=args.vae_steps,
        tensorboard=args.tensorboard,
        families=args.families,
    )
    if not world().is_main:  # under torchrun, rank 0 speaks for the sweep
        return 0
    summary = json.loads(path.with_name("summary.json").read_text())
    print(f"The theory's claims on {summary['dataset']}, seed by seed:")
    print(claims_table(summary["claims"]))
    print(f"report: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="VAE and GAN in one variational-inference frame, in Pyro."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("datasets", help="list datasets and where they come from")
    p.set_defaults(func=_cmd_datasets, command_parser=p)

    train = sub.add_parser("train", help="train a model into a run directory")
    models = train.add_subparsers(dest="model", required=True, parser_class=_Parser)

    # One subcommand per registered family, a family registered before main() included.
    for family in families().values():
        p = models.add_parser(family.name, help=family.help)
        _add_data_args(p)
        _add_run_args(p)
        add_flags(p.add_argument_group("model"), family.model_config)
        add_flags(p.add_argument_group("training"), family.train_config)
        p.set_defaults(func=_cmd_train, command_parser=p)

    p = sub.add_parser(
        "diagnose", help="measure a run: both KL directions, modes, VI quality (metrics.json)"
    )
    p.add_argument("run", help="run directory written by `pyro-vigen train`")
    p.add_argument("--num-samples", type=int, default=10_000, help="model samples drawn")
    p.add_argument("--seed", type=int, default=0, help="seed of every draw")
    p.add_argument(
        "--centers",
        metavar="FILE",
        default=None,
        help="known mode centres of your data, a K x D array in a .npy or .csv file (the "
        "formats --data reads): score mode coverage against them, as the toy mixtures "
        "are scored (needs --std; default: none, modes are scored only on the toy mixtures "
        "and labelled images)",
    )
    p.add_argument(
        "--std",
        metavar="S",
        type=float,
        default=None,
        help="per-axis standard deviation of the modes of --centers: a sample within 3 S "
        "of its nearest centre is high quality (default: none; needed with --centers)",
    )
    _add_progress_arg(p)
    _add_threads_arg(p)
    p.set_defaults(func=_cmd_diagnose, command_parser=p)

    p = sub.add_parser("report", help="write an HTML (+ Markdown) report of diagnosed runs")
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    p.add_argument("--out", required=True, help="the .html file to write (the .md goes beside it)")
    _add_progress_arg(p)
    _add_threads_arg(p)
    p.set_defaults(func=_cmd_report, command_parser=p)

    p = sub.add_parser(
        "compare",
        help="the main job: VAE, classic GAN, data-prior GAN and its ablation (and with "
        "--families the IWGAN, AAE and ALI) over seeds, with the theory's claims checked",
    )
    _add_data_args(p)
    p.add_argument("--seeds", type=int, default=3, help="seeds per configuration")
    p.add_argument("--out", required=True, help="folder for the runs, report.html and summary.json")
    # Defaults live in pyro_vigen.report.compare (not imported here: it loads torch).
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="iterations of every GAN run (default: 10000; on images 9000 at 8x8, 3000 at 28x28)",
    )
    p.add_argument(
        "--vae-steps",
        type=int,
        default=None,
        help="SVI steps of every VAE run (default: 20000; 3000 on images)",
    )
    p.add_argument(
        "--families",
        type=lambda text: tuple(name.strip() for name in text.split(",")),
        default=None,
        metavar="NAMES",
        help="comma-separated groups of configurations: vae, gan (classic, ablation, data "
        "prior), iwgan, aae, ali (points only) (default: vae,gan, the four the claims are "
        "about)",
    )
    p.add_argument("--num-samples", type=int, default=5000, help="samples per diagnosis")
    _add_progress_arg(p)
    _add_tensorboard_arg(p, "each run trained, in DIR/<configuration>/seed<i>,")
    _add_threads_arg(p, per=" per worker process")
    p.set_defaults(func=_cmd_compare, command_parser=p)
    return parser


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting of a command by name, ``batch_size`` or ``threads``, and its flag.

    A config field's option is stored under ``Class.field`` (see
    :mod:`pyro_vigen.flags`); a name two of the command's configs share (``seed``) is
    left out, as an error naming it cannot say which flag it means.
    """
    found: dict[str, list[str]] = {}
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            found.setdefault(action.dest.rpartition(".")[2], []).append(action.option_strings[-1])
    return {name: flags[0] for name, flags in found.items() if len(flags) == 1}


def _user_message(error: UserError, flags: dict[str, str]) -> str:
    """A :class:`UserError`'s message in the command line's words: flags for fields.

    A setting the message names as ``field=value`` becomes the flag and the value as
    typed (``batch_size=100`` -> ``--batch-size 100``, ``resume=True`` -> ``--resume``);
    an ``error.field`` the message does not spell that way goes before it, as argparse
    names the option of its own errors.
    """

    def as_typed(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if name not in flags:
            return match.group(0)
        if value in ("True", "False"):  # a switch: its flag is the value it sets
            return flags[name]
        return f"{flags[name]} {value.strip(chr(39))}"

    message = re.sub(r"\b([a-z_]+)=('[^']*'|[^\s,;:)]+)", as_typed, " ".join(str(error).split()))
    flag = flags.get(error.field or "")
    if flag is not None and flag not in message:
        message = f"argument {flag}: {message}"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyro-vigen``: returns the exit status.

    Bad input (a :class:`~pyro_vigen.errors.UserError`, or argparse's own errors) is
    one line on stderr and exit status 2; any other exception is a bug and propagates
    with its traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"{PROG}: error: {_user_message(e, _flags(args.command_parser))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the last complete checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
