import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO

from pyro_vigen.infer import DiscriminatorELBO, GeneratorELBO, ModuleSVI
from pyro_vigen.models import VAE, GANConfig, VAEConfig, VariationalGAN


def twins(cls, config):
    a, b = cls(config), cls(config)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("elbo", [Trace_ELBO, TraceMeanField_ELBO], ids=["trace", "meanfield"])
def test_module_svi_takes_the_steps_of_stock_svi(elbo):
    # One torch Adam over all parameters against pyro.optim's Adam per parameter: the
    # same arithmetic, so the same trajectory from the same start and random stream.
    ours, stock = twins(VAE, VAEConfig(data_shape=(2,), hidden=(8,)))
    x = torch.randn(32, 2)
    module_svi = ModuleSVI(
        ours.model, ours.guide, torch.optim.Adam(ours.parameters(), lr=0.01), elbo()
    )
    svi = SVI(stock.model, stock.guide, pyro.optim.Adam({"lr": 0.01}), elbo())
    for step in range(5):
        pyro.set_rng_seed(step)
        a = module_svi.step(x, num_data=320)
        pyro.set_rng_seed(step)
        b = svi.step(x, num_data=320)
        assert a == pytest.approx(b, rel=1e-6)
    for (k, p), q in zip(ours.state_dict().items(), stock.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), k
    assert all(p.grad is None for p in ours.parameters())


def test_each_gan_phase_moves_only_the_parameters_of_its_optimiser():
    gan = VariationalGAN(GANConfig(data_shape=(2,), hidden=(8,)))
    x = torch.randn(16, 2)
    phases = {
        "discriminator": DiscriminatorELBO(),
        "generator": GeneratorELBO(),
    }
    for part, elbo in phases.items():
        optim = torch.optim.Adam(getattr(gan, part).parameters(), lr=0.1)
        before = {k: v.clone() for k, v in gan.state_dict().items()}
        ModuleSVI(gan.model, gan.guide, optim, elbo).step(x)
        changed = {k for k, v in gan.state_dict().items() if not torch.equal(v, before[k])}
        assert changed == {k for k in before if k.startswith(f"{part}.")}
        assert all(p.grad is None for p in gan.parameters())
