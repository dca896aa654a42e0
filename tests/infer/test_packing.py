"""PacGAN packing in the VI frame: the objectives, training, diagnostics and the command line."""

import copy
import json
import math
import re
import warnings

import pyro
import pytest
import torch
from pyro.infer import SVI

from pyro_vigen.cli import main
from pyro_vigen.data import DataConfig
from pyro_vigen.diagnostics import diagnose, discriminator_estimates
from pyro_vigen.infer import (
    DiscriminatorELBO,
    GANIteration,
    GANTrainConfig,
    GeneratorELBO,
    train,
)
from pyro_vigen.models import GANConfig, VariationalGAN


def packed_gan(pack, shape=(2,), **kw):
    return VariationalGAN(GANConfig(data_shape=shape, hidden=(16,), pack=pack, **kw))


def by_hand_packs(x, m):
    """Pack i is rows i*m .. i*m + m - 1, concatenated along dim 1 (features or channels)."""
    return torch.cat([x[j::m] for j in range(m)], dim=1)


def D(gan, x, m):
    return torch.sigmoid(gan.discriminator(by_hand_packs(x, m)).squeeze(-1))


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)])
@pytest.mark.parametrize("pack", [2, 4])
def test_packed_discriminator_loss_by_hand(pack, shape):
    # Eval mode: batch norm and the image critic's spectral norm then compute fixed
    # functions, the same in the by-hand terms as in the objective.
    gan = packed_gan(pack, shape).eval()
    x_real, z = torch.rand(24, *shape), torch.randn(24, gan.config.noise_dim)
    model = pyro.poutine.condition(gan.model, data={"z": z})
    with torch.no_grad():
        fake = gan.generator(z)
        expected = -(D(gan, x_real, pack).log().mean() + (1 - D(gan, fake, pack)).log().mean())
    elbo = DiscriminatorELBO()
    assert elbo.loss(model, gan.guide, x_real) == pytest.approx(float(expected), abs=1e-5)
    assert elbo.loss_and_grads(model, gan.guide, x_real) == pytest.approx(float(expected), abs=1e-5)


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
@pytest.mark.parametrize("prior", ["mixed", "data"])
@pytest.mark.parametrize("pack", [2, 4])
def test_packed_generator_loss_by_hand(pack, prior, loss):
    gan = packed_gan(pack)
    x_real = torch.randn(24, 2)
    elbo = GeneratorELBO(prior=prior, loss=loss)
    snapshot = elbo.snapshot(gan.model, x_real)
    z = snapshot.nodes["z"]["value"]
    snapshot_generator = copy.deepcopy(gan.generator)
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
        d_fake = D(gan, gan.generator(z), pack)
        expected = -d_fake.log().mean() if loss == "nonsaturating" else (1 - d_fake).log().mean()
        # The penalty is per generated point, not per pack: 5 = the default weight.
        penalty = 5.0 * (gan.generator(z) - snapshot_generator(z)).pow(2).sum(-1).mean()
    if prior == "data":
        assert float(penalty) > 1e-4
        expected = expected + penalty
    got = elbo.loss_and_grads_with_penalty(gan.model, gan.guide, x_real, snapshot=snapshot)
    assert got == (
        pytest.approx(float(expected), abs=1e-5),
        pytest.approx(float(penalty) if prior == "data" else 0.0, abs=1e-6),
    )


def changed(gan, before):
    return {k for k, v in gan.state_dict().items() if not torch.equal(v, before[k])}


@pytest.mark.parametrize("prior", ["mixed", "data"])
def test_stock_svi_trains_a_packed_gan_one_phase_at_a_time(prior):
    gan = packed_gan(2, obs_scale=0.05)
    adam = {"lr": 1e-2, "betas": (0.5, 0.999)}
    svi_d = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), DiscriminatorELBO())
    gen_elbo = GeneratorELBO(prior=prior)
    svi_g = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), gen_elbo)
    data = torch.randn(256, 2)
    for i in range(3):
        batch = data[32 * i : 32 * (i + 1)]
        before = {k: v.clone() for k, v in gan.state_dict().items()}
        snapshot = gen_elbo.snapshot(gan.model, batch)
        assert math.isfinite(svi_d.step(batch, snapshot=snapshot))
        assert changed(gan, before) == {k for k in before if k.startswith("discriminator.")}
        before = {k: v.clone() for k, v in gan.state_dict().items()}
        assert all(math.isfinite(svi_g.step(batch, snapshot=snapshot)) for _ in range(2))
        assert changed(gan, before) == {k for k in before if k.startswith("generator.")}
    # Two steps away from the snapshot: the data prior's penalty acts.
    _, penalty = gen_elbo.loss_and_grads_with_penalty(
        gan.model, gan.guide, batch, snapshot=snapshot
    )
    assert (penalty > 0) == (prior == "data")


def run_iterations(gan, train, data, iterations):
    """Every step's losses, validation on for the first iteration only (as fit runs)."""
    iteration, log = GANIteration(gan, train), []
    torch.manual_seed(7)
    for i in range(iterations):
        with pyro.validation_enabled(i == 0):
            log.append(iteration(lambda: data[torch.randint(len(data), (32,))]))
    return log


@pytest.mark.parametrize(
    "prior, pack, shape", [("mixed", 2, (2,)), ("data", 4, (2,)), ("data", 2, (1, 8, 8))]
)
def test_compiled_packed_training_follows_the_uncompiled_step_for_step(prior, pack, shape):
    eager, compiled = packed_gan(pack, shape), packed_gan(pack, shape)
    compiled.load_state_dict(eager.state_dict())
    data = torch.rand(200, *shape)
    settings = {"prior": prior, "gen_steps": 2}
    expected = run_iterations(eager, GANTrainConfig(**settings, jit=False), data, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = run_iterations(compiled, GANTrainConfig(**settings, jit=True), data, 8)
    for step, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), step
    for (k, p), q in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-5), k


class PackedOptimalDiscriminator:
    """Data N(0, 1), generator N(1, 1): the exact log-ratio of a pack is the sum of the
    points' 1/2 - x."""

    def __init__(self, pack):
        self.pack = pack

    def logits(self, packs):
        assert packs.shape[1] == self.pack  # 1-D points, m to a pack
        return (0.5 - packs).sum(-1)


@pytest.mark.parametrize("pack", [2, 4])
def test_packed_discriminator_estimates_are_per_point_kls_and_a_pack_jsd(pack):
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(100_001, 1, generator=gen).sort(0).values  # sorted: shuffled first
    fake = 1.0 + torch.randn(100_000, 1, generator=gen)
    out = discriminator_estimates(PackedOptimalDiscriminator(pack), data, fake, pack=pack)
    keys = {"disc_kl_forward", "disc_kl_reverse", "pack_jsd"}
    assert set(out) == keys | {f"{k}_interval" for k in keys}
    # Per point: KL between unit Gaussians one apart is 1/2 both ways.
    assert out["disc_kl_forward"] == pytest.approx(0.5, abs=0.02)
    assert out["disc_kl_reverse"] == pytest.approx(0.5, abs=0.02)
    # The JSD of the packs exceeds the points' (0.11 nats here) and stays below log 2.
    per_point = discriminator_estimates(PackedOptimalDiscriminator(1), data, fake)["jsd"]
    assert per_point < out["pack_jsd"] < math.log(2)


def test_packed_estimates_need_one_full_pack():
    with pytest.raises(ValueError, match="do not fill one pack of 4"):
        discriminator_estimates(
            PackedOptimalDiscriminator(4), torch.zeros(3, 1), torch.zeros(8, 1), pack=4
        )


def test_a_packed_run_trains_and_is_diagnosed(tmp_path):
    settings = GANTrainConfig(steps=6, batch_size=32, checkpoint_every=6, num_saved_samples=50)
    model = GANConfig(hidden=(16,), pack=4)
    train(
        "gan", tmp_path / "r", DataConfig("ring8", num_points=300), settings, model, progress=False
    )
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model"]["pack"] == 4
    metrics = diagnose(tmp_path / "r", num_samples=400)
    assert "pack_jsd" in metrics and "jsd" not in metrics
    assert all(math.isfinite(metrics[k]) for k in ("disc_kl_forward", "disc_kl_reverse"))


@pytest.mark.parametrize(
    "pack, batch_size, message",
    [
        (0, 32, "pack must be positive, got 0"),
        (-2, 32, "pack must be positive, got -2"),
        (64, 32, "pack=64 is larger than batch_size=32"),
        (3, 32, "batch_size=32 is not a multiple of pack=3"),
    ],
)
def test_bad_packs(tmp_path, pack, batch_size, message):
    with pytest.raises(ValueError, match=message):
        settings = GANTrainConfig(steps=2, batch_size=batch_size)
        train("gan", tmp_path / "r", DataConfig("ring8"), settings, GANConfig(pack=pack))
    assert not (tmp_path / "r").exists()


def test_a_batch_that_does_not_split_into_packs_is_an_error():
    gan = packed_gan(3)
    with pytest.raises(ValueError, match="a batch of 8 real points does not split into packs"):
        DiscriminatorELBO().loss(gan.model, gan.guide, torch.randn(8, 2))
    with pytest.raises(ValueError, match="8 points do not split into packs of 3"):
        gan.guide(torch.randn(8, 2))


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--pack", "0"], "pack must be positive, got 0"),
        (["--pack", "-1"], "pack must be positive, got -1"),
        (["--pack", "300"], "--pack 300 is larger than --batch-size 256"),
        (["--pack", "3", "--batch-size", "64"], "--batch-size 64 is not a multiple of --pack 3"),
        (["--pack", "two"], "invalid int value"),
    ],
)
def test_bad_packs_from_the_cli(capsys, tmp_path, args, pattern):
    try:
        code = main(["train", "gan", "--out", str(tmp_path / "r"), "--no-progress", *args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert re.search(pattern, err[0]), err[0]
    assert not (tmp_path / "r").exists()
