import copy
import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI

from pyro_vigen.data import ring8
from pyro_vigen.infer import DiscriminatorELBO, GeneratorELBO
from pyro_vigen.models import GANConfig, VariationalGAN


def points_gan(**kw):
    return VariationalGAN(GANConfig(data_shape=(2,), hidden=(16, 16), **kw))


def D(gan, x):
    return torch.sigmoid(gan.discriminator(x).squeeze(-1))


def by_hand(kind, gan, x_real, z):
    """The classic GAN losses, batch means, straight from the nets."""
    fake = gan.generator(z)
    if kind == "disc":
        return -(D(gan, x_real).log().mean() + (1 - D(gan, fake)).log().mean())
    if kind == "nonsaturating":
        return -D(gan, fake).log().mean()
    return (1 - D(gan, fake)).log().mean()


def objective(kind):
    return DiscriminatorELBO() if kind == "disc" else GeneratorELBO(loss=kind)


@pytest.mark.parametrize("kind", ["disc", "nonsaturating", "minimax"])
def test_losses_are_the_classic_formulas(kind):
    gan = points_gan()
    x_real, z = torch.randn(64, 2), torch.randn(64, 2)
    model = poutine.condition(gan.model, data={"z": z})  # fixes z for the hand computation
    with torch.no_grad():
        expected = float(by_hand(kind, gan, x_real, z))
    elbo = objective(kind)
    assert elbo.loss(model, gan.guide, x_real) == pytest.approx(expected, abs=1e-5)
    assert elbo.differentiable_loss(model, gan.guide, x_real).item() == pytest.approx(
        expected, abs=1e-5
    )
    assert elbo.loss_and_grads(model, gan.guide, x_real) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
@pytest.mark.parametrize("reg_weight", [0.5, 5.0])
def test_data_prior_adds_the_penalty_on_the_snapshot_z(loss, reg_weight):
    gan = points_gan()
    x_real = torch.randn(64, 2)
    elbo = GeneratorELBO(prior="data", reg_weight=reg_weight, loss=loss)
    z = elbo.snapshot(gan.model, x_real).nodes["z"]["value"]
    with torch.no_grad():
        at_snapshot = float(by_hand(loss, gan, x_real, z))
    # G' = G: the penalty is exactly zero.
    assert elbo.loss(gan.model, gan.guide, x_real) == pytest.approx(at_snapshot, abs=1e-5)
    assert elbo.last_penalty == 0.0

    snapshot_generator = copy.deepcopy(gan.generator)
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
        penalty = reg_weight * (gan.generator(z) - snapshot_generator(z)).pow(2).sum(-1).mean()
        expected = float(by_hand(loss, gan, x_real, z) + penalty)
    assert float(penalty) > 1e-4
    assert elbo.loss(gan.model, gan.guide, x_real) == pytest.approx(expected, abs=1e-5)
    assert elbo.last_penalty == pytest.approx(float(penalty), abs=1e-6)


def test_penalty_gradient_vanishes_at_the_snapshot():
    gan = points_gan()
    x_real = torch.randn(64, 2)
    grads = {}
    for prior in ("mixed", "data"):
        elbo = GeneratorELBO(prior=prior)
        pyro.set_rng_seed(1)
        elbo.snapshot(gan.model, x_real)
        elbo.loss_and_grads(gan.model, gan.guide, x_real)
        grads[prior] = [p.grad.clone() for p in gan.generator.parameters()]
        gan.generator.zero_grad(set_to_none=True)
    assert all(torch.equal(a, b) for a, b in zip(grads["mixed"], grads["data"], strict=True))


def test_second_generator_step_penalty_matches_the_snapshot_by_hand():
    gan = points_gan()
    x_real = torch.randn(128, 2)
    elbo = GeneratorELBO(prior="data", reg_weight=5.0)
    svi = SVI(gan.model, gan.guide, pyro.optim.Adam({"lr": 0.01}), elbo)
    snapshot = elbo.snapshot(gan.model, x_real)
    z = snapshot.nodes["z"]["value"]
    g_snapshot = snapshot.nodes["x_gen"]["value"]
    svi.step(x_real)
    assert elbo.last_penalty == 0.0
    with torch.no_grad():
        expected = 5.0 * (gan.generator(z) - g_snapshot).pow(2).sum(-1).mean()
    svi.step(x_real)
    assert float(expected) > 0
    assert elbo.last_penalty == pytest.approx(float(expected), rel=1e-5)


def snapshot_params(gan):
    return {k: v.detach().clone() for k, v in gan.named_parameters()}


@pytest.mark.parametrize("prior", ["mixed", "data"])
def test_each_phase_moves_only_its_own_parameters(prior):
    gan = points_gan()
    x_real = torch.randn(32, 2)
    gen_elbo = GeneratorELBO(prior=prior)
    svi_g = SVI(gan.model, gan.guide, pyro.optim.Adam({"lr": 0.01}), gen_elbo)
    svi_d = SVI(gan.model, gan.guide, pyro.optim.Adam({"lr": 0.01}), DiscriminatorELBO())

    # Generator phase first, on a fresh model: phi gets no gradient at all.
    before = snapshot_params(gan)
    gen_elbo.snapshot(gan.model, x_real)
    svi_g.step(x_real)
    svi_g.step(x_real)
    after = snapshot_params(gan)
    for k in before:
        assert torch.equal(before[k], after[k]) == k.startswith("discriminator."), k
    assert all(p.grad is None for p in gan.discriminator.parameters())

    # Discriminator phase: theta keeps the zero gradients SVI left and does not move,
    # although Adam would move it through its momentum if it were handed theta.
    theta_grads = [p.grad.clone() for p in gan.generator.parameters()]
    assert all(not g.any() for g in theta_grads)
    svi_d.step(x_real)
    again = snapshot_params(gan)
    for k in after:
        assert torch.equal(after[k], again[k]) == k.startswith("generator."), k
    assert all(
        torch.equal(p.grad, g) for p, g in zip(gan.generator.parameters(), theta_grads, strict=True)
    )

    # And back: the generator phase leaves phi's (zeroed) gradients as they are.
    phi_grads = [p.grad.clone() for p in gan.discriminator.parameters()]
    gen_elbo.snapshot(gan.model, x_real)
    svi_g.step(x_real)
    assert all(
        torch.equal(p.grad, g)
        for p, g in zip(gan.discriminator.parameters(), phi_grads, strict=True)
    )
    assert all(
        torch.equal(again[k], v)
        for k, v in gan.named_parameters()
        if k.startswith("discriminator.")
    )


def test_one_optimiser_for_both_phases_still_keeps_them_apart():
    gan = points_gan()
    x_real = torch.randn(32, 2)
    adam = pyro.optim.Adam({"lr": 0.01})
    svi_g = SVI(gan.model, gan.guide, adam, GeneratorELBO())
    svi_d = SVI(gan.model, gan.guide, adam, DiscriminatorELBO())
    svi_g.step(x_real)
    before = snapshot_params(gan)
    svi_d.step(x_real)  # theta has Adam momentum from the generator step, yet stays put
    after = snapshot_params(gan)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("generator."))


def test_discriminator_reaches_2_log_2_when_the_generator_is_the_data():
    mixture = ring8()
    gan = points_gan()
    gen = torch.Generator().manual_seed(0)

    def data_as_generator(x_real):
        # p_g = p_data: the "generated" half is a fresh draw from the data distribution.
        fake = mixture.sample(x_real.shape[0], gen)
        return torch.cat([x_real, fake]), torch.cat(
            [torch.ones(len(x_real)), torch.zeros(len(fake))]
        )

    svi = SVI(data_as_generator, gan.guide, pyro.optim.Adam({"lr": 1e-3}), DiscriminatorELBO())
    for _ in range(300):
        svi.step(mixture.sample(256, gen))
    loss = DiscriminatorELBO().loss(data_as_generator, gan.guide, mixture.sample(20_000, gen))
    assert loss == pytest.approx(2 * math.log(2), abs=0.02)


@pytest.mark.parametrize("prior, loss", [("mixed", "nonsaturating"), ("data", "minimax")])
def test_a_users_own_svi_loop(prior, loss):
    gan = points_gan()
    adam = {"lr": 1e-3, "betas": (0.5, 0.999)}
    svi_d = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), DiscriminatorELBO())
    gen_elbo = GeneratorELBO(prior=prior, loss=loss)
    svi_g = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), gen_elbo)
    data = ring8().sample(512)
    for _ in range(5):
        batch = data[torch.randperm(512)[:64]]
        d = svi_d.step(batch)
        gen_elbo.snapshot(gan.model, batch)
        g = [svi_g.step(batch) for _ in range(2)]
        assert math.isfinite(d) and all(math.isfinite(v) for v in g)
    assert math.isfinite(svi_d.evaluate_loss(batch)) and math.isfinite(svi_g.evaluate_loss(batch))


def test_data_prior_without_a_snapshot_is_an_error():
    gan = points_gan()
    with pytest.raises(ValueError, match="snapshot"):
        GeneratorELBO(prior="data").loss(gan.model, gan.guide, torch.randn(8, 2))


def test_snapshot_of_another_batch_size_is_an_error():
    gan = points_gan()
    elbo = GeneratorELBO(prior="data")
    elbo.snapshot(gan.model, torch.randn(8, 2))
    with pytest.raises(ValueError, match="generated"):
        elbo.loss(gan.model, gan.guide, torch.randn(5, 2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prior": "uniform"}, "unknown prior"),
        ({"loss": "wasserstein"}, "unknown generator loss"),
        ({"prior": "data", "reg_weight": -1.0}, ">= 0"),
        ({"prior": "data", "reg_weight": float("nan")}, ">= 0"),
        ({"prior": "mixed", "reg_weight": 1.0}, "only applies to prior 'data'"),
    ],
)
def test_bad_generator_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GeneratorELBO(**kwargs)


def test_default_reg_weight_is_5_for_the_data_prior():
    assert GeneratorELBO(prior="data").reg_weight == 5.0
    assert GeneratorELBO(prior="mixed").reg_weight is None


@pytest.mark.parametrize("elbo", [DiscriminatorELBO(), GeneratorELBO()])
def test_model_must_return_a_labelled_batch(elbo):
    gan = points_gan()

    def bad_model(x_real):
        gan.model(x_real)
        return x_real

    with pytest.raises(ValueError, match="labelled batch"):
        elbo.loss(bad_model, gan.guide, torch.randn(8, 2))


def test_guide_must_have_a_y_site():
    gan = points_gan()
    with pytest.raises(ValueError, match="sample site 'y'"):
        DiscriminatorELBO().loss(gan.model, lambda x: None, torch.randn(8, 2))
