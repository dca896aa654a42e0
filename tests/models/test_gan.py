import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import (
    SVI,
    JitTrace_ELBO,
    Predictive,
    Trace_ELBO,
    TraceGraph_ELBO,
    TraceMeanField_ELBO,
)

from pyro_vigen.infer import DiscriminatorELBO, GeneratorELBO
from pyro_vigen.models import GANConfig, VariationalGAN


def points_gan(**kw):
    return VariationalGAN(GANConfig(data_shape=(2,), hidden=(16,), **kw))


@pytest.mark.parametrize("shape", [(2,), (5,), (1, 8, 8), (1, 28, 28), (3, 8, 8)])
def test_shapes(shape):
    gan = VariationalGAN(GANConfig(data_shape=shape, noise_dim=3))
    x_real = torch.rand(4, *shape)
    x, y = gan.model(x_real)
    assert x.shape == (8, *shape) and torch.equal(x[:4], x_real)
    assert torch.equal(y, torch.tensor([1.0] * 4 + [0.0] * 4))
    assert gan.logits(x).shape == (8,)
    samples = gan.sample(6)
    assert samples.shape == (6, *shape) and not samples.requires_grad
    if len(shape) == 3:  # images live in [0, 1]
        assert samples.min() >= 0 and samples.max() <= 1


@pytest.mark.parametrize("shape", [(2,), (3, 8, 8)])
@pytest.mark.parametrize("pack", [2, 4])
def test_packed_model_and_guide(shape, pack):
    gan = VariationalGAN(GANConfig(data_shape=shape, noise_dim=3, pack=pack))
    x_real = torch.rand(8, *shape)
    trace = poutine.trace(gan.model).get_trace(x_real)
    assert trace.nodes["z"]["value"].shape == (8, 3)  # z per point, y per pack
    x, y = trace.nodes["_RETURN"]["value"]
    assert x.shape == (16, *shape) and torch.equal(x[:8], x_real)
    assert torch.equal(y, torch.tensor([1.0] * (8 // pack) + [0.0] * (8 // pack)))
    # A pack is `pack` consecutive points, side by side along features or channels.
    packs = gan.packs(x)
    assert packs.shape == (16 // pack, pack * shape[0], *shape[1:])
    assert torch.equal(packs[1, shape[0] : 2 * shape[0]], x[pack + 1])
    gan.eval()  # a fixed function: the image critic's spectral norm iterates in train mode
    guide_trace = poutine.trace(gan.guide).get_trace(x)
    assert guide_trace.nodes["y"]["value"].shape == (16 // pack,)
    assert torch.equal(guide_trace.nodes["y"]["fn"].logits, gan.logits(packs))
    assert GANConfig.from_json(gan.config.to_json()) == gan.config


def test_model_and_guide_sites():
    gan = points_gan()
    x_real = torch.randn(5, 2)
    trace = poutine.trace(gan.model).get_trace(x_real)
    assert trace.nodes["z"]["value"].shape == (5, 2)
    x, _ = trace.nodes["_RETURN"]["value"]
    assert torch.equal(trace.nodes["x_gen"]["value"], x[5:])
    assert torch.equal(x[5:], gan.generator(trace.nodes["z"]["value"]))
    params = {n for n, s in trace.nodes.items() if s["type"] == "param"}
    assert params and all(n.startswith(f"{gan.name}$$$generator.") for n in params)

    guide_trace = poutine.trace(gan.guide).get_trace(x)
    site = guide_trace.nodes["y"]
    assert site["value"].shape == (10,)
    assert torch.equal(site["fn"].logits, gan.logits(x))
    params = {n for n, s in guide_trace.nodes.items() if s["type"] == "param"}
    assert params and all(n.startswith(f"{gan.name}$$$discriminator.") for n in params)
    # Together, the names are those pyro.module(name, gan) gives: what checkpoints strip.
    names = {f"{gan.name}$$${k}" for k, _ in gan.named_parameters()}
    assert names == {n for n, s in trace.nodes.items() if s["type"] == "param"} | params


def test_obs_scale_adds_a_replayable_noise_site():
    gan = points_gan(obs_scale=0.5)
    x_real = torch.randn(400, 2)
    trace = poutine.trace(gan.model).get_trace(x_real)
    z, noise = trace.nodes["z"]["value"], trace.nodes["noise"]["value"]
    x, _ = trace.nodes["_RETURN"]["value"]
    assert torch.allclose(x[400:], gan.generator(z) + noise)
    assert 0.4 < float(noise.std()) < 0.6
    replayed, _ = poutine.replay(gan.model, trace=trace)(x_real)
    assert torch.equal(replayed, x)
    with torch.no_grad():
        spread = gan.sample(2000) - gan.generator(torch.zeros(1, 2))
    assert float(spread.std()) > 0.4


def test_two_gans_in_one_process_never_share_parameters():
    a, b = points_gan(), points_gan()
    assert a.name != b.name
    x = torch.randn(32, 2)
    before = [p.detach().clone() for p in b.parameters()]
    adam = pyro.optim.Adam({"lr": 0.1})
    SVI(a.model, a.guide, adam, DiscriminatorELBO()).step(x)
    SVI(a.model, a.guide, adam, GeneratorELBO()).step(x)
    assert all(torch.equal(p, q) for p, q in zip(b.parameters(), before, strict=True))
    names = set(pyro.get_param_store().keys())
    assert names == {f"{a.name}$$${k}" for k, _ in a.named_parameters()}


def test_sample_is_reproducible_with_a_generator():
    gan = points_gan()
    a = gan.sample(10, generator=torch.Generator().manual_seed(3))
    b = gan.sample(10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"data_shape": (2,), "noise_dim": 0}, "noise_dim"),
        ({"data_shape": (2,), "obs_scale": -1.0}, "obs_scale"),
        ({"data_shape": (2,), "pack": 0}, "pack must be positive, got 0"),
        ({"data_shape": (2,), "pack": -3}, "pack must be positive, got -3"),
        ({"data_shape": (2,), "pack": 2.0}, "pack must be a positive integer"),
        ({"data_shape": (2,), "activation": "swish"}, "unknown activation"),
        ({"data_shape": (1, 9, 9)}, r"\(C, 8, 8\), \(C, 28, 28\), \(C, 32, 32\)"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VariationalGAN(GANConfig(**kwargs))


def test_gan_needs_a_data_shape():
    with pytest.raises(ValueError, match="data_shape must be set"):
        VariationalGAN(GANConfig())


def test_config_json_round_trip():
    cfg = GANConfig(data_shape=(1, 8, 8), hidden=(32,), obs_scale=0.1, noise_dim=8)
    assert GANConfig.from_json(cfg.to_json()) == cfg


# PacGAN's 2-D architecture (Lin et al. 2018, after VEEGAN): 4 x 400 ReLU generator with
# batch norm, 3 x 200 maxout (5 pieces) discriminator, N(0, 0.02^2) weights.
PROTOCOL = {
    "gen_hidden": (400,) * 4,
    "gen_batch_norm": True,
    "disc_hidden": (200,) * 3,
    "disc_maxout": 5,
    "init_std": 0.02,
}


def test_default_options_build_the_same_nets_as_before():
    from pyro_vigen.nets import decoder_net, encoder_net

    torch.manual_seed(0)
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(16, 8), pack=2))
    torch.manual_seed(0)
    generator = decoder_net(2, (2,), (16, 8))
    discriminator = encoder_net((4,), 1, (16, 8))
    expected = {
        **{f"generator.{k}": v for k, v in generator.state_dict().items()},
        **{f"discriminator.{k}": v for k, v in discriminator.state_dict().items()},
    }
    got = gan.state_dict()
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


@pytest.mark.parametrize("pack", [1, 3])
def test_protocol_architecture(pack):
    from torch import nn

    from pyro_vigen.nets import Maxout

    gan = VariationalGAN(GANConfig(data_shape=(2,), pack=pack, **PROTOCOL))
    gen = list(gan.generator)
    assert [type(m) for m in gen] == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 4 + [nn.Linear]
    assert gen[0].weight.shape == (400, 2) and gen[-1].weight.shape == (2, 400)
    disc = list(gan.discriminator)
    assert [type(m) for m in disc] == [Maxout] * 3 + [nn.Linear]
    # The input layer takes a pack; the hidden widths do not grow with it.
    assert disc[0].linear.weight.shape == (1000, 2 * pack)
    assert disc[1].linear.weight.shape == (1000, 200) and disc[-1].weight.shape == (1, 200)
    # init_std: every linear weight N(0, 0.02^2), every bias 0; batch norm at (1, 0).
    weight = disc[1].linear.weight.detach()
    assert 0.018 < float(weight.std()) < 0.022 and abs(float(weight.mean())) < 0.002
    linears = [m for m in gan.modules() if isinstance(m, nn.Linear)]
    assert all(m.bias is None or not m.bias.any() for m in linears)
    assert torch.equal(gen[1].weight, torch.ones(400)) and not gen[1].bias.any()
    x, y = gan.model(torch.randn(6 * pack, 2))
    assert x.shape == (12 * pack, 2) and y.shape == (12,)
    assert gan.logits(gan.packs(x)).shape == (12,)
    assert GANConfig.from_json(gan.config.to_json()) == gan.config
    assert GANConfig.from_json(gan.config.to_json()).gen_hidden == (400,) * 4


def test_sample_runs_the_generator_in_eval_mode():
    gan = VariationalGAN(GANConfig(data_shape=(2,), noise_dim=2, **PROTOCOL))
    # Training runs the model in train mode: the batch's statistics, moving the running ones.
    bn = gan.generator[1]
    gan.model(torch.randn(32, 2))
    assert bn.num_batches_tracked == 1
    state = {k: v.clone() for k, v in gan.state_dict().items()}
    a = gan.sample(5, generator=torch.Generator().manual_seed(1))
    # Sampling: running statistics, untouched, and the model's mode restored.
    assert all(torch.equal(v, state[k]) for k, v in gan.state_dict().items())
    assert gan.training and gan.generator.training
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = gan.generator.eval()(z)
    gan.train()
    assert torch.equal(a, expected)
    # So a point does not depend on the others drawn with it; one point works too.
    b = gan.sample(1, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a[:1], b, atol=1e-6)
    gan.eval()
    gan.sample(3)
    assert not gan.generator.training


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"disc_maxout": 0}, "disc_maxout must be positive"),
        ({"disc_maxout": 2.0}, "disc_maxout must be a positive integer"),
        ({"gen_hidden": (400, 0)}, "each width of gen_hidden must be positive"),
        ({"disc_hidden": (1.5,)}, "each width of disc_hidden must be a positive integer"),
        ({"gen_batch_norm": 1}, "gen_batch_norm must be true or false"),
        ({"init_std": 0.0}, "init_std must be positive"),
        ({"data_shape": (1, 8, 8), "gen_batch_norm": True}, "DCGAN nets of images have"),
        ({"data_shape": (1, 8, 8), "disc_maxout": 5}, "DCGAN nets of images have"),
        ({"data_shape": (1, 8, 8), "init_std": 0.02}, "DCGAN nets of images have"),
        ({"conv_width": 0}, "conv_width"),
    ],
)
def test_bad_protocol_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GANConfig(**{"data_shape": (2,), **kwargs})


STOCK_ELBO = r"stock Pyro ELBOs such as Trace_ELBO cannot fit a VariationalGAN .*DiscriminatorELBO and GeneratorELBO"


@pytest.mark.parametrize("elbo", [Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO, JitTrace_ELBO])
def test_stock_elbos_refuse_the_gan(elbo):
    gan, x = points_gan(), torch.randn(8, 2)
    with pytest.raises(ValueError, match=STOCK_ELBO):
        elbo().loss(gan.model, gan.guide, x)
    svi = SVI(gan.model, gan.guide, pyro.optim.Adam({"lr": 1e-3}), elbo())
    with pytest.raises(ValueError, match=STOCK_ELBO):
        svi.step(x)


@pytest.mark.parametrize(
    "x_real, got",
    [
        (None, "got None"),
        (torch.randn(6, 3), r"got shape \(6, 3\)"),
        (torch.randn(2), r"got shape \(2,\)"),
    ],
)
def test_model_needs_a_batch_of_real_points(x_real, got):
    gan = points_gan()
    message = rf"needs a batch of real points x_real of shape \(N, 2\), {got}; .*gan\.sample\(n\)"
    with pytest.raises(ValueError, match=message):
        gan.model(x_real)
    with pytest.raises(ValueError, match=message):
        Predictive(gan.model, num_samples=3)(x_real)


@pytest.mark.parametrize("x, got", [(None, "got None"), (torch.randn(4, 3), r"got shape \(4, 3\)")])
def test_guide_needs_a_batch_of_points(x, got):
    with pytest.raises(
        ValueError, match=rf"guide needs a batch of points x of shape \(N, 2\), {got}"
    ):
        points_gan().guide(x)


def test_a_parameter_replaced_out_of_place_gets_the_gradient():
    """Pyro's param store holds each parameter by name; after ``layer.weight`` is replaced
    by a new tensor, the store must follow, or the gradient goes to the stale one."""
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(8,)))
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    elbo = GeneratorELBO()
    elbo.loss_and_grads(gan.model, gan.guide, x, snapshot=elbo.snapshot(gan.model, x))
    layer = next(m for m in gan.generator.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        layer.weight = torch.nn.Parameter(layer.weight * 2)
    gan.zero_grad()
    snapshot = elbo.snapshot(gan.model, x)
    elbo.loss_and_grads(gan.model, gan.guide, x, snapshot=snapshot)
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    # The loss is computed with the new weight: doubling it changed the generated points.
    assert torch.equal(
        snapshot.nodes["x_gen"]["value"], gan.generator(snapshot.nodes["z"]["value"])
    )
