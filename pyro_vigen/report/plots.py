"""The report's figures, each returned as PNG bytes."""

from __future__ import annotations

import io
import textwrap

import matplotlib

matplotlib.use("Agg")  # reports are written headless; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..data import GaussianMixture  # noqa: E402


def _figure(width: float, height: float, **subplots) -> tuple[plt.Figure, object]:
    """A figure and its axes under constrained layout, which keeps titles, tick labels
    and a suptitle from overlapping one another."""
    return plt.subplots(figsize=(width, height), layout="constrained", **subplots)


def _title(text: str, width: int = 56) -> str:
    """``text`` wrapped to lines of ``width`` characters: a configuration's long name
    stays within its panel instead of running into the next one."""
    return textwrap.fill(text, width)


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def mixture_box(mixture: GaussianMixture) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper corners of the square a mixture's density is drawn over."""
    centers = mixture.centers.numpy()
    pad = 0.5 + 6 * mixture.std
    return centers.min(0) - pad, centers.max(0) + pad


def samples_over_density(
    samples: torch.Tensor,
    mixture: GaussianMixture,
    title: str,
    *,
    limits: tuple[np.ndarray, np.ndarray] | None = None,
) -> bytes:
    """2-D samples over the true density's contours, modes marked.

    :param samples: ``(N, 2)`` model samples.
    :param GaussianMixture mixture: the data's distribution.
    :param str title: the panel's title.
    :param limits: ``(lower corner, upper corner)`` of the plot; by default
        :func:`mixture_box`. A report passes one for all its panels, wide enough for
        samples off the modes.
    :returns: the PNG.
    """
    centers = mixture.centers.numpy()
    lo, hi = limits if limits is not None else mixture_box(mixture)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    density = mixture.log_prob(grid).exp().reshape(gx.shape).numpy()
    fig, ax = _figure(3.6, 3.6)
    ax.contour(gx, gy, density, levels=5, colors="0.6", linewidths=0.6)
    ax.scatter(centers[:, 0], centers[:, 1], marker="+", color="tab:red", s=25, linewidths=0.8)
    s = samples.numpy()
    # Over the mode marks: a model that collapsed onto one spot must still show.
    ax.scatter(s[:, 0], s[:, 1], s=4, alpha=0.4, color="tab:blue", rasterized=True, zorder=3)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_title(_title(title), fontsize=8)
    return _png(fig)


def samples_over_points(
    samples: np.ndarray,
    data: np.ndarray,
    title: str,
    *,
    limits: tuple[tuple[float, float], tuple[float, float]],
    axis_labels: tuple[str, str] = ("x1", "x2"),
) -> bytes:
    """2-D samples over the data points, where there is no density to draw.

    :param samples: ``(N, 2)`` model samples (blue).
    :param data: ``(M, 2)`` data points (grey, under the samples).
    :param str title: the panel's title.
    :param limits: ``((x lo, x hi), (y lo, y hi))``, the same for every panel of a report
        so that the panels compare at a glance.
    :param axis_labels: names of the two axes (principal components, for a projection).
    :returns: the PNG.
    """
    fig, ax = _figure(3.6, 3.6)
    ax.scatter(data[:, 0], data[:, 1], s=3, alpha=0.35, color="0.55", label="data", rasterized=True)
    ax.scatter(
        samples[:, 0],
        samples[:, 1],
        s=3,
        alpha=0.4,
        color="tab:blue",
        label="model",
        rasterized=True,
    )
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_xlabel(axis_labels[0], fontsize=7)
    ax.set_ylabel(axis_labels[1], fontsize=7)
    ax.legend(fontsize=7, markerscale=4, loc="upper right")
    ax.set_title(_title(title), fontsize=8)
    return _png(fig)


def samples_histogram(
    samples: np.ndarray, data: np.ndarray, title: str, *, limits: tuple[float, float]
) -> bytes:
    """1-D samples against the data, as two histograms over the same bins."""
    fig, ax = _figure(3.6, 2.6)
    bins = np.linspace(*limits, 60)
    ax.hist(data, bins=bins, density=True, color="0.6", alpha=0.6, label="data")
    ax.hist(samples, bins=bins, density=True, histtype="step", color="tab:blue", label="model")
    ax.set_xlabel("x", fontsize=7)
    ax.legend(fontsize=7)
    ax.set_title(_title(title), fontsize=8)
    return _png(fig)


def mode_histogram(counts: list[int], title: str) -> bytes:
    """High-quality samples per mode."""
    fig, ax = _figure(3.6, 1.8)
    ax.bar(np.arange(len(counts)), counts, color="tab:blue")
    ax.set_xlabel("mode")
    ax.set_ylabel("HQ samples")
    ax.set_title(_title(title), fontsize=8)
    return _png(fig)


def kl_chart(summary: dict[str, dict[str, dict[str, float]]]) -> bytes:
    """Forward and reverse KL side by side per configuration, mean and sd over seeds."""
    # A KL that a diagnosis found meaningless (null) is absent from the summary.
    labels = [k for k in summary if {"kl_forward", "kl_reverse"} <= summary[k].keys()]
    x = np.arange(len(labels))
    fig, ax = _figure(1.6 + 1.4 * len(labels), 3.2)
    for offset, key, name in (
        (-0.2, "kl_forward", "forward KL(data||model)"),
        (0.2, "kl_reverse", "reverse KL(model||data)"),
    ):
        means = [summary[k][key]["mean"] for k in labels]
        sds = [summary[k][key]["sd"] for k in labels]
        ax.bar(x + offset, means, width=0.4, yerr=sds, capsize=3, label=name)
    ax.set_xticks(x, [label.replace(", ", ",\n") for label in labels], fontsize=7)
    # A VAE's reverse KL on a narrow-mode mixture can be 100x the rest: a linear axis
    # would flatten every other bar, and kNN estimates can dip below zero.
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylabel("nats (symlog scale)")
    ax.legend(fontsize=7)
    return _png(fig)


def loss_curves(histories: list[dict[str, list[float]]], title: str) -> bytes:
    """Every loss column of each seed's history, smoothed with a moving average."""
    columns = [c for c in histories[0] if c not in ("step", "wall_time")]
    fig, axes = _figure(3.2 * len(columns), 2.4, ncols=len(columns), squeeze=False)
    for ax, col in zip(axes[0], columns, strict=True):
        for h in histories:
            y = np.asarray(h[col])
            window = max(1, len(y) // 50)
            smooth = np.convolve(y, np.ones(window) / window, mode="valid")
            ax.plot(np.asarray(h["step"])[window - 1 :], smooth, linewidth=0.8)
        ax.set_title(col, fontsize=8)
        ax.set_xlabel("step", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def khat_plot(khats: list[np.ndarray], title: str) -> bytes:
    """PSIS k-hat per data point against the 0.5 and 0.7 reliability lines."""
    fig, ax = _figure(4.2, 2.4)
    for k in khats:
        ax.plot(np.arange(len(k)), k, ".", markersize=3, alpha=0.7)
    for level, color in ((0.5, "tab:orange"), (0.7, "tab:red")):
        ax.axhline(level, color=color, linestyle="--", linewidth=0.8)
    ax.set_xlabel("data point", fontsize=7)
    ax.set_ylabel("k-hat", fontsize=7)
    ax.set_title(_title(title), fontsize=8)
    return _png(fig)


def image_grid(images: torch.Tensor, title: str, *, nrow: int = 8) -> bytes:
    """A grid of images in [0, 1] (``torchvision.utils.make_grid``).

    :param images: ``(N, C, H, W)`` images.
    :param str title: the figure's title.
    :param int nrow: images per row; the figure widens with it (0.4 inch an image), so
        the images keep their size.
    :returns: the PNG.
    """
    from torchvision.utils import make_grid

    grid = make_grid(images.clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    width = 0.4 * nrow
    fig, ax = _figure(width, width * grid.shape[1] / grid.shape[2])
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    ax.set_title(_title(title, max(20, int(width * 15))), fontsize=8)
    return _png(fig)
