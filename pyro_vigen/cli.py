"""The ``pyro-vigen`` command line: ``datasets``, ``train``, ``diagnose``, ``report`` and ``compare``."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Iterator, Sequence

from . import __version__

PROG = "pyro-vigen"


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


def _int_tuple(text: str) -> tuple[int, ...]:
    """``"128,128"`` -> ``(128, 128)``; an empty string is ``()`` (linear nets)."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        default="ring8",
        help="dataset name (see `pyro-vigen datasets`) or a .npy, .pt, .csv, .tsv or .txt file",
    )
    g.add_argument("--num-points", type=int, default=10_000, help="points drawn from a toy mixture")
    g.add_argument(
        "--data-seed",
        type=int,
        default=1234,
        help="seed of the toy-mixture draw and of the stacking of stacked datasets",
    )
    g.add_argument(
        "--data-root",
        default=None,
        help="folder holding MNIST's files (default: ~/.cache/pyro_vigen)",
    )
    g.add_argument(
        "--download", action="store_true", help="let mnist and stacked_mnist download MNIST's files"
    )
    g.add_argument(
        "--holdout",
        type=float,
        default=0.1,
        help="fraction of points held out of training",
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


def _add_lr_decay_arg(g) -> None:
    g.add_argument(
        "--lr-decay",
        type=float,
        default=0.0,
        help="share of the run, at its end, over which the learning rates decay linearly "
        "towards zero; 0 keeps them constant",
    )


def _add_run_args(p: argparse.ArgumentParser, *, steps: int, batch_size: int) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="run directory to write")
    g.add_argument("--steps", type=int, default=steps, help="training steps")
    g.add_argument("--seed", type=int, default=0, help="random seed")
    g.add_argument("--batch-size", type=int, default=batch_size, help="minibatch size")
    g.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    g.add_argument(
        "--device", default="cpu", help="cpu, cuda, cuda:N or auto (CUDA where it exists)"
    )
    g.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    _add_progress_arg(g)
    _add_tensorboard_arg(g, "the run")
    _add_threads_arg(g)


def _data_config(args: argparse.Namespace):
    from .data import DataConfig

    return DataConfig(
        name=args.data,
        num_points=args.num_points,
        seed=args.data_seed,
        data_root=args.data_root,
        holdout=args.holdout,
    )


def _train(train_fn, args: argparse.Namespace, train, model) -> int:
    """Run ``train_vae`` or ``train_gan`` with the options every ``train`` command shares."""
    train_fn(
        args.out,
        _data_config(args),
        train,
        model,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        download=args.download,
        threads=args.threads,
        tensorboard=args.tensorboard,
    )
    print(f"run directory: {args.out}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from .data import list_datasets

    infos = list_datasets()
    width = max(len(info.name) for info in infos)
    for info in infos:
        print(f"{info.name:<{width}} {info.description}\n{'':<{width}} source: {info.source}")
    print(f"{'PATH':<{width}} your own N x D array in a .npy, .pt, .csv, .tsv or .txt file")
    return 0


def _cmd_train_vae(args: argparse.Namespace) -> int:
    from .infer import VAETrainConfig, train_vae
    from .models import VAEConfig

    train = VAETrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_decay=args.lr_decay,
        elbo=args.elbo,
        num_particles=args.num_particles,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
    )
    model = VAEConfig(
        latent_dim=args.latent_dim, hidden=args.hidden, likelihood=args.likelihood, scale=args.scale
    )
    return _train(train_vae, args, train, model)


def _cmd_train_gan(args: argparse.Namespace) -> int:
    from .infer import GANTrainConfig, train_gan
    from .models import GANConfig

    train = GANTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        disc_steps=args.disc_steps,
        gen_steps=args.gen_steps,
        prior=args.prior,
        reg_weight=args.reg_weight,
        loss=args.loss,
        lr_disc=args.lr_disc,
        lr_gen=args.lr_gen,
        lr_decay=args.lr_decay,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        jit=args.jit,
        device=args.device,
    )
    model = GANConfig(
        noise_dim=args.noise_dim,
        hidden=args.hidden,
        gen_hidden=args.gen_hidden,
        disc_hidden=args.disc_hidden,
        gen_batch_norm=args.gen_batch_norm,
        disc_maxout=args.disc_maxout,
        init_std=args.init_std,
        conv_width=args.conv_width,
        obs_scale=args.obs_scale,
        pack=args.pack,
    )
    return _train(train_gan, args, train, model)


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
        _data_config(args),
        args.seeds,
        args.out,
        num_samples=args.num_samples,
        progress=not args.no_progress,
        threads=args.threads,
        steps=args.steps,
        vae_steps=args.vae_steps,
        tensorboard=args.tensorboard,
    )
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
    p.set_defaults(func=_cmd_datasets)

    train = sub.add_parser("train", help="train a model into a run directory")
    models = train.add_subparsers(dest="model", required=True, parser_class=_Parser)

    p = models.add_parser("vae", help="train a VAE with stock SVI")
    _add_data_args(p)
    _add_run_args(p, steps=3000, batch_size=256)
    g = p.add_argument_group("model and optimiser")
    g.add_argument(
        "--latent-dim", type=int, default=None, help="dimension of z (default: 2; 16 for images)"
    )
    g.add_argument("--hidden", type=_int_tuple, default=(128, 128), help="MLP hidden widths")
    g.add_argument(
        "--likelihood",
        # pyro_vigen.models.vae.LIKELIHOODS, spelled out: importing it loads torch
        # (tests/models/test_vae.py checks that the two agree).
        choices=["normal", "bernoulli", "continuous_bernoulli", "discretized_logistic"],
        default=None,
        help="normal; bernoulli (a Bernoulli on images binarised at 0.5); "
        "continuous_bernoulli or discretized_logistic (grey levels in [0, 1] as they are). "
        "(default: discretized_logistic for images, normal otherwise)",
    )
    g.add_argument(
        "--scale",
        type=float,
        default=None,
        help="fixed scale of the normal or discretized_logistic likelihood (default: learned)",
    )
    g.add_argument(
        "--elbo",
        choices=["jit", "trace", "meanfield", "iwae"],
        default="jit",
        help="stock Pyro ELBO (default: %(default)s, Trace_ELBO compiled)",
    )
    g.add_argument("--num-particles", type=int, default=1, help="particles per ELBO estimate")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    _add_lr_decay_arg(g)
    p.set_defaults(func=_cmd_train_vae)

    p = models.add_parser("gan", help="train a GAN as VI over the real/fake label")
    _add_data_args(p)
    _add_run_args(p, steps=10_000, batch_size=256)
    g = p.add_argument_group("model and optimiser")
    g.add_argument(
        "--prior",
        choices=["mixed", "data"],
        default="mixed",
        help="prior on x: mixed (the classic GAN) or data (adds the proximal penalty)",
    )
    g.add_argument(
        "--reg-weight",
        type=float,
        default=None,
        help="penalty weight lambda of --prior data (default: 5)",
    )
    g.add_argument(
        "--gen-steps",
        type=int,
        default=None,
        help="generator steps per snapshot (default: 2 with --prior data, else 1)",
    )
    g.add_argument("--disc-steps", type=int, default=1, help="discriminator steps per iteration")
    g.add_argument(
        "--loss",
        choices=["nonsaturating", "minimax"],
        default="nonsaturating",
        help="generator loss",
    )
    g.add_argument(
        "--noise-dim", type=int, default=None, help="dimension of z (default: 2; 64 for images)"
    )
    g.add_argument("--hidden", type=_int_tuple, default=(128, 128), help="MLP hidden widths")
    g.add_argument(
        "--obs-scale",
        type=float,
        default=None,
        help="Gaussian noise std around G(z) (default: none, the classic GAN)",
    )
    g.add_argument(
        "--pack",
        type=int,
        default=1,
        help="points the discriminator sees at once (PacGAN; a divisor of --batch-size; "
        "1 is the classic GAN)",
    )
    g.add_argument(
        "--gen-hidden", type=_int_tuple, default=None, help="generator widths (default: --hidden)"
    )
    g.add_argument(
        "--disc-hidden",
        type=_int_tuple,
        default=None,
        help="discriminator widths (default: --hidden)",
    )
    g.add_argument(
        "--gen-batch-norm", action="store_true", help="batch norm in the generator (points)"
    )
    g.add_argument(
        "--disc-maxout",
        type=int,
        default=1,
        help="maxout pieces of the discriminator's hidden units (points; 1: none)",
    )
    g.add_argument(
        "--init-std",
        type=float,
        default=None,
        help="initial weights from N(0, s^2) (points; default: PyTorch's initialisation)",
    )
    g.add_argument(
        "--conv-width",
        type=int,
        default=64,
        help="channels of the DCGAN nets of images",
    )
    g.add_argument("--lr-disc", type=float, default=1e-3, help="discriminator Adam learning rate")
    g.add_argument("--lr-gen", type=float, default=1e-3, help="generator Adam learning rate")
    _add_lr_decay_arg(g)
    g.add_argument(
        "--no-jit",
        dest="jit",
        action="store_false",
        help="run the phase objectives uncompiled (slower, the same numbers)",
    )
    p.set_defaults(func=_cmd_train_gan)

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
    p.set_defaults(func=_cmd_diagnose)

    p = sub.add_parser("report", help="write an HTML (+ Markdown) report of diagnosed runs")
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    p.add_argument("--out", required=True, help="the .html file to write (the .md goes beside it)")
    _add_progress_arg(p)
    _add_threads_arg(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "compare",
        help="the main job: VAE, classic GAN, data-prior GAN and its ablation over seeds, with the theory's claims checked",
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
    p.add_argument("--num-samples", type=int, default=5000, help="samples per diagnosis")
    _add_progress_arg(p)
    _add_tensorboard_arg(p, "each run trained, in DIR/<configuration>/seed<i>,")
    _add_threads_arg(p, per=" per worker process")
    p.set_defaults(func=_cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyro-vigen``: returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        message = " ".join(str(e).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the last complete checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
