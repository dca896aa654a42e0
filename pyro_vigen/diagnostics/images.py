r"""Diagnostics of image models in the feature space of a small classifier.

Pixels are a poor space for distances and densities, so images are compared through
the penultimate layer of a small conv classifier trained on the dataset's labels (the
idea of the Inception features of FID [1], at the scale of 8x8 and 28x28 digits):

- **both KL directions of Gaussian fits** to the features of data and of samples
  (:func:`feature_kl`), reported as NaN, with a note saying why, where the fits are
  degenerate or the value is beyond what a spread of features can give;
- **precision and recall** of k-NN manifolds [2]: precision is the fraction of samples
  inside the data's manifold (sharpness; the reverse direction's concern), recall the
  fraction of data inside the samples' manifold (coverage; the forward direction's);
- **density and coverage** [3], the same balls counted rather than united: robust to
  outliers among the data and to samples piled up in one place;
- **mode coverage over the classes**, parallel to
  :func:`~pyro_vigen.diagnostics.mode_coverage` on the toy mixtures: a sample is
  *high quality* when it is a clear image of the data (see below) and its mode is the
  class the classifier gives it; a class is *captured* when at least one high-quality
  sample falls in it.

**One feature space per dataset.** The classifier is trained on the dataset as loaded
(grey levels in [0, 1]), and every model of that dataset, VAE or GAN, whatever its
likelihood, is scored against those same images in those same features: the rows of
one table are comparable. It is cached, keyed by a digest of the images and labels
(:func:`classifier_key`).

**A classifier that junk cannot fool.** A classifier trained on the classes alone
labels anything, a blank square or noise, as some digit with high confidence, and its
features put junk anywhere, on the data's manifold too. So it is trained with one more
class, *reject*, of images that have the data's grey levels but not its shape: data
images with their pixels shuffled, and with their patches (a 4x4 grid) shuffled, which
keeps the strokes but not the digit. A sample is then high quality only when both hold:

- the classifier gives one real class a probability of at least ``confidence``, against
  the other classes *and* the reject class;
- its features lie inside the data's k-NN manifold, the precision criterion of [2]
  applied to that one sample.

Measured on ``digits`` (classifier and reference on 70% of the images) and ``mnist5k``
(on 90%): held-out digits are 91% and 87% high quality, in all 10 classes; blank,
constant (0.5, 1) and uniform-noise images, and images the reject class never saw
(inverted digits, a checkerboard, Gaussian noise, digits shifted by half their width),
0% in 0 classes. Blends of two
digits are *not* among the reject class's images: they taught the classifier to reject
any blur (3x3-box-blurred held-out digits fell from 30% to 0% high quality, and 3% of
sharp held-out digits were rejected), which would confuse the blur of a VAE's decoder
means with junk.

References:
[1] Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium", NeurIPS 2017 (FID).
[2] Kynkaanniemi, Karras, Laine, Lehtinen and Aila, "Improved Precision and Recall Metric
for Assessing Generative Models", NeurIPS 2019.
[3] Naeem, Oh, Uh, Choi and Yoo, "Reliable Fidelity and Diversity Metrics for
Generative Models", ICML 2020.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn
from torch.nn import functional as F

from ..config import require_positive
from ..data import Dataset
from ..errors import UserError
from ..nets import ConvEncoder
from ..storage import atomic_write
from ..threads import torch_threads
from .checks import Samples, as_point_pair, as_points, check_count
from .kl import gaussian_fit_kl_both, split_interval
from .modes import label_coverage
from .training import minibatch_descent

#: Bump when the classifier or its training changes, so stale cache files are not used.
#: Version 2: the reject class, and training on the dataset as loaded only.
CLASSIFIER_VERSION = 2
#: Width of the feature layer. The Gaussian fits' KL from n points per side carries a
#: positive bias of about p/n nats, p = d + d(d+1)/2 the parameters of a d-dimensional
#: Gaussian: 0.19 nats at d = 16 and 800 points per side, but 0.7 at d = 32. Ten classes
#: need no more than 16.
FEATURE_DIM = 16
#: Largest condition number of a fitted feature covariance. The features are float32
#: (7 significant digits), so along a direction whose variance is 1e-8 of the largest
#: the fit is rounding noise, and the KL, which divides by that variance, is set by it.
#: The data's own fit has 2e4 on ``digits``, 2e3 on ``mnist5k``.
MAX_CONDITION = 1e8
#: Largest KL (nats) reported as a number: 625 nats per feature dimension, as if the
#: model's features sat 35 of the data's standard deviations away, or were 35 times
#: narrower, along every one of the 16. Measured (forward and reverse, ``digits`` then
#: ``mnist5k``), every sample set with a spread of its own stays below 1.2e3 nats: uniform
#: noise 46 and 112, 451 and 318; one class only 75 and 9, 29 and 7; 3x3-blurred digits
#: 276 and 15, 3 and 2; inverted digits 595 and 424, 1158 and 1177. Values above came
#: from samples huddled around one point, where the forward KL is set by the size of
#: their jitter, not by the model: one image with pixel jitter 0.1, 0.01 and 0.001 gave
#: 5e3, 5e5 and 6e7 nats on ``digits``, 2e4, 3e6 and 3e8 on ``mnist5k``.
MAX_KL = 1e4
#: Patches per side of the patch-shuffled images of the reject class.
PATCH_GRID = 4
_REJECT_SHARE = 4  # one reject image per this many data images in a minibatch
_BATCH = 128
_MAX_EPOCHS = 20
_MAX_STEPS = 3000
_LR = 1e-3
_CHUNK = 2048
_CDIST_ENTRIES = 2**24  # bounds a distance block's memory (128 MiB of float64)


class FeatureClassifier(nn.Module):
    """Conv classifier whose ``FEATURE_DIM``-wide penultimate layer gives the features.

    It has ``num_classes + 1`` outputs: the dataset's classes, then the reject class
    (index ``num_classes``) of images that are not images of the data.

    :param tuple image_shape: ``(C, 8, 8)`` or ``(C, 28, 28)``.
    :param int num_classes: number of the dataset's classes (the reject class not counted).
    :param int feature_dim: width of the feature layer.

    Example::

        import torch
        from pyro_vigen.diagnostics import FeatureClassifier
        classifier = FeatureClassifier((1, 8, 8), num_classes=10)
        classifier(torch.rand(4, 1, 8, 8)).shape            # torch.Size([4, 11]): logits
        classifier.features(torch.rand(4, 1, 8, 8)).shape   # torch.Size([4, 16])
    """

    def __init__(
        self, image_shape: tuple[int, ...], num_classes: int, feature_dim: int = FEATURE_DIM
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.body = ConvEncoder(self.image_shape, feature_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(feature_dim, num_classes + 1))

    @property
    def reject(self) -> int:
        """Index of the reject class among the outputs."""
        return self.num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # Before the ReLU: a linear layer's output has no dead (constant-zero)
        # coordinates, which would make the Gaussian fits degenerate.
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Features and class probabilities of images, in chunks.

        :param torch.Tensor x: ``(N, C, H, W)`` images.
        :returns: ``(N, F)`` features and ``(N, num_classes + 1)`` probabilities, the
            last column the reject class's.
        """
        self.eval()
        feats, probs = [], []
        for start in range(0, len(x), _CHUNK):
            f = self.body(x[start : start + _CHUNK].float())
            feats.append(f)
            probs.append(F.softmax(self.head(f), dim=-1))
        return torch.cat(feats).double().numpy(), torch.cat(probs).double().numpy()


def shuffled_images(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The reject class's images: the first half pixel-shuffled, the rest patch-shuffled.

    Pixel shuffling keeps an image's grey levels and nothing of its shape; patch
    shuffling (a ``PATCH_GRID`` x ``PATCH_GRID`` grid of patches, never left in place)
    keeps its strokes too, but not the figure they make. Each image gets a permutation
    of its own; the channels move together.

    :param torch.Tensor images: ``(N, C, H, W)`` images, H and W multiples of ``PATCH_GRID``.
    :param torch.Generator generator: source of the permutations.
    :raises ValueError: not a batch of images, or a side that the grid does not divide.
    :returns: ``(N, C, H, W)`` shuffled copies.

    Example::

        import torch
        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import shuffled_images
        digits = load_dataset("digits").x[:8]
        junk = shuffled_images(digits, torch.Generator().manual_seed(0))   # (8, 1, 8, 8)
    """
    if images.dim() != 4:
        raise UserError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    if h % PATCH_GRID or w % PATCH_GRID:
        raise UserError(
            f"patch shuffling needs sides that are multiples of {PATCH_GRID}, got {h}x{w}"
        )
    half = n // 2
    flat = images[:half].reshape(half, c, h * w)
    perm = torch.rand(half, h * w, generator=generator).argsort(1)
    pixels = flat.gather(2, perm[:, None, :].expand_as(flat)).reshape(half, c, h, w)

    g, ph, pw, m = PATCH_GRID, h // PATCH_GRID, w // PATCH_GRID, n - half
    blocks = images[half:].reshape(m, c, g, ph, g, pw).permute(0, 2, 4, 1, 3, 5)
    blocks = blocks.reshape(m, g * g, c, ph, pw)
    perm = torch.rand(m, g * g, generator=generator).argsort(1)
    # The identity would label a data image as reject: move every patch one place on.
    identity = (perm == torch.arange(g * g)).all(1)
    perm[identity] = perm[identity].roll(1, 1)
    blocks = blocks.gather(1, perm[:, :, None, None, None].expand_as(blocks))
    patches = blocks.reshape(m, g, g, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(m, c, h, w)
    return torch.cat([pixels, patches])


def train_feature_classifier(
    images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0
) -> FeatureClassifier:
    """Train a :class:`FeatureClassifier` by Adam on cross-entropy, with a reject class.

    Every minibatch of 128 data images gets 32 images of the reject class, made afresh
    by :func:`shuffled_images` from random data images. ``min(20 epochs, 3000 steps)``:
    about 280 steps (seconds) on ``digits``, 780 on ``mnist5k``. The global random state
    is left untouched.

    :param torch.Tensor images: ``(N, C, H, W)`` images (8x8 or 28x28).
    :param torch.Tensor labels: ``(N,)`` integer class labels.
    :param int seed: seed of the initialisation, the minibatches and the reject images.
    :raises ValueError: images that are not a batch, or not one label per image.
    :returns: the trained classifier, in eval mode.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import train_feature_classifier
        digits = load_dataset("digits")
        classifier = train_feature_classifier(digits.x, digits.labels)    # seconds
        features = classifier.features(digits.x[:10])                      # (10, 16)
    """
    if images.dim() != 4:
        raise UserError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if labels.shape != images.shape[:1]:
        raise UserError(f"one label per image needed: {len(labels)} labels, {len(images)} images")
    labels = labels.long()
    num_classes = int(labels.max()) + 1
    x = images.float()
    batch = min(_BATCH, len(x))
    num_reject = max(1, batch // _REJECT_SHARE)
    steps = min(_MAX_EPOCHS * (len(x) // batch), _MAX_STEPS)
    reject = torch.full((num_reject,), num_classes)
    gen = torch.Generator().manual_seed(seed)
    # One thread whatever the caller's setting: a cached classifier must be the one a
    # fresh training gives, on any machine (see pyro_vigen.threads).
    with torch_threads(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureClassifier(tuple(images.shape[1:]), num_classes)
        optim = torch.optim.Adam(net.parameters(), lr=_LR)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            junk = shuffled_images(x[torch.randint(len(x), (num_reject,), generator=gen)], gen)
            logits = net(torch.cat([x[idx], junk]))
            return F.cross_entropy(logits, torch.cat([labels[idx], reject]))

        minibatch_descent(loss, optim, num_points=len(x), batch=batch, steps=steps, generator=gen)
    return net.eval()


def default_cache_dir() -> Path:
    """``~/.cache/pyro_vigen``, where MNIST's files also go by default."""
    return Path(os.path.expanduser(os.path.join("~", ".cache", "pyro_vigen")))


def dataset_digest(dataset: Dataset) -> str:
    """SHA-256 (first 16 hex digits) of a dataset's images (as float32) and labels.

    :param dataset: an image dataset.
    :returns: the digest; equal digests mean the same images in the same order.
    """
    h = hashlib.sha256(str(tuple(dataset.x.shape)).encode())
    h.update(dataset.x.detach().cpu().float().contiguous().numpy().tobytes())
    if dataset.labels is not None:
        h.update(dataset.labels.detach().cpu().long().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def classifier_key(dataset: Dataset) -> str:
    """Identity of a dataset's feature classifier: name, image shape, digest, version.

    It names the cache file, and ``metrics.json`` records it: two runs with the same
    key were scored in the same feature space against the same images.

    :param dataset: the labelled image dataset.
    :returns: e.g. ``"digits-1x8x8-3f2a9c1b7d0e4a55-v2"``.
    """
    shape = "x".join(str(s) for s in dataset.x.shape[1:])
    return f"{dataset.name}-{shape}-{dataset_digest(dataset)}-v{CLASSIFIER_VERSION}"


def feature_classifier(
    dataset: Dataset, *, cache_dir: str | os.PathLike | None = None
) -> FeatureClassifier:
    """The feature classifier of a dataset, trained on its images or read from the cache.

    Trained on ``dataset.x`` as loaded (grey levels) and ``dataset.labels``, whatever
    model is to be scored: one feature space per dataset.

    :param dataset: the labelled image dataset.
    :param cache_dir: folder of cached classifiers (default :func:`default_cache_dir`),
        one file per :func:`classifier_key`. A missing, unreadable or stale file is
        (re)written.
    :raises ValueError: a dataset without labels, or one that is not of images.
    :returns: the classifier, in eval mode.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import feature_classifier
        digits = load_dataset("digits", split="all")
        classifier = feature_classifier(digits)               # trained once, then cached
        features, probs = classifier.embed(digits.x[:100])    # (100, 16), (100, 11)
    """
    if dataset.labels is None:
        raise UserError(
            f"image diagnostics train a classifier on the labels, and {dataset.name!r} has none"
        )
    if not dataset.is_image:
        raise UserError(
            f"{dataset.name!r} holds points of shape {dataset.shape}, not (C, H, W) images"
        )
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = classifier_key(dataset)
    path = folder / f"feature_classifier-{key}.pt"
    expected = {"version": CLASSIFIER_VERSION, "key": key}
    net = load_cached_net(
        path, expected, lambda saved: FeatureClassifier(dataset.shape, int(saved["num_classes"]))
    )
    if net is None:
        net = train_feature_classifier(dataset.x, dataset.labels)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, {**expected, "num_classes": net.num_classes, "state": net.state_dict()})
    return net


def load_cached_net(
    path: Path, expected: dict, build: Callable[[dict], nn.Module]
) -> nn.Module | None:
    """A net read from its cache file, in eval mode; ``None`` for a cache miss.

    :param Path path: the cache file.
    :param dict expected: entries the file must hold with these values (its version, key).
    :param build: the untrained net of the file's entries, its ``state`` then loaded.
    :returns: the net, or ``None`` for a missing, stale, truncated or foreign file.
    """
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if any(saved.get(k) != v for k, v in expected.items()):
            return None
        net = build(saved)
        net.load_state_dict(saved["state"])
    except Exception:  # a truncated or foreign file is just a cache miss: retrain
        return None
    return net.eval()


def feature_kl(real: Samples, fake: Samples) -> dict:
    r"""Both KL directions of Gaussian fits to features, NaN where they mean nothing.

    :func:`~pyro_vigen.diagnostics.gaussian_fit_kl_both`, checked: a fit whose
    covariance has a rank below the dimension or a condition number above
    :data:`MAX_CONDITION` (samples on one point, or on a few) has no density off a
    subspace, and the KL, :math:`\tfrac12[\mathrm{tr}(C_1^{-1}C_0) + \dots]`, is then
    set by the ridge and by rounding (a collapsed GAN on ``mnist5k`` got
    :math:`1.3\times10^{17}`): both directions are NaN. A finite value above
    :data:`MAX_KL` is NaN too, in its direction only. Each case warns
    (``RuntimeWarning``) and says why in ``kl_note``.

    :param real: ``(n, D)`` features of data.
    :param fake: ``(m, D)`` features of samples.
    :raises ValueError: different dimensions, fewer than 2 points on a side, NaN/inf.
    :returns: ``kl_forward`` (:math:`KL(p_{data}\|p_{model})` of the fits),
        ``kl_reverse``, ``kl_method`` (``"gaussian_features"``), their 95% intervals
        ``kl_forward_interval`` and ``kl_reverse_interval``
        (:func:`~pyro_vigen.diagnostics.kl.split_interval`; ``None`` where the value is
        NaN) and, where a value is NaN, ``kl_note``.

    Example::

        import numpy as np
        from pyro_vigen.diagnostics import feature_kl
        rng = np.random.default_rng(0)
        feature_kl(rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4)))  # both about 0.01
        feature_kl(rng.normal(size=(1000, 4)), np.ones((1000, 4)))          # NaN, with a warning
    """
    a, b = as_point_pair(real, fake, ("real", "fake"))
    for array, name in ((a, "real"), (b, "fake")):
        check_count(array, 2, name, "a covariance estimate")
    out = {"kl_forward": math.nan, "kl_reverse": math.nan, "kl_method": "gaussian_features"}
    problems = [p for p in (_fit_problem(a, "data's"), _fit_problem(b, "samples'")) if p]
    if problems:
        note = (
            "; ".join(problems) + ": a Gaussian fit has no density off a subspace, so both "
            "KL directions are undefined"
        )
    else:
        values = dict(zip(("kl_forward", "kl_reverse"), gaussian_fit_kl_both(a, b), strict=True))
        too_big = {k: v for k, v in values.items() if v > MAX_KL}
        out.update({k: v for k, v in values.items() if k not in too_big})
        note = (
            " and ".join(f"{k} = {v:.3g}" for k, v in too_big.items())
            + f" exceeds {MAX_KL:g} nats, beyond any spread of features measured: such "
            "values come from samples huddled around a point, and measure their jitter"
            if too_big
            else None
        )
    estimate = (out["kl_forward"], out["kl_reverse"])
    intervals = split_interval(gaussian_fit_kl_both, a, b, estimate) if not problems else [None] * 2
    for key, interval in zip(("kl_forward", "kl_reverse"), intervals, strict=True):
        out[f"{key}_interval"] = interval
    if note is not None:
        note = f"feature KL reported as NaN: {note}"
        warnings.warn(note, RuntimeWarning, stacklevel=2)
        out["kl_note"] = note
    return out


def _fit_problem(x: np.ndarray, whose: str) -> str | None:
    """Why a Gaussian fit to ``x`` is degenerate, or ``None``; ``whose`` names the owner."""
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    d = len(cov)
    rank = int(np.linalg.matrix_rank(cov, hermitian=True))
    if rank < d:
        return f"the {whose} features span {rank} of {d} dimensions ({len(x)} points)"
    eig = np.linalg.eigvalsh(cov)
    if eig[-1] > MAX_CONDITION * eig[0]:
        return (
            f"the {whose} feature covariance has condition number {eig[-1] / eig[0]:.3g} "
            f"(above {MAX_CONDITION:g})"
        )
    return None


def _radii(manifold: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour among the others."""
    return cKDTree(manifold).query(manifold, k=[k + 1], workers=-1)[0][:, 0]


def _inside_any(manifold: np.ndarray, radii: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each of ``points`` lies in the ball of at least one ``manifold`` point."""
    m = torch.as_tensor(manifold)
    r = torch.as_tensor(radii)
    rows = max(1, _CDIST_ENTRIES // len(manifold))
    inside = []
    for start in range(0, len(points), rows):
        d = torch.cdist(torch.as_tensor(points[start : start + rows]), m)
        inside.append((d <= r).any(1))
    return torch.cat(inside).numpy()


def _checked_pair(real: Samples, fake: Samples, k: int) -> tuple[np.ndarray, np.ndarray]:
    require_positive("k", k, integer=True)
    real, fake = as_points(real, "real"), as_points(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise UserError(f"real features have dimension {real.shape[1]}, fake {fake.shape[1]}")
    return real, fake


def precision_recall(real: Samples, fake: Samples, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of Kynkaanniemi et al. (2019) on feature vectors.

    Each real point's ball reaches its k-th nearest real neighbour; the union of the
    balls is the real manifold. Precision is the fraction of fake points inside it;
    recall, symmetrically, the fraction of real points inside the fake manifold.
    Equal numbers of real and fake points keep the two comparable (the paper's setup).

    :param real: ``(n, D)`` feature vectors of data.
    :param fake: ``(m, D)`` feature vectors of samples.
    :param int k: the neighbour whose distance sets each ball's radius.
    :raises ValueError: different dimensions, fewer than ``k + 1`` points, NaN/inf.
    :returns: ``(precision, recall)``, fractions in [0, 1].

    Example::

        import numpy as np
        from pyro_vigen.diagnostics import precision_recall
        rng = np.random.default_rng(0)
        real, fake = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4)) * 0.5
        precision_recall(real, fake)    # high precision, low recall: fake covers only the core
    """
    real, fake = _checked_pair(real, fake, k)
    for array, name in ((real, "real"), (fake, "fake")):
        check_count(array, k + 1, name, f"k-NN manifolds with k={k}")
    precision = _inside_any(real, _radii(real, k), fake).mean()
    recall = _inside_any(fake, _radii(fake, k), real).mean()
    return float(precision), float(recall)


def density_coverage(real: Samples, fake: Samples, k: int = 5) -> tuple[float, float]:
    r"""Density and coverage of Naeem et al. (2020) on feature vectors.

    With :math:`B(X_i, \mathrm{NND}_k(X_i))` the ball around real point :math:`X_i`
    that reaches its k-th nearest real neighbour, N real and M fake points:

    .. math::

        \mathrm{density} = \frac1{kM}\sum_{j=1}^M\sum_{i=1}^N
            1[Y_j \in B(X_i, \mathrm{NND}_k(X_i))], \qquad
        \mathrm{coverage} = \frac1N\sum_{i=1}^N
            1[\exists\, j:\ Y_j \in B(X_i, \mathrm{NND}_k(X_i))].

    Density counts how many balls hold each sample, not whether one does (precision):
    an outlier among the data inflates its own ball only, and density is about 1 when
    the samples follow the data. Coverage
    asks of each real point whether a sample came near it, in the real balls, so
    samples piled up far from the data do not count. The paper takes k = 5.

    :param real: ``(N, D)`` feature vectors of data.
    :param fake: ``(M, D)`` feature vectors of samples.
    :param int k: the neighbour whose distance sets each ball's radius.
    :raises ValueError: different dimensions, fewer than ``k + 1`` real points, NaN/inf.
    :returns: ``(density, coverage)``: density is non-negative (at most N/k), coverage
        a fraction in [0, 1].

    Example::

        import numpy as np
        from pyro_vigen.diagnostics import density_coverage
        rng = np.random.default_rng(0)
        real = rng.normal(size=(2000, 4))
        density_coverage(real, rng.normal(size=(2000, 4)))         # about (1.00, 0.98)
        density_coverage(real, 0.1 * rng.normal(size=(2000, 4)))   # the core only: (0.82, 0.03)
    """
    real, fake = _checked_pair(real, fake, k)
    check_count(real, k + 1, "real", f"density and coverage with k={k}")
    radii = _radii(real, k)
    # Fakes inside each real ball; closed balls, as the indicator 1[Y_j in B] says.
    held = cKDTree(fake).query_ball_point(real, r=radii, return_length=True, workers=-1)
    return float(held.sum() / (k * len(fake))), float((held > 0).mean())


def image_metrics(
    classifier: FeatureClassifier,
    data: torch.Tensor,
    samples: torch.Tensor,
    *,
    k: int = 3,
    k_density: int = 5,
    confidence: float = 0.5,
    seed: int = 0,
) -> dict:
    r"""Feature-space KL, precision, recall, density, coverage and class coverage.

    A sample is high quality when the classifier gives one of the dataset's classes a
    probability of at least ``confidence`` (so neither another class nor the reject
    class can be the most likely) *and* its features lie inside the k-NN manifold of
    all of ``data``'s features (the precision criterion, per sample). Its mode is that
    class; a class is captured when at least one high-quality sample falls in it; the
    mode KL is that of the high-quality samples' class histogram from uniform, as
    for the toy mixtures' :func:`~pyro_vigen.diagnostics.mode_coverage`.

    :param FeatureClassifier classifier: the feature map (see :func:`feature_classifier`).
    :param data: the reference images, the dataset as loaded.
    :param samples: model images (a VAE's decoder means, a GAN's samples).
    :param int k: neighbour of the precision/recall manifolds and of the high-quality test.
    :param int k_density: neighbour of density and coverage (the paper's 5).
    :param float confidence: the least probability of the predicted class, in (0, 1].
    :param int seed: seed of the random subset of the data that precision, recall,
        density and coverage take where the data outnumber the samples.
    :raises ValueError: images of different shapes, NaN/inf samples, ``confidence``
        outside (0, 1].
    :returns: the keys of :func:`feature_kl` (Gaussian fits, biased upwards by about
        :math:`\tfrac p2 (1/n_{data} + 1/n_{samples})`, see :data:`FEATURE_DIM`, which
        matters when comparing runs of different sizes), ``precision``, ``recall``,
        ``density`` and ``coverage`` (on ``min(len(data), len(samples))`` of each: the
        first samples, a random subset of the data) and the keys of
        :func:`~pyro_vigen.diagnostics.label_coverage` over the classes.

    Example::

        from pyro_vigen.data import DataConfig, load_dataset
        from pyro_vigen.diagnostics import feature_classifier, image_metrics
        config = DataConfig("digits", holdout=0.3)
        train, held_out = load_dataset(config), load_dataset(config, split="holdout")
        classifier = feature_classifier(train)
        m = image_metrics(classifier, train.x, held_out.x)      # data against data
        m["hq_fraction"], m["modes_captured"], m["precision"]   # about (0.91, 10, 0.92)
    """
    if not 0 < confidence <= 1:
        raise UserError(f"confidence must be a probability in (0, 1], got {confidence!r}")
    if data.shape[1:] != samples.shape[1:]:
        raise UserError(
            f"data images have shape {tuple(data.shape[1:])}, samples {tuple(samples.shape[1:])}"
        )
    as_points(samples, "samples")
    feat_data, _ = classifier.embed(data)
    feat_model, probs = classifier.embed(samples)
    # Equal counts for the set-to-set measures. The data's subset is drawn at random:
    # files can be sorted by class (mnist5k's is), and its first n would hold a few
    # classes only. The samples are independent draws, so their first n will do.
    n = min(len(feat_data), len(feat_model))
    real = feat_data[np.random.default_rng(seed).permutation(len(feat_data))[:n]]
    precision, recall = precision_recall(real, feat_model[:n], k)
    density, coverage = density_coverage(real, feat_model[:n], k_density)
    classes = probs[:, : classifier.num_classes]
    on_manifold = _inside_any(feat_data, _radii(feat_data, k), feat_model)
    high_quality = (classes.max(1) >= confidence) & on_manifold
    return {
        **feature_kl(feat_data, feat_model),
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
        **label_coverage(classes.argmax(1), classifier.num_classes, high_quality=high_quality),
    }
