"""``diagnose`` and ``pyro-vigen diagnose`` on short VAE and GAN runs."""

import json
import math
import shutil

import arviz
import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from pyro_vigen.cli import main
from pyro_vigen.data import DataConfig, load_dataset
from pyro_vigen.diagnostics import classifier_key, diagnose, image_metrics
from pyro_vigen.diagnostics import run as run_module
from pyro_vigen.infer import AAETrainConfig, GANTrainConfig, VAETrainConfig, load_run, train
from pyro_vigen.models import VAEConfig

ALWAYS = {"kl_forward", "kl_reverse", "kl_method", "num_samples"}
INTERVALS = {"kl_forward_interval", "kl_reverse_interval", "interval_method"}
MODES = {"num_modes", "modes_captured", "hq_fraction", "mode_kl"}
VAE_KEYS = {"elbo", "iwae", "iwae_particles", "khat_mean", "khat_frac_over_0_7"}
GAN_KEYS = {"disc_kl_forward", "disc_kl_reverse", "jsd"}
GAN_INTERVALS = {"disc_kl_forward_interval", "disc_kl_reverse_interval", "jsd_interval"}
ENCODER_KEYS = {
    "recon_mse",
    "recon_rel_error",
    "latent_kl_forward",
    "latent_kl_reverse",
    "latent_kl_forward_interval",
    "latent_kl_reverse_interval",
    "latent_kl_method",
}
IMAGE_KEYS = {
    "precision",
    "recall",
    "density",
    "coverage",
    "image_samples",
    "reference_data",
    "feature_classifier",
}


@pytest.fixture(scope="module")
def one_thread():
    # Short runs of small nets: intra-op threads only add synchronisation on 2 cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("runs")
    ring = DataConfig("ring8", num_points=2000)
    short = {"steps": 200, "checkpoint_every": 100, "num_saved_samples": 100}
    train("vae", root / "vae", ring, VAETrainConfig(**short), progress=False)
    train("gan", root / "gan", ring, GANTrainConfig(**short), progress=False)
    train("aae", root / "aae", ring, AAETrainConfig(**short), progress=False)
    train("ali", root / "ali", ring, GANTrainConfig(**short), progress=False)
    # A Bernoulli VAE trains on binarised digits, the GAN on grey ones: both must still
    # be scored against the same grey digits.
    train(
        "vae",
        root / "digits",
        DataConfig("digits"),
        VAETrainConfig(**short, batch_size=64),
        VAEConfig(likelihood="bernoulli"),
        progress=False,
    )
    train(
        "gan",
        root / "digits_gan",
        DataConfig("digits"),
        GANTrainConfig(steps=30, checkpoint_every=30, num_saved_samples=100, batch_size=64),
        progress=False,
    )
    return root


@pytest.fixture
def home(tmp_path_factory, monkeypatch):
    """The CLI caches the digits classifier under ~/.cache: keep that out of the real home."""
    home = tmp_path_factory.getbasetemp() / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    return home


def read_metrics(run):
    return json.loads((run / "metrics.json").read_text())


def test_cli_diagnose_vae_ring8(runs, home, capsys):
    run = runs / "vae"
    assert main(["diagnose", str(run), "--num-samples", "1000"]) == 0
    assert "metrics.json" in capsys.readouterr().out
    metrics = read_metrics(run)
    assert set(metrics) == (
        ALWAYS | INTERVALS | MODES | VAE_KEYS | ENCODER_KEYS | {"joint_kl", "recon_same_mode"}
    )
    assert metrics["num_samples"] == 1000 and metrics["num_modes"] == 8
    assert metrics["kl_method"].startswith("mc")
    assert metrics["iwae_particles"] == 1000
    assert metrics["elbo"] <= metrics["iwae"]
    assert all(np.isfinite(v).all() for v in metrics.values() if not isinstance(v, str))

    idata = arviz.from_netcdf(run / "diagnostics.nc")
    for group in ("posterior", "sample_stats", "observed_data", "posterior_predictive"):
        assert group in idata.groups()
    z, log_w = idata.posterior["z"], idata.sample_stats["log_weight"]
    assert z.shape == (1, 1000, 500, 2) and log_w.shape == (1, 1000, 500)
    assert idata.observed_data["x"].shape == (500, 2)
    assert idata.posterior_predictive["x"].shape == (1, 1000, 2)
    # The stored weights are the ones behind the metrics: k-hat and the IWAE bound
    # recomputed from the file agree with metrics.json.
    lw = log_w.values[0].astype(np.float64)
    _, khat = arviz.psislw(lw.T)
    khat = np.where(np.ptp(lw, axis=0) > 0, khat, 0.0)
    assert np.mean(khat) == pytest.approx(metrics["khat_mean"], abs=1e-3)
    iwae = np.mean(np.logaddexp.reduce(lw, axis=0) - np.log(1000))
    assert iwae == pytest.approx(metrics["iwae"], abs=1e-4)
    diag = idata["diagnostics"]
    assert diag["khat"].shape == (500,) and diag["mode_counts"].shape == (8,)
    history = idata["training_history"]
    assert list(history["step"].values) == list(range(1, 201))
    assert "loss" in history


def test_cli_diagnose_gan_ring8(runs, home):
    run = runs / "gan"
    assert main(["diagnose", str(run), "--num-samples", "1000"]) == 0
    metrics = read_metrics(run)
    assert set(metrics) == ALWAYS | INTERVALS | MODES | GAN_KEYS | GAN_INTERVALS
    assert metrics["kl_method"] == "knn"
    idata = arviz.from_netcdf(run / "diagnostics.nc")
    assert "posterior" not in idata.groups()
    assert idata.posterior_predictive["x"].shape == (1, 1000, 2)
    assert idata["diagnostics"].attrs["jsd"] == pytest.approx(metrics["jsd"])


@pytest.mark.parametrize("kind", ["aae", "ali"])
def test_diagnose_families_with_an_encoder(runs, kind):
    """The AAE and ALI get reconstruction and aggregate-posterior metrics, recomputed here
    from the trained model by hand on the same points."""
    run = runs / kind
    metrics = diagnose(run, num_samples=1000)
    assert set(metrics) == ALWAYS | INTERVALS | MODES | ENCODER_KEYS | {"recon_same_mode"}
    assert metrics["latent_kl_method"] == "knn"
    assert "latent_kl_forward" in metrics["interval_method"]
    _, model = load_run(run)
    mixture = load_dataset("ring8").mixture
    x = mixture.sample(5000, torch.Generator().manual_seed(3))  # seed + 3, as diagnose draws
    with torch.no_grad():
        loc, _ = model.encode(x)
        x_hat = model.decoder(loc) if kind == "ali" else model.likelihood(loc).base_dist.mean
    dist2 = (x - x_hat).pow(2).sum(1).numpy()
    assert metrics["recon_mse"] == pytest.approx(dist2.mean() / 2, rel=1e-4)
    total = x.numpy().var(0, ddof=1).sum()
    assert metrics["recon_rel_error"] == pytest.approx(dist2.mean() / total, rel=1e-4)
    centres = mixture.centers.numpy()

    def nearest(p):
        return ((p.numpy()[:, None] - centres[None]) ** 2).sum(-1).argmin(1)

    same = np.mean(nearest(x) == nearest(x_hat))
    assert metrics["recon_same_mode"] == pytest.approx(same)


def test_cli_diagnose_vae_digits(runs, home):
    run = runs / "digits"
    assert main(["diagnose", str(run), "--num-samples", "500"]) == 0
    metrics = read_metrics(run)
    # kl_note only where a KL is null: a short run's decoder means may huddle.
    assert set(metrics) - {"kl_note"} == (
        ALWAYS | INTERVALS | MODES | VAE_KEYS | IMAGE_KEYS | ENCODER_KEYS
    )
    assert ("kl_note" in metrics) == (None in (metrics["kl_forward"], metrics["kl_reverse"]))
    assert metrics["kl_method"] == "gaussian_features" and metrics["num_modes"] == 10
    for key in ("precision", "recall", "coverage", "hq_fraction"):
        assert 0 <= metrics[key] <= 1
    assert metrics["density"] >= 0
    digits = load_dataset("digits", split="all")
    assert (
        home / ".cache" / "pyro_vigen" / f"feature_classifier-{classifier_key(digits)}.pt"
    ).is_file()
    idata = arviz.from_netcdf(run / "diagnostics.nc")
    assert idata.posterior_predictive["x"].dims == ("chain", "draw", "channel", "row", "col")
    assert idata.posterior["z"].shape[:3] == (1, 256, 100)


# A 30-step GAN's samples huddle together: its forward feature KL may be NaN, with a warning.
@pytest.mark.filterwarnings("ignore:feature KL reported as NaN:RuntimeWarning")
def test_image_runs_share_reference_and_features(runs, home, monkeypatch):
    """A VAE and a GAN of one image dataset are scored alike: against the same grey
    images (not the Bernoulli VAE's binarised training data), by the same classifier;
    the VAE on its decoder means."""
    seen = []

    def spy(classifier, data, samples, **kwargs):
        seen.append((classifier, data, samples))
        return image_metrics(classifier, data, samples, **kwargs)

    monkeypatch.setattr(run_module, "image_metrics", spy)
    diagnose(runs / "digits", num_samples=300, seed=3)
    diagnose(runs / "digits_gan", num_samples=300, seed=3)
    vae_metrics, gan_metrics = read_metrics(runs / "digits"), read_metrics(runs / "digits_gan")
    digits = load_dataset("digits", split="all")
    assert vae_metrics["feature_classifier"] == gan_metrics["feature_classifier"]
    assert vae_metrics["feature_classifier"] == classifier_key(digits)
    assert vae_metrics["reference_data"] == gan_metrics["reference_data"]
    assert vae_metrics["reference_data"].startswith("digits: 1797 images as loaded")
    assert vae_metrics["image_samples"] == "decoder means"
    assert gan_metrics["image_samples"] == "samples"

    (vae_net, vae_data, vae_samples), (gan_net, gan_data, gan_samples) = seen
    assert torch.equal(vae_data, digits.x) and torch.equal(gan_data, digits.x)
    assert ((digits.x > 0) & (digits.x < 1)).any()  # grey levels, not binarised
    for a, b in zip(vae_net.state_dict().values(), gan_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert len(list((home / ".cache" / "pyro_vigen").glob("feature_classifier-*"))) == 1

    _, vae = load_run(runs / "digits")
    assert vae.config.likelihood == "bernoulli"
    means = vae.sample(300, generator=torch.Generator().manual_seed(3), noise=False)
    torch.testing.assert_close(vae_samples, means)
    assert not torch.equal(vae_samples, vae_samples.round())  # means, not 0/1 draws
    assert gan_samples.shape == (300, 1, 8, 8)


def test_diagnose_is_seeded(runs, tmp_path):
    copy = tmp_path / "gan"
    shutil.copytree(runs / "gan", copy)
    state = torch.get_rng_state()
    first = diagnose(copy, num_samples=300, seed=5)
    assert torch.equal(state, torch.get_rng_state())
    assert diagnose(copy, num_samples=300, seed=5) == first
    assert diagnose(copy, num_samples=300, seed=6) != first


def test_no_checkpoint(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "vae", run)
    (run / "checkpoint.pt").unlink()
    with pytest.raises(ValueError, match="no checkpoint"):
        diagnose(run)
    assert main(["diagnose", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no checkpoint" in err


def test_unknown_kind(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "vae", run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "kind": "flow"}))
    with pytest.raises(ValueError, match="unknown model kind"):
        diagnose(run)
    assert main(["diagnose", str(run)]) == 2
    assert "unknown model kind" in capsys.readouterr().err


def test_not_a_run_directory(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_nan_model_samples(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "vae", run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model"] = {k: torch.full_like(v, float("nan")) for k, v in state["model"].items()}
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(ValueError, match="NaN or inf"):
        diagnose(run)
    assert main(["diagnose", str(run)]) == 2
    assert "NaN or inf" in capsys.readouterr().err


def test_bad_num_samples(runs, capsys):
    assert main(["diagnose", str(runs / "gan"), "--num-samples", "0"]) == 2
    assert "num_samples must be positive" in capsys.readouterr().err


# Known modes of a user's own data: three centres, per-axis std 0.2, so a sample is
# high quality within 3 * 0.2 = 0.6 of its nearest centre.
CENTERS = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
CENTER_STD = 0.2


@pytest.fixture(scope="module")
def three_modes(tmp_path_factory, one_thread):
    """A short VAE run on a user file around CENTERS, and the file of centres."""
    root = tmp_path_factory.mktemp("three_modes")
    rng = np.random.default_rng(0)
    x = CENTERS[np.arange(300) % 3] + CENTER_STD * rng.standard_normal((300, 2))
    np.save(root / "points.npy", x.astype(np.float32))
    np.save(root / "centers.npy", CENTERS)
    short = {"steps": 20, "checkpoint_every": 20, "num_saved_samples": 100, "batch_size": 64}
    train(
        "vae",
        root / "run",
        DataConfig(str(root / "points.npy")),
        VAETrainConfig(**short),
        progress=False,
    )
    return root


def around(center, radius, n, rng):
    """n points at distance ``radius`` (an array of n, or one number) from ``center``."""
    angle = rng.uniform(0, 2 * np.pi, n)
    return center + np.asarray(radius)[..., None] * np.stack([np.cos(angle), np.sin(angle)], 1)


def test_cli_diagnose_scores_modes_against_the_users_centres(three_modes, monkeypatch, capsys):
    rng = np.random.default_rng(1)
    samples = np.concatenate(
        [
            around(CENTERS[0], rng.uniform(0, 0.55, 500), 500, rng),  # high quality, mode 0
            around(CENTERS[1], rng.uniform(0, 0.55, 250), 250, rng),  # high quality, mode 1
            around(CENTERS[2], 0.7, 150, rng),  # nearest mode 2, but beyond 3 std
            10.0 + rng.uniform(0, 1, (100, 2)),  # far from every mode
        ]
    )
    monkeypatch.setattr(
        run_module,
        "_model_samples",
        lambda *args: (torch.as_tensor(samples, dtype=torch.float32), "samples"),
    )
    run, centers = three_modes / "run", three_modes / "centers.npy"
    argv = ["diagnose", str(run), "--num-samples", "1000", "--centers", str(centers)]
    assert main([*argv, "--std", str(CENTER_STD)]) == 0
    assert "modes_captured       2" in capsys.readouterr().out
    metrics = read_metrics(run)
    assert metrics["num_modes"] == 3 and metrics["modes_captured"] == 2
    # 500 + 250 of the 1000 samples lie within 0.6 of a centre.
    assert metrics["hq_fraction"] == pytest.approx(0.75)
    # h = (2/3, 1/3, 0) against uniform thirds: 2/3 log 2 + 1/3 log 1.
    assert metrics["mode_kl"] == pytest.approx(2 / 3 * np.log(2))
    assert metrics["mode_centers"] == f"{centers} (3 centres, std 0.2)"
    diag = arviz.from_netcdf(run / "diagnostics.nc")["diagnostics"]
    assert list(diag["mode_counts"].values) == [500, 250, 0]


def error_line(capsys):
    """The one error line of the CLI's stderr (which may also hold a progress display)."""
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    return line


def write_centers(tmp_path, name, array):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, array)
    else:
        np.savetxt(path, array, delimiter=",")
    return path


BAD_CENTRES = {
    "wrong dimension": (
        "c3.npy",
        np.zeros((3, 3)),
        "0.2",
        "{path}: the mode centres have dimension 3 but the data has dimension 2",
    ),
    "nan in npy": (
        "nan.npy",
        np.array([[0.0, np.nan], [1.0, 1.0]]),
        "0.2",
        "{path}: 1 centre coordinate(s) are NaN or inf (first in centre 0)",
    ),
    "inf in csv": (
        "inf.csv",
        np.array([[2.0, 0.0], [5.0, np.inf]]),
        "0.2",
        "{path}: 1 centre coordinate(s) are NaN or inf (first in centre 1)",
    ),
    "not K x D": ("flat.npy", np.zeros(2), "0.2", "{path}: expected an N x D array"),
    "std 0": ("ok.npy", CENTERS, "0", "argument --std: std must be positive, got 0.0"),
    "std < 0": ("ok.npy", CENTERS, "-1", "argument --std: std must be positive, got -1.0"),
    "std nan": ("ok.npy", CENTERS, "nan", "--std: std must be a finite number > 0, got nan"),
    "no std": ("ok.npy", CENTERS, None, "argument --std: centers need std"),
}


@pytest.mark.parametrize("name, array, std, message", BAD_CENTRES.values(), ids=BAD_CENTRES)
def test_cli_diagnose_refuses_bad_centres(three_modes, tmp_path, capsys, name, array, std, message):
    path = write_centers(tmp_path, name, array)
    argv = ["diagnose", str(three_modes / "run"), "--centers", str(path)]
    assert main(argv + ([] if std is None else ["--std", std])) == 2
    assert message.format(path=path) in error_line(capsys)


def test_cli_diagnose_refuses_std_without_centres_and_a_missing_file(three_modes, tmp_path, capsys):
    run = str(three_modes / "run")
    assert main(["diagnose", run, "--std", "0.2"]) == 2
    assert "argument --centers: std is the spread of known mode centres" in error_line(capsys)
    missing = tmp_path / "missing.npy"
    assert main(["diagnose", run, "--centers", str(missing), "--std", "0.2"]) == 2
    assert f"mode centres file {missing} does not exist" in error_line(capsys)


# A linear-Gaussian VAE written into a run's checkpoint: z ~ N(0, I), x = W z + b + s eps,
# so p_model(x) = N(b, W W^T + s^2 I) in closed form, and with W^T W diagonal the guide can
# be the exact posterior N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^-1, which makes
# the importance-sampled log-density exact whatever the particles.
GRID_CENTRES = np.array([(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], float)
GRID_STD = 0.05


def write_linear_vae(run, w, b, s):
    w, b = np.asarray(w, float), np.asarray(b, float)
    post_cov = np.linalg.inv(np.eye(2) + w.T @ w / s**2)
    assert abs(post_cov[0, 1]) < 1e-12
    a = post_cov @ w.T / s**2  # posterior mean = a (x - b)
    raw = np.log(np.expm1(np.sqrt(np.diag(post_cov)) - 1e-5))  # softplus(raw) + 1e-5 = std
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    f32 = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    state["model"].update(
        {
            "decoder.0.weight": f32(w),
            "decoder.0.bias": f32(b),
            "log_scale": f32([math.log(s)] * 2),
            "encoder.0.weight": f32(np.r_[a, np.zeros((2, 2))]),
            "encoder.0.bias": f32(np.r_[-a @ b, raw]),
        }
    )
    torch.save(state, run / "checkpoint.pt")
    return w @ w.T + s**2 * np.eye(2)


def log_gaussian(x, mean, cov):
    r = x - mean
    maha = np.einsum("ni,ij,nj->n", r, np.linalg.inv(cov), r)
    return -0.5 * (maha + np.linalg.slogdet(cov)[1] + 2 * math.log(2 * math.pi))


def log_grid25(x):
    """grid25's log-density, written out: 25 equal-weight N(c, 0.05^2 I)."""
    d2 = ((x[:, None, :] - GRID_CENTRES[None]) ** 2).sum(-1)
    return (
        logsumexp(-0.5 * d2 / GRID_STD**2, axis=1)
        - math.log(2 * math.pi * GRID_STD**2)
        - math.log(25)
    )


def hand_kl(m0, c0, m1, c1):
    """KL(N(m0, c0) || N(m1, c1)), the textbook formula."""
    inv1, dm = np.linalg.inv(c1), np.asarray(m1) - np.asarray(m0)
    return 0.5 * (
        np.trace(inv1 @ c0)
        + dm @ inv1 @ dm
        - len(dm)
        + np.log(np.linalg.det(c1) / np.linalg.det(c0))
    )


def short_linear_vae_run(root, data):
    settings = VAETrainConfig(steps=2, checkpoint_every=2, num_saved_samples=10, batch_size=64)
    train("vae", root, data, settings, VAEConfig(hidden=(), latent_dim=2), progress=False)
    return root


@pytest.fixture(scope="module")
def grid25_run(tmp_path_factory, one_thread):
    run = short_linear_vae_run(
        tmp_path_factory.mktemp("grid25") / "run", DataConfig("grid25", num_points=2000)
    )
    # A blob over the whole grid, N(b, 6.21 I): about 1.7% of its mass lies within
    # 3 std (0.15) of a centre.
    cov = write_linear_vae(run, [[2.4, -0.6], [0.6, 2.4]], [0.2, -0.1], 0.3)
    return run, cov


def test_diagnose_grid25_against_the_closed_form_model_density(grid25_run):
    run, cov = grid25_run
    b, n, seed = np.array([0.2, -0.1]), 10_000, 4
    metrics = diagnose(run, num_samples=n, seed=seed)
    assert metrics["kl_method"] == "mc (VAE log-density by importance sampling, 100 particles)"
    assert metrics["num_modes"] == 25 and metrics["num_samples"] == n
    # The samples and data drawn the way diagnose draws them: the model's with the seed's
    # generator, fresh grid25 draws with seed + 1.
    _, vae = load_run(run)
    samples = vae.sample(n, generator=torch.Generator().manual_seed(seed)).double().numpy()
    data = load_dataset("grid25").mixture.sample(n, torch.Generator().manual_seed(seed + 1))
    data = data.double().numpy()
    # Both KL directions: Monte Carlo averages of the two closed-form log-densities.
    forward = np.mean(log_grid25(data) - log_gaussian(data, b, cov))
    reverse = np.mean(log_gaussian(samples, b, cov) - log_grid25(samples))
    assert metrics["kl_forward"] == pytest.approx(forward, rel=1e-4)
    assert metrics["kl_reverse"] == pytest.approx(reverse, rel=1e-4)
    # Mode coverage by hand: the nearest centre, high quality within 3 std of it.
    d2 = ((samples[:, None] - GRID_CENTRES[None]) ** 2).sum(-1)
    hq = d2.min(1) <= (3 * GRID_STD) ** 2
    counts = np.bincount(d2.argmin(1)[hq], minlength=25)
    h = counts[counts > 0] / counts.sum()
    assert metrics["modes_captured"] == (counts > 0).sum()
    assert metrics["hq_fraction"] == pytest.approx(hq.mean())
    assert metrics["mode_kl"] == pytest.approx(np.sum(h * np.log(25 * h)))
    # And against the model itself: a sample lies within r = 0.15 of centre c with
    # probability P(noncentral chi2_2(|b - c|^2 / v) <= r^2 / v), v = 6.21 its variance.
    v = cov[0, 0]
    lam = ((b - GRID_CENTRES) ** 2).sum(1) / v
    p_hq = stats.ncx2.cdf((3 * GRID_STD) ** 2 / v, 2, lam)
    assert p_hq.sum() == pytest.approx(0.017, abs=0.001)
    assert abs(metrics["hq_fraction"] - p_hq.sum()) < 4 * math.sqrt(p_hq.sum() / n)
    # Every centre with at least 10 expected high-quality samples is captured.
    assert (counts[p_hq * n >= 10] > 0).all()


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory, one_thread):
    """A run on a user's .csv of 10,000 N(0, I) points, its model N(b, 2.5 I)."""
    root = tmp_path_factory.mktemp("csv")
    points = np.random.default_rng(0).standard_normal((10_000, 2))
    path = root / "points.csv"
    np.savetxt(path, points, delimiter=",", header="x,y", comments="", fmt="%.8f")
    run = short_linear_vae_run(root / "run", DataConfig(str(path)))
    cov = write_linear_vae(run, [[1.2, -0.9], [0.9, 1.2]], [0.5, -0.3], 0.5)
    return run, points, cov


def test_diagnose_user_csv_against_the_closed_form_kl(csv_run):
    run, points, cov = csv_run
    b = np.array([0.5, -0.3])
    metrics = diagnose(run, num_samples=10_000, seed=2)
    # No data density: both directions by k-NN from the samples, against all the points
    # of the file; no modes without centres.
    assert metrics["kl_method"] == "knn"
    assert "num_modes" not in metrics
    assert {"elbo", "iwae", "khat_mean"} <= set(metrics)
    # KL(N(0, I) || N(b, 2.5 I)) = 0.384 and back 0.754: the two directions differ.
    forward = hand_kl(np.zeros(2), np.eye(2), b, cov)
    reverse = hand_kl(b, cov, np.zeros(2), np.eye(2))
    assert forward == pytest.approx(0.384, abs=1e-3) and reverse == pytest.approx(0.754, abs=1e-3)
    # The k-NN estimate at 10,000 points a side: over 8 seeds (of the file and of
    # diagnose) its errors had means 0.014 and 0.011 and standard deviations 0.02.
    assert metrics["kl_forward"] == pytest.approx(forward, abs=0.08)
    assert metrics["kl_reverse"] == pytest.approx(reverse, abs=0.08)
    for key in ("kl_forward", "kl_reverse"):
        lo, hi = metrics[f"{key}_interval"]
        assert lo < metrics[key] < hi
    # The ELBO and IWAE bound, on 500 of the points held out of training (drawn as
    # diagnose draws them), under the exact posterior: both the closed-form mean
    # log-likelihood of those points.
    held_out = load_dataset(DataConfig(str(run.parent / "points.csv")), split="holdout").x
    assert len(held_out) == 1000
    chosen = held_out[torch.randperm(1000, generator=torch.Generator().manual_seed(2 + 2))[:500]]
    log_lik = log_gaussian(chosen.double().numpy(), b, cov).mean()
    assert metrics["elbo"] == pytest.approx(log_lik, rel=1e-4)
    assert metrics["iwae"] == pytest.approx(log_lik, rel=1e-4)
