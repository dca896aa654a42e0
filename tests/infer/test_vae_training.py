import csv
import math
import warnings

import numpy as np
import pyro
import pytest
import torch

from pyro_vigen.data import DataConfig, load_dataset, ring8
from pyro_vigen.infer import (
    BatchSampler,
    ModuleSVI,
    TrainingDiverged,
    VAETrainConfig,
    load_run,
    make_elbo,
    train,
)
from pyro_vigen.infer.vae_training import vae_step
from pyro_vigen.models import VAE, VAEConfig
from pyro_vigen.storage import CheckpointError, load_checkpoint

SMALL = DataConfig("ring8", num_points=600)
SMALL_MODEL = VAEConfig(hidden=(16,))


def small_train(**kw):
    return VAETrainConfig(
        **{"steps": 40, "batch_size": 64, "checkpoint_every": 20, "num_saved_samples": 50, **kw}
    )


def history_rows(run):
    with open(run / "history.csv") as f:
        return [r[:-1] for r in csv.reader(f)]  # wall_time differs between runs


def test_run_directory_contents(tmp_path):
    train("vae", tmp_path / "r", SMALL, small_train(), SMALL_MODEL, progress=False)
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert names == {"config.json", "checkpoint.pt", "history.csv", "samples.pt"}
    config, model = load_run(tmp_path / "r")
    assert (
        config["kind"] == "vae"
        and config["train"]["steps"] == 40
        and config["versions"]["pyro_vigen"]
    )
    samples = torch.load(tmp_path / "r" / "samples.pt", weights_only=True)
    assert samples["samples"].shape == (50, 2)
    rows = history_rows(tmp_path / "r")
    assert rows[0] == ["step", "loss"] and [int(r[0]) for r in rows[1:]] == list(range(1, 41))


@pytest.mark.parametrize("elbo", ["jit", "trace"])
def test_same_seed_same_result_and_resume_equals_uninterrupted(tmp_path, elbo):
    # The jit ELBO compiles again on resume; the compilation must not shift the random stream.
    full = train(
        "vae", tmp_path / "full", SMALL, small_train(elbo=elbo), SMALL_MODEL, progress=False
    )
    train(
        "vae",
        tmp_path / "half",
        SMALL,
        small_train(steps=25, elbo=elbo),
        SMALL_MODEL,
        progress=False,
    )
    resumed = train(
        "vae",
        tmp_path / "half",
        SMALL,
        small_train(elbo=elbo),
        SMALL_MODEL,
        resume=True,
        progress=False,
    )
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert history_rows(tmp_path / "full") == history_rows(tmp_path / "half")
    a = torch.load(tmp_path / "full" / "samples.pt", weights_only=True)["samples"]
    b = torch.load(tmp_path / "half" / "samples.pt", weights_only=True)["samples"]
    assert torch.equal(a, b)


def test_interrupted_run_keeps_its_last_checkpoint_and_resumes_exactly(tmp_path, monkeypatch):
    full = train("vae", tmp_path / "full", SMALL, small_train(), SMALL_MODEL, progress=False)
    real_step, calls = ModuleSVI.step, {"n": 0}

    def step_then_interrupt(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 31:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(ModuleSVI, "step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train("vae", tmp_path / "cut", SMALL, small_train(), SMALL_MODEL, progress=False)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt", kind="vae")["step"] == 20
    assert not list((tmp_path / "cut").glob(".*tmp"))
    monkeypatch.setattr(ModuleSVI, "step", real_step)
    resumed = train(
        "vae", tmp_path / "cut", SMALL, small_train(), SMALL_MODEL, resume=True, progress=False
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True)
    )
    assert history_rows(tmp_path / "full") == history_rows(tmp_path / "cut")


def test_nan_loss_stops_with_the_step_and_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    real_step, calls = ModuleSVI.step, {"n": 0}

    def nan_at_25(self, *args, **kwargs):
        calls["n"] += 1
        return math.nan if calls["n"] == 25 else real_step(self, *args, **kwargs)

    monkeypatch.setattr(ModuleSVI, "step", nan_at_25)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 25.*step 20"):
        train("vae", tmp_path / "r", SMALL, small_train(), SMALL_MODEL, progress=False)
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt", kind="vae")["step"] == 20


def test_output_directory_with_another_run_is_refused(tmp_path):
    train("vae", tmp_path / "r", SMALL, small_train(steps=20), SMALL_MODEL, progress=False)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match="holds a run; pass resume=True .* or overwrite=True"):
        train("vae", tmp_path / "r", SMALL, small_train(steps=20), SMALL_MODEL, progress=False)
    with pytest.raises(ValueError, match=r"settings differ in train\.lr"):
        train(
            "vae",
            tmp_path / "r",
            SMALL,
            small_train(lr=0.5),
            SMALL_MODEL,
            resume=True,
            progress=False,
        )
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before  # nothing lost
    train(
        "vae",
        tmp_path / "r",
        SMALL,
        small_train(steps=20, seed=3),
        SMALL_MODEL,
        overwrite=True,
        progress=False,
    )
    assert load_run(tmp_path / "r")[0]["train"]["seed"] == 3


def test_non_empty_folder_without_a_run_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no run"):
        train("vae", tmp_path, SMALL, small_train(), SMALL_MODEL, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "content, message",
    [
        ("truncate", "not a readable checkpoint"),
        ("foreign", "not a pyro_vigen checkpoint"),
        ("code", "not a readable checkpoint"),
    ],
)
def test_bad_checkpoints_are_refused(tmp_path, content, message):
    train("vae", tmp_path / "r", SMALL, small_train(steps=20), SMALL_MODEL, progress=False)
    path = tmp_path / "r" / "checkpoint.pt"
    if content == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif content == "foreign":
        torch.save({"weights": torch.zeros(2)}, path)
    else:

        class Payload:
            def __reduce__(self):
                return (print, ("pwned",))

        torch.save({"format": Payload()}, path)
    with pytest.raises(CheckpointError, match=message):
        train("vae", tmp_path / "r", SMALL, small_train(), SMALL_MODEL, resume=True, progress=False)
    with pytest.raises(ValueError, match=message):
        load_run(tmp_path / "r")


def test_checkpoint_of_another_kind_is_refused(tmp_path):
    train("vae", tmp_path / "r", SMALL, small_train(steps=20), SMALL_MODEL, progress=False)
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    state["kind"] = "gan"
    torch.save(state, tmp_path / "r" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="holds a 'gan' model, expected 'vae'"):
        load_run(tmp_path / "r")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be positive, got 0"),
        ({"batch_size": 0}, "batch_size must be positive, got 0"),
        ({"lr": 0.0}, "lr must be positive, got 0.0"),
        ({"lr": -1e-3}, "lr must be positive, got -0.001"),
        ({"elbo": "renyi"}, "unknown elbo 'renyi'; use one of jit, trace, meanfield, iwae"),
        ({"elbo": "iwae"}, r"elbo 'iwae' needs num_particles >= 2 \(with 1 it is the plain ELBO\)"),
        ({"steps": 2.5}, "steps must be a positive integer, got 2.5"),
    ],
)
def test_bad_training_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAETrainConfig(**kwargs)


def log_normal(v, loc, scale):
    """log N(v; loc, diag(scale^2)), written out and summed over the last dimension."""
    return (-0.5 * ((v - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def iwae_bound_by_hand(vae, x, eps):
    """-sum_i log (1/K) sum_k w_ik over the minibatch x, unscaled: w_ik = p(z_ik) p(x_i|z_ik)
    / q(z_ik|x_i) at z = loc + scale * eps (eps: K x B x L), from the nets' outputs. Also
    the plain ELBO of the same draws, -sum_i (1/K) sum_k log w_ik."""
    with torch.no_grad():
        loc, raw = vae.encoder(x).chunk(2, dim=-1)
        scale = torch.nn.functional.softplus(raw) + 1e-5
        z = loc + scale * eps
        mean = vae.decoder(z)
        log_w = (
            log_normal(z, torch.zeros_like(z), torch.ones_like(z))
            + log_normal(x, mean, vae.log_scale.exp().expand_as(mean))
            - log_normal(z, loc, scale)
        ).double()
    k = eps.shape[0]
    return -(torch.logsumexp(log_w, 0) - math.log(k)).sum().item(), -log_w.mean(0).sum().item()


def test_iwae_step_loss_is_the_unscaled_minibatch_bound_per_point():
    # The iwae objective is not linear in the log-weights: its minibatch bound is
    # optimised unscaled (not times n / B), and history.csv gets it per point of the batch.
    x = load_dataset(SMALL).x
    k, b = 5, 64
    pyro.set_rng_seed(0)
    vae = VAE(VAEConfig(data_shape=(2,), hidden=(16,)))
    before = VAE(vae.config)
    before.load_state_dict(vae.state_dict())
    step = vae_step(vae, small_train(elbo="iwae", num_particles=k), x, BatchSampler(len(x), b, 0))
    idx = BatchSampler(len(x), b, 0).next()
    torch.manual_seed(11)
    row = step.step(1)
    torch.manual_seed(11)
    eps = torch.randn(k, b, 2)  # the guide's draws, vectorised over the particles
    bound, elbo = iwae_bound_by_hand(before, x[idx], eps)
    assert set(row) == {"loss"}
    assert row["loss"] == pytest.approx(bound / b, rel=1e-5), (row, bound / b)
    # Not the plain ELBO of the same draws, which the bound exceeds by Jensen's inequality.
    assert elbo / b - row["loss"] > 0.01
    # The step moved the parameters: it is an optimisation step, not a bare evaluation.
    assert not torch.equal(vae.decoder[0].weight, before.decoder[0].weight)


def test_iwae_run_history_holds_the_bound_per_point(tmp_path):
    # The first row of history.csv of a run, recomputed from the seed: the initial
    # parameters (pyro.set_rng_seed(seed), then the model), the first minibatch of the
    # sampler, then the guide's draws.
    k, b = 4, 32
    settings = small_train(elbo="iwae", num_particles=k, batch_size=b, steps=2, checkpoint_every=2)
    train("vae", tmp_path / "r", SMALL, settings, SMALL_MODEL, progress=False)
    x = load_dataset(SMALL).x
    pyro.set_rng_seed(settings.seed)
    vae = VAE(VAEConfig(data_shape=(2,), hidden=SMALL_MODEL.hidden))
    idx = BatchSampler(len(x), b, settings.seed).next()
    eps = torch.randn(k, b, 2)
    bound, _ = iwae_bound_by_hand(vae, x[idx], eps)
    rows = history_rows(tmp_path / "r")
    assert rows[0] == ["step", "loss"] and rows[1][0] == "1"
    assert float(rows[1][1]) == pytest.approx(bound / b, rel=1e-5)


def test_model_of_the_wrong_dimension_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"have shape \(2,\), but the model expects \(3,\)"):
        train(
            "vae", tmp_path / "r", SMALL, small_train(), VAEConfig(data_shape=(3,)), progress=False
        )
    assert not (tmp_path / "r").exists()


def test_vae_covers_every_ring8_mode_with_default_settings(tmp_path):
    train("vae", tmp_path / "r", DataConfig("ring8"), VAETrainConfig(), progress=False)
    samples = torch.load(tmp_path / "r" / "samples.pt", weights_only=True)["samples"]
    centers = ring8().centers
    nearest = torch.cdist(samples, centers).argmin(dim=1)
    share = torch.bincount(nearest, minlength=8).double() / len(samples)
    # A mode-covering fit puts mass near every mode (1/8 each when even).
    assert share.min() > 0.05, share


def test_linear_vae_reaches_the_exact_ppca_log_likelihood(tmp_path):
    """Linear-Gaussian VAE on PPCA data: max ELBO = max log-likelihood (Tipping & Bishop 1999)."""
    rng = np.random.default_rng(0)
    d, latent, n = 5, 2, 2000
    w_true, mu, sigma = rng.normal(size=(d, latent)), rng.normal(size=d), 0.3
    x = rng.normal(size=(n, latent)) @ w_true.T + mu + sigma * rng.normal(size=(n, d))
    np.save(tmp_path / "ppca.npy", x.astype(np.float32))

    # Closed-form PPCA maximum likelihood: W from the top eigenvectors of the sample
    # covariance S, sigma^2 the mean of the remaining eigenvalues.
    xc = x - x.mean(0)
    s = xc.T @ xc / n
    lam, u = np.linalg.eigh(s)
    lam, u = lam[::-1], u[:, ::-1]
    s2 = lam[latent:].mean()
    w = u[:, :latent] * np.sqrt(lam[:latent] - s2)
    c = w @ w.T + s2 * np.eye(d)
    exact = -0.5 * (
        d * math.log(2 * math.pi) + np.linalg.slogdet(c)[1] + np.trace(np.linalg.solve(c, s))
    )

    vae = train(
        "vae",
        tmp_path / "r",
        DataConfig(str(tmp_path / "ppca.npy"), holdout=0.0),
        VAETrainConfig(steps=3000, batch_size=n, lr=3e-2, elbo="meanfield", num_particles=4),
        VAEConfig(hidden=(), latent_dim=latent),
        progress=False,
    )
    xt = load_dataset(DataConfig(str(tmp_path / "ppca.npy"), holdout=0.0)).x
    mean_elbo = -make_elbo("meanfield", 200).loss(vae.model, vae.guide, xt) / n
    assert mean_elbo <= exact + 0.01  # a lower bound, up to Monte Carlo error
    assert abs(mean_elbo - exact) < 0.01 * abs(exact), (mean_elbo, exact)


def test_the_compiled_elbo_follows_the_trace_elbo_step_for_step(tmp_path):
    # Same seed, same random numbers: compiling (outside the random stream) must change
    # nothing but float rounding, and torch.jit's deprecation notice stays inside.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        runs = {
            elbo: train(
                "vae", tmp_path / elbo, SMALL, small_train(elbo=elbo), SMALL_MODEL, progress=False
            )
            for elbo in ("jit", "trace")
        }
    for (k, a), b in zip(
        runs["jit"].state_dict().items(), runs["trace"].state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), k


def test_data_the_likelihood_cannot_take_leaves_no_run(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="needs data in"):
        train(
            "vae",
            out,
            DataConfig("ring8"),
            VAETrainConfig(steps=2),
            VAEConfig(likelihood="continuous_bernoulli"),
        )
    assert not out.exists()  # nothing written: the same command with a fix just runs


def test_discretized_logistic_vae_learns_the_grey_digits(tmp_path):
    settings = VAETrainConfig(steps=150, batch_size=128, lr=3e-3, num_saved_samples=20)
    trained = train(
        "vae",
        tmp_path / "r",
        DataConfig("digits"),
        settings,
        VAEConfig(latent_dim=8),
        progress=False,
    )
    config, _ = load_run(tmp_path / "r")
    assert config["model"]["likelihood"] == "discretized_logistic"  # the images' default
    held_out = load_dataset(DataConfig.from_dict(config["data"]), split="holdout").x
    pyro.set_rng_seed(config["train"]["seed"])
    untrained = VAE(VAEConfig.from_dict(config["model"]))

    def mean_elbo(vae):
        return -make_elbo("trace", 20).loss(vae.model, vae.guide, held_out) / len(held_out)

    # Measured: about -310 nats per image before, -168 after (seeds 0 and 1).
    before, after = mean_elbo(untrained), mean_elbo(trained)
    assert after > before + 100, (before, after)
    # Reconstructions follow the grey levels: far closer than the data's mean image
    # (measured 0.015 against 0.071).
    error = (trained.reconstruct(held_out) - held_out).pow(2).mean()
    baseline = (held_out.mean(0) - held_out).pow(2).mean()
    assert error < 0.6 * baseline, (error, baseline)
    # Its means reach black, which a continuous Bernoulli's never do (>= 0.06).
    means = trained.sample(64, generator=torch.Generator().manual_seed(0), noise=False)
    assert means.min() < 0.01 and means.max() <= 1
