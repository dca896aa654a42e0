r"""Diagnostics of image models in the feature space of a small classifier.

Pixels are a poor space for distances and densities, so images are compared through
the penultimate layer of a small conv classifier trained on the dataset's labels (the
idea of the Inception features of FID, at the scale of 8x8 and 28x28 digits):

- **both KL directions of Gaussian fits** to the features of data and of samples;
- **precision and recall** of k-NN manifolds (Kynkaanniemi et al., 2019): precision is
  the fraction of samples inside the data's manifold (sharpness; the reverse
  direction's concern), recall the fraction of data inside the samples' manifold
  (coverage; the forward direction's);
- **mode coverage over the classes**, with the classes the classifier predicts; a
  sample is high quality when the prediction is confident.

The classifier trains in seconds on ``digits`` and is cached, keyed by dataset and by
how the images are presented (binarised for a Bernoulli VAE, grey levels otherwise).

References:
[1] Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium", NeurIPS 2017 (FID).
[2] Kynkaanniemi, Karras, Laine, Lehtinen and Aila, "Improved Precision and Recall Metric
for Assessing Generative Models", NeurIPS 2019.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn
from torch.nn import functional as F

from ..config import require_positive
from ..data import Dataset
from ..infer.checkpoint import atomic_save
from ..nets import ConvEncoder
from ..threads import torch_threads
from .checks import as_points, check_count
from .kl import gaussian_fit_kl_both
from .modes import label_coverage

#: Bump when the classifier or its training changes, so stale cache files are not used.
CLASSIFIER_VERSION = 1
#: Width of the feature layer. The Gaussian fits' KL from n points per side carries a
#: positive bias of about p/n nats (n points on each side), p = d + d(d+1)/2 the parameters of a d-dimensional
#: Gaussian: 0.19 nats at d = 16 and 800 points per side, but 0.7 at d = 32. Ten classes
#: need no more than 16.
FEATURE_DIM = 16
_BATCH = 128
_MAX_EPOCHS = 20
_MAX_STEPS = 3000
_LR = 1e-3
_CHUNK = 2048


class FeatureClassifier(nn.Module):
    """Conv classifier whose ``FEATURE_DIM``-wide penultimate layer gives the features.

    :param tuple image_shape: ``(C, 8, 8)`` or ``(C, 28, 28)``.
    :param int num_classes: number of classes.
    :param int feature_dim: width of the feature layer.

    Example::

        import torch
        from pyro_vigen.diagnostics import FeatureClassifier
        classifier = FeatureClassifier((1, 8, 8), num_classes=10)
        classifier(torch.rand(4, 1, 8, 8)).shape            # torch.Size([4, 10]): class logits
        classifier.features(torch.rand(4, 1, 8, 8)).shape   # torch.Size([4, 16])
    """

    def __init__(
        self, image_shape: tuple[int, ...], num_classes: int, feature_dim: int = FEATURE_DIM
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.body = ConvEncoder(self.image_shape, feature_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # Before the ReLU: a linear layer's output has no dead (constant-zero)
        # coordinates, which would make the Gaussian fits degenerate.
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Features and class probabilities of images, in chunks: ``(N, F)``, ``(N, C)``."""
        self.eval()
        feats, probs = [], []
        for start in range(0, len(x), _CHUNK):
            f = self.body(x[start : start + _CHUNK].float())
            feats.append(f)
            probs.append(F.softmax(self.head(f), dim=-1))
        return torch.cat(feats).double().numpy(), torch.cat(probs).double().numpy()


def train_feature_classifier(
    images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0
) -> FeatureClassifier:
    """Train a :class:`FeatureClassifier` by Adam on cross-entropy.

    ``min(20 epochs, 3000 steps)`` of minibatches of 128: about 300 steps (seconds) on
    ``digits``, 3000 on MNIST. The global random state is left untouched.

    :param torch.Tensor images: ``(N, C, H, W)`` images (8x8 or 28x28).
    :param torch.Tensor labels: ``(N,)`` integer class labels.
    :param int seed: seed of the initialisation and the minibatches.
    :returns: the trained classifier.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import train_feature_classifier
        digits = load_dataset("digits")
        classifier = train_feature_classifier(digits.x, digits.labels)    # seconds
        features = classifier.features(digits.x[:10])                      # (10, 16)
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"one label per image needed: {len(labels)} labels, {len(images)} images")
    labels = labels.long()
    num_classes = int(labels.max()) + 1
    x = images.float()
    batch = min(_BATCH, len(x))
    steps = min(_MAX_EPOCHS * (len(x) // batch), _MAX_STEPS)
    gen = torch.Generator().manual_seed(seed)
    # One thread whatever the caller's setting: a cached classifier must be the one a
    # fresh training gives, on any machine (see pyro_vigen.threads).
    with torch_threads(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureClassifier(tuple(images.shape[1:]), num_classes)
        optim = torch.optim.Adam(net.parameters(), lr=_LR)
        step = 0
        while step < steps:
            perm = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x) - batch + 1, batch):
                idx = perm[start : start + batch]
                loss = F.cross_entropy(net(x[idx]), labels[idx])
                optim.zero_grad()
                loss.backward()
                optim.step()
                step += 1
                if step == steps:
                    break
    return net.eval()


def default_cache_dir() -> Path:
    """``~/.cache/pyro_vigen``, where MNIST's files also go by default."""
    return Path(os.path.expanduser(os.path.join("~", ".cache", "pyro_vigen")))


def feature_classifier(
    dataset: Dataset,
    images: torch.Tensor,
    *,
    representation: str,
    cache_dir: str | os.PathLike | None = None,
) -> FeatureClassifier:
    """The feature classifier of a dataset, trained on ``images`` or read from the cache.

    :param dataset: the labelled image dataset (its name and labels key and train it).
    :param images: the dataset's images as the model sees them (e.g. binarised).
    :param str representation: names that presentation in the cache key (``"binary"``,
        ``"grey"``): a classifier of grey digits is the wrong feature map for binary ones.
    :param cache_dir: folder of cached classifiers (default :func:`default_cache_dir`).
        A missing, unreadable or stale file is (re)written.
    :raises ValueError: a dataset without labels.
    :returns: the classifier, in eval mode.

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import feature_classifier
        digits = load_dataset("digits")
        classifier = feature_classifier(digits, digits.x, representation="grey")  # then cached
        features, probs = classifier.embed(digits.x[:100])    # (100, 16), (100, 10)
    """
    if dataset.labels is None:
        raise ValueError(
            f"image diagnostics train a classifier on the labels, and {dataset.name!r} has none"
        )
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    shape = "x".join(str(s) for s in images.shape[1:])
    path = folder / f"feature_classifier-{dataset.name}-{representation}-{shape}.pt"
    expected = {"version": CLASSIFIER_VERSION, "num_images": len(images)}
    net = _load_cached(path, expected, tuple(images.shape[1:]))
    if net is None:
        net = train_feature_classifier(images, dataset.labels)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save({**expected, "num_classes": net.num_classes, "state": net.state_dict()}, path)
    return net


def _load_cached(path: Path, expected: dict, shape: tuple[int, ...]) -> FeatureClassifier | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if any(saved.get(k) != v for k, v in expected.items()):
            return None
        net = FeatureClassifier(shape, int(saved["num_classes"]))
        net.load_state_dict(saved["state"])
    except Exception:  # a truncated or foreign file is just a cache miss: retrain
        return None
    return net.eval()


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of Kynkaanniemi et al. (2019) on feature vectors.

    Each real point's ball reaches its k-th nearest real neighbour; the union of the
    balls is the real manifold. Precision is the fraction of fake points inside it;
    recall, symmetrically, the fraction of real points inside the fake manifold.
    Equal numbers of real and fake points keep the two comparable (the paper's setup).

    :raises ValueError: different dimensions, fewer than ``k + 1`` points, NaN/inf.
    :param real: ``(n, D)`` feature vectors of data.
    :param fake: ``(m, D)`` feature vectors of samples.
    :param int k: the neighbour whose distance sets each ball's radius.
    :returns: ``(precision, recall)``, fractions in [0, 1].

    Example::

        import numpy as np
        from pyro_vigen.diagnostics import precision_recall
        rng = np.random.default_rng(0)
        real, fake = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4)) * 0.5
        precision_recall(real, fake)    # high precision, low recall: fake covers only the core
    """
    require_positive("k", k, integer=True)
    real, fake = as_points(real, "real"), as_points(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real features have dimension {real.shape[1]}, fake {fake.shape[1]}")
    for array, name in ((real, "real"), (fake, "fake")):
        check_count(array, k + 1, name, f"k-NN manifolds with k={k}")
    return _inside(real, fake, k), _inside(fake, real, k)


def _inside(manifold: np.ndarray, points: np.ndarray, k: int) -> float:
    """Fraction of ``points`` within the k-NN ball of at least one ``manifold`` point."""
    radii = cKDTree(manifold).query(manifold, k=[k + 1], workers=-1)[0][:, 0]
    m = torch.as_tensor(manifold)
    r = torch.as_tensor(radii)
    inside = []
    for start in range(0, len(points), _CHUNK):
        d = torch.cdist(torch.as_tensor(points[start : start + _CHUNK]), m)
        inside.append((d <= r).any(1))
    return float(torch.cat(inside).double().mean())


def image_metrics(
    classifier: FeatureClassifier,
    data: torch.Tensor,
    samples: torch.Tensor,
    *,
    k: int = 3,
    confidence: float = 0.5,
) -> dict:
    """Feature-space KL (both directions), precision, recall and class coverage.

    :param data: data images as the model sees them.
    :param samples: model samples.
    :param int k: neighbour of the precision/recall manifolds.
    :param float confidence: a sample is high quality when its predicted class has at
        least this probability.
    :returns: ``kl_forward``, ``kl_reverse`` (Gaussian fits to the features; biased
        upwards by about :math:`\tfrac p2 (1/n_{data} + 1/n_{samples})`, see
        :data:`FEATURE_DIM`, which matters when comparing runs of different sizes),
        ``kl_method`` (``"gaussian_features"``), ``precision``, ``recall`` (on
        ``min(len(data), len(samples))`` of each) and the keys of
        :func:`~pyro_vigen.diagnostics.label_coverage` over the classes.
    :param FeatureClassifier classifier: the feature map (see :func:`feature_classifier`).

    Example::

        from pyro_vigen.data import load_dataset
        from pyro_vigen.diagnostics import feature_classifier, image_metrics
        digits = load_dataset("digits")
        classifier = feature_classifier(digits, digits.x, representation="grey")
        m = image_metrics(classifier, digits.x[:500], digits.x[500:1000])   # data against data
        m["precision"], m["recall"], m["modes_captured"]     # about (0.8, 0.8, 10)
    """
    if data.shape[1:] != samples.shape[1:]:
        raise ValueError(
            f"data images have shape {tuple(data.shape[1:])}, samples {tuple(samples.shape[1:])}"
        )
    as_points(samples, "samples")
    feat_data, _ = classifier.embed(data)
    feat_model, probs = classifier.embed(samples)
    forward, reverse = gaussian_fit_kl_both(feat_data, feat_model)
    n = min(len(feat_data), len(feat_model))
    precision, recall = precision_recall(feat_data[:n], feat_model[:n], k)
    coverage = label_coverage(
        probs.argmax(1), classifier.num_classes, high_quality=probs.max(1) >= confidence
    )
    return {
        "kl_forward": forward,
        "kl_reverse": reverse,
        "kl_method": "gaussian_features",
        "precision": precision,
        "recall": recall,
        **coverage,
    }
