"""Diagnosing a run directory: ``metrics.json`` and ``diagnostics.nc``.

Which estimate of each KL direction a run gets depends on what is known about the two
densities (the method is recorded in ``kl_method``):

========================  =====================================================
toy mixture, VAE          ``mc``: exact data log-density; the model's by importance
                          sampling (:meth:`~pyro_vigen.models.VAE.log_prob`, a lower
                          bound in expectation, so forward KL leans high, reverse low)
toy mixture, GAN          ``knn``: a GAN has no density; the mixture is 2-D
images                    ``gaussian_features``: Gaussian fits in the features of a
                          classifier trained on the dataset (:mod:`.images`); NaN,
                          with ``kl_note`` saying why, where the fits are degenerate
other data                ``knn`` up to 3 dimensions, ``classifier`` above
========================  =====================================================

Samples are drawn afresh with fixed seeds rather than read from ``samples.pt`` (which
holds only the few thousand saved at the end of training): ``num_samples`` from the
model, and as many from the mixture where the data distribution is known exactly (fresh
draws of :math:`p_{data}` rather than the training points, which the model has seen).
Other data is compared as a whole (``split="all"``); the VAE's ELBO, IWAE bound and k-hat
are computed on held-out points where the run holds some out.

Every model of an image dataset is scored against the same reference, the dataset as
loaded (grey levels), in the same feature space, one classifier per dataset: a VAE and
a GAN of one table are measured alike, whatever the VAE's likelihood (a Bernoulli VAE
is trained on binarised images, but scored against the grey ones, as a GAN is). A VAE
on images is scored on its decoder means (:meth:`~pyro_vigen.models.VAE.sample` with
``noise=False``), the images a user looks at, not on draws with the likelihood's pixel
noise; ``metrics.json`` says which in ``image_samples``.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import torch

from .. import __version__
from ..config import require_positive
from ..data import DataConfig, Dataset, load_dataset
from ..errors import UserError
from ..infer import Family, load_run, run_family
from ..storage import DIAGNOSTICS, HISTORY, METRICS, RunDir, atomic_path, read_history
from ..threads import torch_threads
from .autoencoding import latent_metrics, reconstruction_metrics
from .checks import as_points
from .gan import INTERVAL_METHOD as DISC_INTERVAL_METHOD
from .gan import discriminator_estimates
from .images import classifier_key, dataset_digest, feature_classifier, image_metrics
from .kl import SPLIT_METHOD, kl_directions
from .modes import mode_coverage, user_modes
from .stacked import digit_labeller, stacked_modes
from .vi_quality import vi_metrics

#: Data points (and importance particles per point) of the VAE's ELBO, IWAE and k-hat:
#: fewer for images, whose conv decoder is a hundred times slower per draw.
VI_POINTS = {"points": (500, 1000), "images": (100, 256)}
#: Importance particles of the VAE log-density in the ``mc`` KL estimate. Measured on a
#: ring8 VAE after 2,000 steps (5,000 samples): forward KL 3.885, 3.824, 3.792 and 3.770
#: nats with 30, 100, 300 and 1,000 particles, taking 6, 5, 10 and 28 s; 100 is within
#: 1.5% of 1,000 at a sixth of the time.
KL_PARTICLES = 100
#: At most this many model samples (and data points) are stored in ``diagnostics.nc``.
MAX_STORED = 2000
#: The extra diagnostics a model family can declare (:attr:`Family.diagnostics
#: <pyro_vigen.infer.Family>`), beyond both KL directions from samples and mode coverage:
#: ``density``, KL on the toy mixtures from the model's ``log_prob(x, num_particles)``
#: (``mc``); ``vi_quality``, the guide's ELBO, IWAE bound and k-hat from the model's
#: ``importance_sample(x, num_particles)`` (:func:`vi_metrics`); ``discriminator``, the
#: trained discriminator's estimates (:func:`discriminator_estimates`).
#: ``reconstruction``, from the model's ``reconstruct(x)`` (:func:`reconstruction_metrics`);
#: ``latent``, the aggregate posterior against the prior from the model's
#: ``encode(x) -> (loc, scale)`` (:func:`latent_metrics`).
EXTRA_DIAGNOSTICS = ("density", "vi_quality", "discriminator", "reconstruction", "latent")
#: Points encoded by the ``reconstruction`` and ``latent`` diagnostics: one code each.
ENCODED_POINTS = {"points": 5000, "images": 1000}


def khat_warning(metrics: dict) -> str | None:
    """The warning a VAE run needs where its k-hat passes 0.7 at some data points.

    Above 0.7 the Pareto-smoothed importance sampling estimate at a point is unreliable
    (Vehtari et al., *Pareto smoothed importance sampling*, JMLR 2024), as ArviZ and
    ``loo`` warn for any such point. The importance-sampled log-density is the IWAE
    bound's, and on the toy mixtures that of the ``mc`` KL estimates too.

    :param dict metrics: a run's metrics (``khat_frac_over_0_7`` is read).
    :returns: the warning in words, or ``None`` where no point passes 0.7 (or the run
        has no k-hat: a GAN).

    Example::

        from pyro_vigen.diagnostics.run import khat_warning
        khat_warning({"khat_frac_over_0_7": 0.93})
        # 'k-hat above 0.7 for 93% of points: the importance-sampled log-density ...'
    """
    over = metrics.get("khat_frac_over_0_7")
    if not over:
        return None
    share = f"{over:.0%}" if over >= 0.01 else f"{100 * over:.1g}%"
    uses = (
        "the IWAE bound and the KL estimates from it"
        if str(metrics.get("kl_method", "")).startswith("mc")
        else "the IWAE bound"
    )
    return (
        f"k-hat above 0.7 for {share} of points: the importance-sampled log-density "
        f"({uses}) is unreliable for this run (Pareto-smoothed importance sampling's "
        "threshold, Vehtari et al.)"
    )


def diagnose(
    run_dir: str | os.PathLike,
    num_samples: int = 10_000,
    *,
    seed: int = 0,
    num_particles: int | None = None,
    kl_particles: int = KL_PARTICLES,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    centers: str | os.PathLike | np.ndarray | torch.Tensor | None = None,
    std: float | None = None,
) -> dict:
    """Measure a trained run and write ``metrics.json`` and ``diagnostics.nc`` into it.

    ``metrics.json`` has these keys: always ``kl_forward``,
    ``kl_reverse``, ``kl_method``, ``num_samples``; on toy mixtures, on points with
    ``centers`` given and on labelled images (over the classes) ``num_modes``,
    ``modes_captured``, ``hq_fraction``, ``mode_kl`` (with ``centers``, also
    ``mode_centers``: where they come from); for images also ``precision``,
    ``recall``, ``density``, ``coverage``, ``image_samples`` (``"decoder means"`` for a
    VAE, ``"samples"`` for a GAN),
    ``reference_data`` (name, size and digest of the images compared with),
    ``feature_classifier`` (:func:`~pyro_vigen.diagnostics.classifier_key`) and, where a
    KL is NaN (null), ``kl_note`` saying why (also where the k-NN estimate dequantised
    repeated values); for a VAE ``elbo``,
    ``iwae``, ``iwae_particles``, ``khat_mean``, ``khat_frac_over_0_7`` and, on toy
    mixtures, ``joint_kl``; for a GAN ``disc_kl_forward``, ``disc_kl_reverse``, ``jsd``
    (``pack_jsd``, the JSD of packs, for a packed GAN: see
    :func:`~pyro_vigen.diagnostics.discriminator_estimates`); for a family with an
    encoder (the AAE, ALI) ``recon_mse``, ``recon_rel_error`` and, where modes are
    known, ``recon_same_mode``
    (:func:`~pyro_vigen.diagnostics.autoencoding.reconstruction_metrics`), and
    ``latent_kl_forward``, ``latent_kl_reverse`` and ``latent_kl_method``, the
    aggregate posterior against the prior
    (:func:`~pyro_vigen.diagnostics.autoencoding.latent_metrics`). Each of the KL and JSD
    estimates ``K`` has its 95% interval ``K_interval``, ``[lo, hi]`` (null where not
    computable), and ``interval_method`` says how each was made.

    ``diagnostics.nc`` is an :class:`arviz.InferenceData` (read it with
    :func:`arviz.from_netcdf`) with the groups

    - ``posterior`` (VAE): ``z``, draws of :math:`q_\\phi(z|x)` for a fixed set of data
      points, dims ``(chain, draw, point, z_dim)``;
    - ``sample_stats`` (VAE): ``log_weight``, :math:`\\log p(x,z) - \\log q(z|x)` of
      those very draws, dims ``(chain, draw, point)``: the k-hat's input;
    - ``observed_data``: ``x``, those data points (VAE) or the data compared with (GAN);
    - ``posterior_predictive``: ``x``, model samples (a VAE's decoder means on images);
    - ``diagnostics``: ``khat`` per point (VAE) and ``mode_counts`` (mixtures and
      images), with every metric (and the KL standard errors, where known) as attributes;
    - ``training_history``: each column of ``history.csv`` along ``step``.

    :param run_dir: a run directory written by ``pyro-vigen train``.
    :param int num_samples: model samples drawn (and data draws, for toy mixtures).
    :param int seed: seed of every draw; the global random state is left untouched.
    :param int num_particles: importance particles per point for the VAE's IWAE bound
        and k-hat (default 1000 for points, 256 for images).
    :param int kl_particles: importance particles of the VAE log-density in ``mc`` KL.
    :param cache_dir: where the image feature classifier is cached.
    :param int threads: torch's intra-op threads while measuring (``None``: the library's
        default, one; see :mod:`pyro_vigen.threads`); the caller's setting is restored
        after. The classifiers that the estimates train always take one thread, so
        their results do not depend on it.
    :param centers: known mode centres of the data, a file of ``K x D`` centres (as
        :func:`~pyro_vigen.diagnostics.modes.load_centers` reads) or an array: mode
        coverage is then scored against them, in place of a toy mixture's own centres,
        by the same definition (:func:`~pyro_vigen.diagnostics.mode_coverage`). Points
        only.
    :param float std: the per-axis standard deviation of those modes, which sets the
        high-quality radius (3 std) as a toy mixture's does; needed with ``centers``,
        and only with them.
    :returns: the metrics written to ``metrics.json``.
    :raises ValueError: not a run directory, no or a bad checkpoint, an unknown model
        kind, NaN/inf model samples, bad ``centers`` or ``std`` (see
        :func:`~pyro_vigen.diagnostics.modes.user_modes`).

    Example::

        from pyro_vigen.diagnostics import diagnose
        metrics = diagnose("runs/vae", num_samples=2000)   # a run written by train
        metrics["kl_forward"], metrics["kl_reverse"], metrics["modes_captured"]
    """
    require_positive("num_samples", num_samples, integer=True)
    require_positive("kl_particles", kl_particles, integer=True)
    if num_particles is not None:
        require_positive("num_particles", num_particles, integer=True)
    run = RunDir(run_dir)
    # Everything random draws from a forked, seeded generator; building the model too
    # (its layers initialise randomly before the checkpoint overwrites them).
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config, model = load_run(run.path)
        family = run_family(config, run.path)
        model_config = family.model_config.from_dict(config["model"])
        _check_finite_parameters(model, run)
        data_config = DataConfig.from_dict(config["data"])
        dataset = load_dataset(data_config, split="all")
        modes = user_modes(centers, std, dataset.shape)
        samples, drawn = _model_samples(family, model, dataset, num_samples, seed)
        as_points(samples, "model samples")
        data = _reference_data(dataset, family, model_config, num_samples, seed)
        metrics, attrs = _compare(
            dataset,
            model if "density" in family.diagnostics else None,
            data,
            samples,
            seed=seed,
            kl_particles=kl_particles,
            cache_dir=cache_dir,
            modes=modes,
        )
        if dataset.is_image:
            metrics["image_samples"] = drawn
        metrics["num_samples"] = num_samples
        groups = {"posterior_predictive": _draws_dataset("x", samples[:MAX_STORED].unsqueeze(0))}
        diag_vars = {}
        if "counts" in metrics:
            diag_vars["mode_counts"] = (("mode",), np.asarray(metrics.pop("counts")))
        if "vi_quality" in family.diagnostics:
            # Reseed, so the VI metrics do not depend on how many draws came before.
            torch.manual_seed(seed + 2)
            vi, vi_groups = _vi_quality(
                model, family, model_config, dataset, data_config, num_particles, seed
            )
            diag_vars["khat"] = (("point",), vi.pop("khat"))
            metrics.update(vi)
            groups.update(vi_groups)
        else:
            groups["observed_data"] = _points_dataset("x", data[:MAX_STORED])
        if "discriminator" in family.diagnostics:
            disc = discriminator_estimates(model, data, samples, pack=model_config.pack, seed=seed)
            metrics.update(disc)
            names = ", ".join(k for k in disc if not k.endswith("_interval"))
            metrics["interval_method"] += f"; {names}: {DISC_INTERVAL_METHOD}"
        if {"reconstruction", "latent"} & set(family.diagnostics):
            encoded = _encoder_metrics(
                model, family, model_config, dataset, data_config, modes, seed
            )
            if "latent_interval_method" in encoded:
                method = encoded.pop("latent_interval_method")
                metrics["interval_method"] += f"; latent_kl_forward, latent_kl_reverse: {method}"
            metrics.update(encoded)
    attrs.update(kind=config["kind"], data=dataset.name, pyro_vigen=__version__)
    _write(run, metrics, groups, diag_vars, attrs)
    return metrics


def _check_finite_parameters(model: torch.nn.Module, run: RunDir) -> None:
    for name, value in model.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise UserError(
                f"{run.checkpoint}: the model's {name} holds NaN or inf values; the run "
                "diverged, so there is nothing to diagnose (retrain it, e.g. with a lower lr)"
            )


def _model_samples(
    family: Family, model, dataset: Dataset, n: int, seed: int
) -> tuple[torch.Tensor, str]:
    """The model's images or points that the metrics score, and what they are.

    Images are the family's ``images``, those anyone looks at (a VAE's decoder means:
    its draws with the likelihood's noise, salt-and-pepper pixels for a Bernoulli, are
    not). The ``mc`` KL of the toy mixtures needs true draws of :math:`p_\theta(x)`.
    """
    gen = torch.Generator().manual_seed(seed)
    if dataset.is_image:
        return family.images(model, n, gen), family.images_are
    return model.sample(n, generator=gen), "samples"


def _reference_data(
    dataset: Dataset, family: Family, model_config, num_samples: int, seed: int
) -> torch.Tensor:
    """Points of :math:`p_{data}` to compare with.

    Fresh draws of a toy mixture; images as loaded (grey levels) for every model, so that
    all runs of an image dataset are scored against the same data; other data as the
    model sees it.
    """
    if dataset.mixture is not None:
        return dataset.mixture.sample(num_samples, torch.Generator().manual_seed(seed + 1))
    if dataset.is_image:
        return dataset.x
    return family.data(dataset, model_config)


def _compare(
    dataset: Dataset, model, data, samples, *, seed: int, kl_particles: int, cache_dir, modes=None
) -> tuple[dict, dict]:
    """KL in both directions and mode coverage: ``(metrics, extra nc attributes)``.

    ``model``: the model where its family declares the ``density`` diagnostic, else
    ``None`` (the KL is then estimated from the samples alone).

    ``modes``: the user's ``(centres, std, source)`` of :func:`user_modes`, which take
    the place of a toy mixture's centres (points only).
    """
    if dataset.stacked_from is not None:
        # Stacked digits are images: the image comparison (this call on the dataset
        # without its stacking), then the modes of the stacked-MNIST protocol in place
        # of the feature classifier's classes: the 1,000 triples of a digit labeller's
        # channel labels, over every sample (see pyro_vigen.diagnostics.stacked).
        metrics, attrs = _compare(
            dataclasses.replace(dataset, stacked_from=None),
            model,
            data,
            samples,
            seed=seed,
            kl_particles=kl_particles,
            cache_dir=cache_dir,
        )
        labeller = digit_labeller(dataset.stacked_from, cache_dir=cache_dir)
        metrics.update(stacked_modes(samples, labeller))
        return metrics, attrs
    if dataset.is_image:
        # One classifier per dataset, trained on the reference images themselves.
        classifier = feature_classifier(dataset, cache_dir=cache_dir)
        metrics = image_metrics(classifier, data, samples, seed=seed)
        metrics["reference_data"] = (
            f"{dataset.name}: {len(data)} images as loaded, sha256 {dataset_digest(dataset)}"
        )
        metrics["feature_classifier"] = classifier_key(dataset)
        metrics["interval_method"] = f"kl_forward, kl_reverse: {SPLIT_METHOD}"
        return metrics, {}
    metrics: dict = {}
    attrs: dict = {}
    mixture = dataset.mixture
    if modes is not None:
        centers, std, source = modes
        metrics.update(mode_coverage(samples, centers, std), mode_centers=source)
    elif mixture is not None:
        metrics.update(mode_coverage(samples, mixture.centers, mixture.std))
    if mixture is not None and model is not None:
        kl = kl_directions(
            data,
            samples,
            data_log_prob=mixture.log_prob,
            model_log_prob=lambda x: model.log_prob(x, kl_particles),
            method="mc",
        )
        kl["method"] = f"mc (VAE log-density by importance sampling, {kl_particles} particles)"
        attrs = {
            "kl_forward_stderr": kl["forward_stderr"],
            "kl_reverse_stderr": kl["reverse_stderr"],
        }
    else:  # no model density (a GAN's) or no data density: from the samples alone
        kl = kl_directions(data, samples, seed=seed)
    metrics.update(
        kl_forward=kl["forward"],
        kl_reverse=kl["reverse"],
        kl_method=kl["method"],
        kl_forward_interval=kl["forward_interval"],
        kl_reverse_interval=kl["reverse_interval"],
        interval_method=f"kl_forward, kl_reverse: {kl['interval_method']}",
    )
    if "note" in kl:
        metrics["kl_note"] = kl["note"]
    return metrics, attrs


def _vi_quality(
    model,
    family: Family,
    model_config,
    dataset: Dataset,
    data_config: DataConfig,
    num_particles: int | None,
    seed: int,
) -> tuple[dict, dict]:
    """:func:`vi_metrics` (with ``khat``) and the groups of the posterior draws behind it."""
    num_points, default_particles = VI_POINTS["images" if dataset.is_image else "points"]
    x = _unseen_points(family, model_config, dataset, data_config, num_points, seed + 2)
    entropy = None if dataset.mixture is None else dataset.mixture.entropy()[0]
    z, log_w = model.importance_sample(x, num_particles or default_particles)
    groups = {
        "posterior": _draws_dataset("z", z.unsqueeze(0), ("point", "z_dim")),
        "sample_stats": _draws_dataset("log_weight", log_w.unsqueeze(0), ("point",)),
        "observed_data": _points_dataset("x", x),
    }
    return vi_metrics(log_w, data_entropy=entropy), groups


def _unseen_points(
    family: Family, model_config, dataset: Dataset, data_config: DataConfig, num: int, seed: int
) -> torch.Tensor:
    """``num`` points as the model sees them, not trained on where possible: fresh draws
    of a toy mixture, else held-out points (all points where none are held out)."""
    gen = torch.Generator().manual_seed(seed)
    if dataset.mixture is not None:
        return dataset.mixture.sample(num, gen)
    held_out = load_dataset(data_config, split="holdout" if data_config.holdout > 0 else "all")
    x = family.data(held_out, model_config)
    return x[torch.randperm(len(x), generator=gen)[:num]]


def _encoder_metrics(
    model, family: Family, model_config, dataset: Dataset, data_config: DataConfig, modes, seed: int
) -> dict:
    """:func:`reconstruction_metrics` and :func:`latent_metrics`, as the family declares."""
    num = ENCODED_POINTS["images" if dataset.is_image else "points"]
    x = _unseen_points(family, model_config, dataset, data_config, num, seed + 3)
    x = x.to(next(model.parameters()).device)
    metrics = {}
    if "reconstruction" in family.diagnostics:
        centers = modes[0] if modes is not None else getattr(dataset.mixture, "centers", None)
        metrics.update(reconstruction_metrics(x.cpu(), model.reconstruct(x).cpu(), centers))
    if "latent" in family.diagnostics:
        metrics.update(latent_metrics(model.encode, x, seed=seed + 3))
    return metrics


def _data_dims(ndim: int) -> tuple[str, ...]:
    return ("channel", "row", "col") if ndim == 3 else ("x_dim",)


def _draws_dataset(name: str, values: torch.Tensor, dims: tuple[str, ...] | None = None):
    """An xarray Dataset of one variable with leading ``(chain, draw)`` dims."""
    import xarray as xr

    array = values.detach().cpu().float().numpy()
    dims = dims or _data_dims(array.ndim - 2)
    return xr.Dataset({name: (("chain", "draw", *dims), array)})


def _points_dataset(name: str, values: torch.Tensor):
    import xarray as xr

    array = values.detach().cpu().float().numpy()
    return xr.Dataset({name: (("point", *_data_dims(array.ndim - 1)), array)})


def _write(run: RunDir, metrics: dict, groups: dict, diag_vars: dict, attrs: dict) -> None:
    import arviz
    import xarray as xr

    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    groups["diagnostics"] = xr.Dataset(diag_vars, attrs={**scalars, **attrs})
    history_path = run.file(HISTORY)
    if history_path.is_file():
        history = read_history(history_path)
        if history.get("step"):
            step = np.asarray(history.pop("step"), dtype=np.int64)
            groups["training_history"] = xr.Dataset(
                {k: (("step",), np.asarray(v)) for k, v in history.items()},
                coords={"step": step},
            )
    with atomic_path(run.file(DIAGNOSTICS)) as tmp:
        arviz.InferenceData(**groups).to_netcdf(str(tmp))
    run.write_json(METRICS, {k: _json_number(v) for k, v in metrics.items()})


def _json_number(value):
    """Plain Python numbers (JSON has no NumPy types, NaN or inf: those become null)."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
