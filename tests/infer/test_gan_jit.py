import warnings

import pyro
import pytest
import torch
from torch import nn

from pyro_vigen.infer import (
    DiscriminatorELBO,
    GANIteration,
    GANTrainConfig,
    GeneratorELBO,
    JitDiscriminatorELBO,
    JitGeneratorELBO,
)
from pyro_vigen.models import GANConfig, VariationalGAN

_GEN = torch.Generator().manual_seed(0)
# Two clusters, drawn once from a seeded generator: the same data in every run.
X = torch.randn(1000, 2, generator=_GEN) * 0.3 + torch.randn(1000, 1, generator=_GEN).sign() * 1.5


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


def D(gan, x):
    return torch.sigmoid(gan.discriminator(x).squeeze(-1))


def test_compiled_steps_run_the_graph_not_the_python_modules():
    # Evidence that the graph runs, without timing: a module's forward hooks are Python,
    # which a traced graph does not call. Uncompiled, every step runs both nets
    # through their forward (hooks fire); compiled, only tracing does.
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(8,)))
    calls = {"generator": 0, "discriminator": 0}
    for name in calls:
        getattr(gan, name).register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
        )
    x = X[:16]
    counted = {}
    for jit in (False, True):
        disc = JitDiscriminatorELBO() if jit else DiscriminatorELBO()
        gen = JitGeneratorELBO(prior="data") if jit else GeneratorELBO(prior="data")
        with pyro.validation_enabled(False):
            for step in range(6):
                if step == 1:  # after the first step, which compiles
                    calls.update(generator=0, discriminator=0)
                snapshot, _ = disc.snapshot_loss_and_grads(gan.model, gan.guide, x)
                gen.loss_and_grads_with_penalty(gan.model, gan.guide, x, snapshot=snapshot)
                gan.zero_grad(set_to_none=True)
        counted[jit] = dict(calls)
    # Uncompiled, 5 steps: the snapshot and the generator phase run the generator, the
    # two phases the discriminator, once each a step.
    assert counted[False] == {"generator": 10, "discriminator": 10}
    assert counted[True] == {"generator": 0, "discriminator": 0}


@pytest.mark.parametrize("clear_param_store", [False, True])
def test_compiled_objectives_follow_a_parameter_replaced_out_of_place(clear_param_store):
    # A graph traced before a parameter was replaced by a new tensor must not keep
    # computing with the old one: the compiled losses and gradients stay those of the
    # uncompiled objectives and of the formulas by hand, at the new parameters.
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(8,)))
    x = X[:16]
    eager = (DiscriminatorELBO(), GeneratorELBO(prior="data"))
    jit = (JitDiscriminatorELBO(), JitGeneratorELBO(prior="data"))
    with pyro.validation_enabled(False):
        snapshot = eager[1].snapshot(gan.model, x)
        for elbo in jit:  # compiled at the parameters as they are
            elbo.loss(gan.model, gan.guide, x, snapshot=snapshot)
    gen_layer = next(m for m in gan.generator.modules() if isinstance(m, nn.Linear))
    disc_layer = [m for m in gan.discriminator.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        gen_layer.weight = nn.Parameter(gen_layer.weight * 2)
        disc_layer.bias = nn.Parameter(disc_layer.bias + 1)
    if clear_param_store:  # so that Pyro's param sites hold the new tensors too
        pyro.clear_param_store()
    z, x_snap = snapshot.nodes["z"]["value"], snapshot.nodes["x_gen"]["value"]
    with torch.no_grad():
        disc_by_hand = -(D(gan, x).log().mean() + (1 - D(gan, x_snap)).log().mean())
        fake = gan.generator(z)
        penalty = 5.0 * (fake - x_snap).pow(2).sum(-1).mean()
        gen_by_hand = -D(gan, fake).log().mean() + penalty
    results = []
    for disc, gen in (eager, jit):
        with pyro.validation_enabled(False):
            d = disc.loss_and_grads(gan.model, gan.guide, x, snapshot=snapshot)
            g = gen.loss_and_grads_with_penalty(gan.model, gan.guide, x, snapshot=snapshot)
        results.append(
            (d, g, [None if p.grad is None else p.grad.clone() for p in gan.parameters()])
        )
        gan.zero_grad(set_to_none=True)
    (d, g, grads), (d_jit, g_jit, grads_jit) = results
    assert float(penalty) > 1e-3
    assert d == pytest.approx(float(disc_by_hand), abs=1e-5)
    assert d_jit == pytest.approx(d, abs=1e-6)
    assert g == pytest.approx((float(gen_by_hand), float(penalty)), abs=1e-5)
    assert g_jit == pytest.approx(g, abs=1e-6)
    for a, b in zip(grads, grads_jit, strict=True):
        assert (a is None) == (b is None)
        assert a is None or torch.allclose(a, b, atol=1e-6)
    if clear_param_store:  # every parameter, the new tensors included, gets its gradient
        assert all(a is not None for a in grads)


def test_compiled_phases_follow_buffers_that_to_replaced():
    # Module.to() gives every buffer a new tensor (the parameters keep theirs). A graph
    # traced before reads batch norm's running statistics as constants: the old
    # tensors. Compiled runs must keep updating the module's own statistics, as
    # uncompiled ones do, through a round trip via float64.
    config = GANConfig(data_shape=(2,), gen_hidden=(16,), gen_batch_norm=True, disc_hidden=(8,))
    eager, compiled = VariationalGAN(config), VariationalGAN(config)
    compiled.load_state_dict(eager.state_dict())
    logs = []
    for gan, jit in ((eager, False), (compiled, True)):
        iteration = GANIteration(gan, GANTrainConfig(prior="data", jit=jit, lr_gen=1e-2))
        torch.manual_seed(7)
        log = []
        with pyro.validation_enabled(False):
            for step in range(6):
                if step == 3:
                    gan.to(torch.float64).to(torch.float32)
                log.append(iteration(lambda: X[torch.randint(len(X), (32,))]))
        logs.append(log)
        gan.eval()  # running statistics in the loss: a check of their values
        with pyro.validation_enabled(False):
            torch.manual_seed(1)
            logs[-1].append(DiscriminatorELBO().loss(gan.model, gan.guide, X[:64]))
    for a, b in zip(*logs, strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    state = compiled.state_dict()
    assert int(state["generator.1.num_batches_tracked"]) == 6 * (1 + 2)
    for k, p in eager.state_dict().items():
        assert torch.allclose(p.float(), state[k].float(), atol=1e-5), k
