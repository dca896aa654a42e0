import copy
import math
import warnings

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI
from torch import nn

from pyro_vigen.errors import UserError
from pyro_vigen.infer import (
    AAEIteration,
    AAETrainConfig,
    DiscriminatorELBO,
    GANIteration,
    GANTrainConfig,
    GeneratorELBO,
    JitDiscriminatorELBO,
    JitGeneratorELBO,
)
from pyro_vigen.infer.ali_training import check_ali_settings
from pyro_vigen.models import (
    ALI,
    AAEConfig,
    AdversarialAutoencoder,
    ALIConfig,
    GANConfig,
    VariationalGAN,
)

_gen = torch.Generator().manual_seed(0)
# Two clusters, drawn from a fixed seed whatever ran before.
X = torch.randn(1000, 2, generator=_gen) * 0.3 + torch.randn(1000, 1, generator=_gen).sign() * 1.5
LATENT = 3


def small_ali(**kw):
    return ALI(ALIConfig(data_shape=(2,), latent_dim=LATENT, hidden=(16, 16), **kw))


def small_aae(**kw):
    return AdversarialAutoencoder(
        AAEConfig(data_shape=(2,), latent_dim=LATENT, hidden=(16,), disc_hidden=(16,), **kw)
    )


def sigmoid_d(net, inputs):
    return torch.sigmoid(net(inputs).squeeze(-1))


def encode_by_hand(encoder, x, eps):
    loc, raw = encoder(x).chunk(2, dim=-1)
    return loc + (nn.functional.softplus(raw) + 1e-5) * eps


def ali_pairs(ali, x_real, z, eps, generator=None):
    """The real pairs (x, mu + sigma eps) and the generated ones (G(z), z), from the nets."""
    generator = ali.generator if generator is None else generator
    real = torch.cat([x_real, encode_by_hand(generator["encoder"], x_real, eps)], -1)
    fake = torch.cat([generator["decoder"](z), z], -1)
    return real, fake


def ali_by_hand(kind, ali, x_real, z, eps):
    real, fake = ali_pairs(ali, x_real, z, eps)
    d_real, d_fake = sigmoid_d(ali.discriminator, real), sigmoid_d(ali.discriminator, fake)
    if kind == "disc":
        return -(d_real.log().mean() + (1 - d_fake).log().mean())
    if kind == "nonsaturating":  # every row with its label reversed
        return -((1 - d_real).log().mean() + d_fake.log().mean())
    # minimax: the labels kept, the discriminator's objective maximised
    return d_real.log().mean() + (1 - d_fake).log().mean()


def ali_objective(kind, **kw):
    return DiscriminatorELBO() if kind == "disc" else GeneratorELBO(loss=kind, rows="both", **kw)


# ----------------------------------------------------------------------------- ALI


def test_ali_model_draws_labelled_pairs():
    ali = small_ali()
    x_real = torch.randn(8, 2)
    trace = poutine.trace(ali.model).get_trace(x_real)
    pairs, y = trace.nodes["_RETURN"]["value"]
    assert pairs.shape == (16, 2 + LATENT)
    assert y.tolist() == [1.0] * 8 + [0.0] * 8
    # The generated z is drawn first, the encoder's noise second.
    samples = [n for n, s in trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]]
    assert samples.index("z") < samples.index("eps")
    z, eps = trace.nodes["z"]["value"], trace.nodes["eps"]["value"]
    real, fake = ali_pairs(ali, x_real, z, eps)
    assert torch.allclose(pairs, torch.cat([real, fake]), atol=1e-6)


@pytest.mark.parametrize("kind", ["disc", "nonsaturating", "minimax"])
def test_ali_losses_are_the_formulas_on_pairs(kind):
    ali = small_ali()
    x_real, z, eps = torch.randn(64, 2), torch.randn(64, LATENT), torch.randn(64, LATENT)
    model = poutine.condition(ali.model, data={"z": z, "eps": eps})
    with torch.no_grad():
        expected = float(ali_by_hand(kind, ali, x_real, z, eps))
    elbo = ali_objective(kind)
    assert elbo.loss(model, ali.guide, x_real) == pytest.approx(expected, abs=1e-5)
    assert elbo.differentiable_loss(model, ali.guide, x_real).item() == pytest.approx(
        expected, abs=1e-5
    )
    assert elbo.loss_and_grads(model, ali.guide, x_real) == pytest.approx(expected, abs=1e-5)
    if kind == "disc":
        # The minimax generator loss is minus the discriminator's.
        minimax = GeneratorELBO(loss="minimax", rows="both").loss(model, ali.guide, x_real)
        assert minimax == pytest.approx(-expected, abs=1e-5)


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_ali_data_prior_penalty_covers_every_row(loss):
    ali = small_ali()
    x_real, reg_weight = torch.randn(32, 2), 2.0
    elbo = GeneratorELBO(prior="data", reg_weight=reg_weight, loss=loss, rows="both")
    snapshot = elbo.snapshot(ali.model, x_real)
    z, eps = snapshot.nodes["z"]["value"], snapshot.nodes["eps"]["value"]
    got = elbo.loss_and_grads_with_penalty(ali.model, ali.guide, x_real, snapshot=snapshot)
    assert got[1] == 0.0  # theta = theta'
    theta_snap = copy.deepcopy(ali.generator)
    with torch.no_grad():
        for p in ali.generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
        real, fake = ali_pairs(ali, x_real, z, eps)
        real_s, fake_s = ali_pairs(ali, x_real, z, eps, generator=theta_snap)
        sq = torch.cat([real - real_s, fake - fake_s]).pow(2).sum(-1)
        penalty = reg_weight * sq.mean()
        expected = float(ali_by_hand(loss, ali, x_real, z, eps) + penalty)
        # Both halves count: the encoder moved the real rows' z, the decoder the generated x.
        assert (real - real_s).abs().max() > 1e-4 and (fake - fake_s).abs().max() > 1e-4
        only_generated = reg_weight * (fake - fake_s).pow(2).sum(-1).mean()
    assert abs(float(penalty) - float(only_generated)) > 1e-5
    ali.zero_grad(set_to_none=True)
    got = elbo.loss_and_grads_with_penalty(ali.model, ali.guide, x_real, snapshot=snapshot)
    assert got == (pytest.approx(expected, abs=1e-5), pytest.approx(float(penalty), rel=1e-5))


def named_grads(module, prefix):
    return {k: p.grad for k, p in module.named_parameters() if k.startswith(prefix)}


def test_ali_each_phase_fills_only_its_own_gradients():
    ali = small_ali()
    x_real = torch.randn(32, 2)
    DiscriminatorELBO().loss_and_grads(ali.model, ali.guide, x_real)
    assert all(g is None for g in named_grads(ali, "generator.").values())
    disc = named_grads(ali, "discriminator.")
    assert disc and all(g is not None and g.abs().sum() > 0 for g in disc.values())
    ali.zero_grad(set_to_none=True)

    GeneratorELBO(rows="both").loss_and_grads(ali.model, ali.guide, x_real)
    assert all(g is None for g in named_grads(ali, "discriminator.").values())
    for part in ("generator.decoder.", "generator.encoder."):
        grads = named_grads(ali, part)
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values()), part


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(module, before):
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


def test_ali_trains_with_stock_svi_each_phase_moving_its_own_parameters():
    ali = ALI(ALIConfig(data_shape=(2,), latent_dim=2, hidden=(16,)))
    gen = torch.Generator().manual_seed(0)

    def batch():
        return X[torch.randint(len(X), (64,), generator=gen)]

    def evaluate(elbo):
        pyro.set_rng_seed(9)
        return elbo.loss(ali.model, ali.guide, X)

    svi_d = SVI(ali.model, ali.guide, pyro.optim.Adam({"lr": 1e-2}), DiscriminatorELBO())
    svi_g = SVI(ali.model, ali.guide, pyro.optim.Adam({"lr": 1e-2}), GeneratorELBO(rows="both"))
    keys = set(ali.state_dict())
    before = state(ali)
    svi_d.step(batch())
    assert changed(ali, before) == {k for k in keys if k.startswith("discriminator.")}
    before = state(ali)
    svi_g.step(batch())
    moved = changed(ali, before)
    assert moved == {k for k in keys if k.startswith("generator.")}
    assert any(k.startswith("generator.encoder.") for k in moved)
    assert any(k.startswith("generator.decoder.") for k in moved)

    # Against a fixed generator the discriminator learns to tell the pairs apart...
    d_before = evaluate(DiscriminatorELBO())
    assert d_before == pytest.approx(2 * math.log(2), abs=0.15)
    for _ in range(100):
        svi_d.step(batch())
    d_after = evaluate(DiscriminatorELBO())
    assert d_after < d_before - 0.5
    # ...and against that fixed discriminator the generator phase learns to fool it.
    g_before = evaluate(GeneratorELBO(rows="both"))
    for _ in range(50):
        svi_g.step(batch())
    g_after = evaluate(GeneratorELBO(rows="both"))
    assert g_after < g_before - 1.0
    assert evaluate(DiscriminatorELBO()) > d_after + 0.5


class XOnlyDiscriminator(nn.Module):
    """D(x, z) = D(x): the GAN's discriminator on the pairs' first ``dim`` columns."""

    def __init__(self, disc: nn.Module, dim: int) -> None:
        super().__init__()
        self.disc, self.dim = disc, dim

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.disc(pairs[:, : self.dim])


def reduced_pair():
    gan = VariationalGAN(GANConfig(data_shape=(2,), noise_dim=LATENT, hidden=(16, 16)))
    ali = small_ali()
    ali.decoder.load_state_dict(gan.generator.state_dict())
    ali.discriminator = XOnlyDiscriminator(copy.deepcopy(gan.discriminator), 2)
    return gan, ali


@pytest.mark.parametrize("seed", [0, 1])
def test_ali_with_a_discriminator_blind_to_z_reduces_to_the_gan(seed):
    """Reduction to the GAN.

    With a discriminator that reads only x, D(x, z) = D(x), and a decoder with the GAN
    generator's weights, ALI's phases are the GAN's on the same points (the model draws
    the generated z first, as the GAN does, so one seed gives both the same z):

    - the discriminator loss equals the GAN's;
    - the non-saturating generator loss (rows="both") is the GAN's plus
      -mean log(1 - D(x_real)), a term no decoder parameter reaches, so the decoder's
      gradient equals the GAN generator's, and the encoder gets none (zero).
    """
    gan, ali = reduced_pair()
    x_real = X[:64]
    pyro.set_rng_seed(seed)
    gan_d = DiscriminatorELBO().loss(gan.model, gan.guide, x_real)
    pyro.set_rng_seed(seed)
    ali_d = DiscriminatorELBO().loss(ali.model, ali.guide, x_real)
    assert ali_d == pytest.approx(gan_d, rel=1e-6)

    pyro.set_rng_seed(seed)
    gan_g = GeneratorELBO().loss_and_grads(gan.model, gan.guide, x_real)
    pyro.set_rng_seed(seed)
    ali_g = GeneratorELBO(rows="both").loss_and_grads(ali.model, ali.guide, x_real)
    with torch.no_grad():
        real_term = -(1 - sigmoid_d(gan.discriminator, x_real)).log().mean()
    assert float(real_term) > 0.1
    assert ali_g == pytest.approx(gan_g + float(real_term), rel=1e-5)
    for (name, p), q in zip(
        gan.generator.named_parameters(), ali.decoder.parameters(), strict=True
    ):
        assert p.grad.abs().sum() > 0, name
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7), name
    for name, p in ali.encoder.named_parameters():
        assert p.grad is None or not p.grad.any(), name
    assert all(p.grad is None for p in ali.discriminator.parameters())


# ----------------------------------------------------------------------------- AAE


def aae_by_hand(kind, aae, x_real, z_prior, eps):
    codes = encode_by_hand(aae.encoder, x_real, eps)
    d_prior, d_codes = sigmoid_d(aae.discriminator, z_prior), sigmoid_d(aae.discriminator, codes)
    if kind == "disc":
        return -(d_prior.log().mean() + (1 - d_codes).log().mean())
    if kind == "nonsaturating":
        return -d_codes.log().mean()
    return (1 - d_codes).log().mean()


@pytest.mark.parametrize("kind", ["disc", "nonsaturating", "minimax"])
def test_aae_latent_losses_are_the_gan_formulas_on_codes(kind):
    aae = small_aae()
    lg = aae.latent_gan
    assert lg.generator_rows == "generated"
    x_real, z_prior, eps = torch.randn(64, 2), torch.randn(64, LATENT), torch.randn(64, LATENT)
    model = poutine.condition(lg.model, data={"z_prior": z_prior, "eps": eps})
    with torch.no_grad():
        expected = float(aae_by_hand(kind, aae, x_real, z_prior, eps))
    elbo = DiscriminatorELBO() if kind == "disc" else GeneratorELBO(loss=kind)
    assert elbo.loss(model, lg.guide, x_real) == pytest.approx(expected, abs=1e-5)
    assert elbo.loss_and_grads(model, lg.guide, x_real) == pytest.approx(expected, abs=1e-5)


def test_aae_latent_data_prior_penalty_is_on_the_codes():
    aae = small_aae()
    lg, x_real = aae.latent_gan, torch.randn(32, 2)
    elbo = GeneratorELBO(prior="data", reg_weight=3.0)
    snapshot = elbo.snapshot(lg.model, x_real)
    eps = snapshot.nodes["eps"]["value"]
    encoder_snap = copy.deepcopy(aae.encoder)
    with torch.no_grad():
        for p in aae.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
        diff = encode_by_hand(aae.encoder, x_real, eps) - encode_by_hand(encoder_snap, x_real, eps)
        penalty = 3.0 * diff.pow(2).sum(-1).mean()
    assert float(penalty) > 1e-5
    _, got = elbo.loss_and_grads_with_penalty(lg.model, lg.guide, x_real, snapshot=snapshot)
    assert got == pytest.approx(float(penalty), rel=1e-5)


def test_aae_latent_phases_move_only_their_own_parameters():
    aae = small_aae()
    lg, x_real = aae.latent_gan, torch.randn(32, 2)
    keys = set(aae.state_dict())
    assert "log_scale" in keys
    svi_d = SVI(lg.model, lg.guide, pyro.optim.Adam({"lr": 1e-2}), DiscriminatorELBO())
    svi_g = SVI(lg.model, lg.guide, pyro.optim.Adam({"lr": 1e-2}), GeneratorELBO())
    before = state(aae)
    svi_g.step(x_real)
    assert changed(aae, before) == {k for k in keys if k.startswith("encoder.")}
    assert all(p.grad is None for p in aae.discriminator.parameters())
    assert all(p.grad is None for p in aae.decoder.parameters())
    before = state(aae)
    svi_d.step(x_real)
    assert changed(aae, before) == {k for k in keys if k.startswith("discriminator.")}


def test_aae_iteration_runs_the_three_phases():
    aae = small_aae()
    train = AAETrainConfig(batch_size=32, lr=1e-2, lr_disc=1e-2, lr_gen=1e-2)
    iteration = AAEIteration(aae, train)
    gen = torch.Generator().manual_seed(0)
    before = state(aae)
    logs = []
    for i in range(3):
        with pyro.validation_enabled(i == 0):
            logs.append(iteration(lambda: X[torch.randint(len(X), (32,), generator=gen)]))
    for log in logs:
        assert set(log) == {"recon_loss", "disc_loss", "gen_loss", "penalty"}
        assert all(math.isfinite(v) for v in log.values()), log
        assert log["penalty"] == 0.0  # the mixed prior has none
    # Every part moved: the autoencoder, the latent discriminator, the encoder again.
    assert changed(aae, before) == set(aae.state_dict())


# --------------------------------------------------------------------------- IWGAN


def test_importance_weighted_loss_is_refused_on_both_rows():
    with pytest.raises(UserError, match="rows='both'"):
        GeneratorELBO(loss="importance_weighted", rows="both")
    GeneratorELBO(loss="importance_weighted")  # a GAN's generated rows: fine
    model = ALIConfig(data_shape=(2,))
    with pytest.raises(
        UserError, match="importance-weighted loss applies to a GAN's generated points"
    ) as info:
        check_ali_settings(model, GANTrainConfig(loss="importance_weighted"))
    assert info.value.field == "loss"
    for loss in ("nonsaturating", "minimax"):
        check_ali_settings(model, GANTrainConfig(loss=loss))


def test_gan_iteration_scores_both_rows_for_ali():
    iteration = GANIteration(small_ali(), GANTrainConfig(jit=False))
    assert iteration.gen_elbo.rows == "both"
    iteration = GANIteration(small_aae().latent_gan, GANTrainConfig(jit=False))
    assert iteration.gen_elbo.rows == "generated"


# ----------------------------------------------------------------------------- jit


def run_iterations(model, train, iterations=8):
    """Every step's losses, validation on for the first only (as fit runs)."""
    iteration, log = GANIteration(model, train), []
    torch.manual_seed(7)
    for i in range(iterations):
        with pyro.validation_enabled(i == 0):
            log.append(iteration(lambda: X[torch.randint(len(X), (32,))]))
    log.append(torch.rand(3))  # where the random stream ended
    return log, iteration


@pytest.mark.parametrize("which", ["ali", "aae"])
@pytest.mark.parametrize("prior, loss", [("mixed", "nonsaturating"), ("data", "minimax")])
def test_compiled_phases_follow_the_uncompiled_ones(which, prior, loss):
    if which == "ali":
        config = ALIConfig(data_shape=(2,), latent_dim=2, hidden=(8,))
        eager, compiled = ALI(config), ALI(config)
    else:
        config = AAEConfig(data_shape=(2,), latent_dim=2, hidden=(8,), disc_hidden=(8,))
        eager, compiled = AdversarialAutoencoder(config), AdversarialAutoencoder(config)
    compiled.load_state_dict(eager.state_dict())
    gans = (eager, compiled) if which == "ali" else (eager.latent_gan, compiled.latent_gan)
    settings = {"prior": prior, "loss": loss, "gen_steps": 2, "batch_size": 32}
    expected, _ = run_iterations(gans[0], GANTrainConfig(**settings, jit=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # compiling must not warn the user
        got, iteration = run_iterations(gans[1], GANTrainConfig(**settings, jit=True))
    assert isinstance(iteration.disc_elbo, JitDiscriminatorELBO)
    assert isinstance(iteration.gen_elbo, JitGeneratorELBO)
    assert iteration.gen_elbo.rows == ("both" if which == "ali" else "generated")
    assert iteration.disc_elbo._graphs and iteration.gen_elbo._graphs  # it did compile
    assert torch.equal(expected.pop(), got.pop())
    for step, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), step
    if prior == "data":
        assert got[-1]["penalty"] > 0
    for (k, p), q in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-5), k
