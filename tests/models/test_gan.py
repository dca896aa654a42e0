import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI

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
        ({"data_shape": (2,), "activation": "swish"}, "unknown activation"),
        ({"data_shape": (1, 9, 9)}, r"\(C, 8, 8\) and \(C, 28, 28\)"),
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
