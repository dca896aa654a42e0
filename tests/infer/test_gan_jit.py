import warnings

import pyro
import pytest
import torch

from pyro_vigen.infer import (
    DiscriminatorELBO,
    GANIteration,
    GANTrainConfig,
    GeneratorELBO,
    JitDiscriminatorELBO,
    JitGeneratorELBO,
)
from pyro_vigen.models import GANConfig, VariationalGAN

X = torch.randn(1000, 2) * 0.3 + torch.randn(1000, 1).sign() * 1.5


def run_iterations(gan: VariationalGAN, train: GANTrainConfig, iterations: int) -> list:
    """Every step's loss, with validation on for the first iteration only (as fit runs)."""
    iteration, log = GANIteration(gan, train), []
    torch.manual_seed(7)
    for i in range(iterations):
        with pyro.validation_enabled(i == 0):
            log.append(iteration(lambda: X[torch.randint(len(X), (128,))]))
    log.append(torch.rand(3))  # where the random stream ended
    return log


@pytest.mark.parametrize(
    "prior, loss, obs_scale, disc_steps",
    [
        ("mixed", "nonsaturating", None, 1),
        ("data", "nonsaturating", 0.05, 1),
        ("data", "minimax", None, 2),
        ("data", "importance_weighted", None, 1),
    ],
)
def test_compiled_phases_follow_the_uncompiled_ones_step_for_step(
    prior, loss, obs_scale, disc_steps
):
    config = GANConfig(data_shape=(2,), hidden=(16,), obs_scale=obs_scale)
    eager, compiled = VariationalGAN(config), VariationalGAN(config)
    compiled.load_state_dict(eager.state_dict())
    settings = {"prior": prior, "loss": loss, "gen_steps": 2, "disc_steps": disc_steps}
    expected = run_iterations(eager, GANTrainConfig(**settings, jit=False), 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # compiling must not warn the user
        got = run_iterations(compiled, GANTrainConfig(**settings, jit=True), 20)
    # Compiling draws nothing from the training stream.
    assert torch.equal(expected.pop(), got.pop())
    for step, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), step
    if prior == "data":
        assert got[-1]["penalty"] > 0  # the second generator step feels the penalty
    for (k, p), q in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-5), k


def test_each_compiled_phase_moves_only_its_own_parameters():
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(8,)))
    iteration = GANIteration(gan, GANTrainConfig(prior="data", gen_steps=2))
    assert isinstance(iteration.disc_elbo, JitDiscriminatorELBO)
    assert isinstance(iteration.gen_elbo, JitGeneratorELBO)
    x = torch.randn(16, 2)
    phases = (
        (iteration.disc_elbo, iteration.optim_disc, "discriminator"),
        (iteration.gen_elbo, iteration.optim_gen, "generator"),
    )
    with pyro.validation_enabled(False):
        snapshot = iteration.gen_elbo.snapshot(gan.model, x)
        for elbo, optim, part in phases:
            before = {k: v.clone() for k, v in gan.state_dict().items()}
            elbo.loss_and_grads(gan.model, gan.guide, x, snapshot=snapshot)
            optim.step()
            optim.zero_grad()
            changed = {k for k, v in gan.state_dict().items() if not torch.equal(v, before[k])}
            assert changed == {k for k in before if k.startswith(f"{part}.")}
            assert all(p.grad is None for p in gan.parameters())


@pytest.mark.parametrize("prior", ["mixed", "data"])
def test_compiled_and_uncompiled_objectives_agree_call_by_call(prior):
    # The compiled objectives trace the uncompiled ones' own code: the same snapshot
    # gives the same losses, penalty and gradients.
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(8,), obs_scale=0.1))
    x = torch.randn(16, 2)
    results = []
    for disc, gen in (
        (DiscriminatorELBO(), GeneratorELBO(prior=prior)),
        (JitDiscriminatorELBO(), JitGeneratorELBO(prior=prior)),
    ):
        with pyro.validation_enabled(False):
            torch.manual_seed(3)
            snapshot = gen.snapshot(gan.model, x)
            with torch.no_grad():
                for p in gan.generator.parameters():
                    p.add_(0.1)  # away from the snapshot, so the penalty is not 0
            d = disc.loss_and_grads(gan.model, gan.guide, x, snapshot=snapshot)
            g = gen.loss_and_grads_with_penalty(gan.model, gan.guide, x, snapshot=snapshot)
        grads = [p.grad.clone() for p in gan.parameters()]
        gan.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p in gan.generator.parameters():
                p.sub_(0.1)
        results.append((snapshot.nodes["z"]["value"], d, g, grads))
    (z, d, g, grads), (z_jit, d_jit, g_jit, grads_jit) = results
    assert torch.equal(z, z_jit)
    assert d == pytest.approx(d_jit, rel=1e-6) and g == pytest.approx(g_jit, rel=1e-6)
    assert (g[1] > 0) == (prior == "data")
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, grads_jit, strict=True))


def test_compiled_generator_phase_with_the_data_prior_needs_a_snapshot():
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(8,)))
    elbo = JitGeneratorELBO(prior="data")
    with pyro.validation_enabled(False), pytest.raises(ValueError, match="needs a snapshot"):
        elbo.loss(gan.model, gan.guide, torch.randn(8, 2))


def test_compiled_phases_still_train_under_stock_svi():
    # SVI finds the parameters through its own handler, so the objectives run uncompiled.
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(8,)))
    x = torch.randn(16, 2)
    adam = pyro.optim.Adam({"lr": 0.1})
    for part, elbo in (
        ("discriminator", JitDiscriminatorELBO()),
        ("generator", JitGeneratorELBO()),
    ):
        before = {k: v.clone() for k, v in gan.state_dict().items()}
        with pyro.validation_enabled(False):
            pyro.infer.SVI(gan.model, gan.guide, adam, elbo).step(x)
        changed = {k for k, v in gan.state_dict().items() if not torch.equal(v, before[k])}
        assert changed == {k for k in before if k.startswith(f"{part}.")}


@pytest.mark.parametrize("prior", ["mixed", "data"])
def test_compiled_phases_follow_the_uncompiled_ones_with_batch_norm_and_maxout(prior):
    # PacGAN's 2-D architecture, small: batch norm in the generator (running statistics
    # are buffers updated in place), maxout in the discriminator, packs of 2.
    config = GANConfig(
        data_shape=(2,),
        gen_hidden=(16, 16),
        gen_batch_norm=True,
        disc_hidden=(8,),
        disc_maxout=3,
        init_std=0.02,
        pack=2,
    )
    eager, compiled = VariationalGAN(config), VariationalGAN(config)
    compiled.load_state_dict(eager.state_dict())
    settings = {"prior": prior, "gen_steps": 2, "lr_disc": 1e-2, "lr_gen": 1e-2}
    expected = run_iterations(eager, GANTrainConfig(**settings, jit=False), 15)
    got = run_iterations(compiled, GANTrainConfig(**settings, jit=True), 15)
    assert torch.equal(expected.pop(), got.pop())
    for step, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), step
    # Running statistics included: compiling moved none of them, the graph moves them all.
    state = compiled.state_dict()
    assert int(state["generator.1.num_batches_tracked"]) == 15 * (1 + 2)
    for k, p in eager.state_dict().items():
        assert torch.allclose(p.float(), state[k].float(), atol=1e-5), k


def test_a_graph_keeps_the_mode_it_was_traced_in():
    # Batch norm: in train mode the batch's statistics, in eval mode the running ones; a
    # graph traced in train mode and reused in eval mode would compute the former.
    config = GANConfig(data_shape=(2,), gen_hidden=(8,), gen_batch_norm=True, disc_hidden=(8,))
    eager, compiled = VariationalGAN(config), VariationalGAN(config)
    compiled.load_state_dict(eager.state_dict())
    x = torch.randn(16, 2)
    losses = []
    for gan, elbo in ((eager, DiscriminatorELBO()), (compiled, JitDiscriminatorELBO())):
        with pyro.validation_enabled(False):
            torch.manual_seed(0)
            elbo.loss(gan.model, gan.guide, x)
            gan.eval()
            torch.manual_seed(0)
            losses.append(elbo.loss(gan.model, gan.guide, x))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_compiled_image_gan_follows_the_uncompiled_one():
    # The DCGAN nets: batch norm in the generator, spectral norm (a buffer updated in
    # place every training pass) in the discriminator; both must compile.
    images = torch.rand(64, 1, 8, 8)
    config = GANConfig(data_shape=(1, 8, 8), noise_dim=4, conv_width=4)
    eager, compiled = VariationalGAN(config), VariationalGAN(config)
    compiled.load_state_dict(eager.state_dict())
    logs = []
    for gan, jit in ((eager, False), (compiled, True)):
        iteration = GANIteration(gan, GANTrainConfig(prior="data", gen_steps=2, jit=jit))
        torch.manual_seed(7)
        logs.append([iteration(lambda: images[torch.randint(64, (16,))]) for _ in range(5)])
    for a, b in zip(*logs, strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    for (k, p), q in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        assert torch.allclose(p.float(), q.float(), atol=1e-5), k
