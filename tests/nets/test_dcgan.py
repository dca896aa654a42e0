import pytest
import torch
from torch import nn

from pyro_vigen.nets import DCGANDiscriminator, DCGANGenerator
from pyro_vigen.nets.dcgan import SpectralNorm


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_shapes_and_range(shape):
    generator, discriminator = DCGANGenerator(5, shape, width=8), DCGANDiscriminator(shape, 8)
    x = generator(torch.randn(4, 5))
    assert x.shape == (4, *shape)
    assert x.min() >= 0 and x.max() <= 1  # images live in [0, 1]
    assert discriminator(x).shape == (4, 1)
    # DCGAN: batch norm in the generator, none in the discriminator.
    assert any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in discriminator.modules())


@pytest.mark.parametrize("shape", [(1, 9, 9), (1, 8, 6), (8, 8)])
def test_unsupported_shapes(shape):
    with pytest.raises(ValueError, match=r"\(C, 8, 8\), \(C, 28, 28\), \(C, 32, 32\)"):
        DCGANGenerator(4, shape)
    with pytest.raises(ValueError, match="DCGAN nets support"):
        DCGANDiscriminator(shape)


def test_spectral_norm_divides_by_the_largest_singular_value():
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 6, 4)
    raw = layer.weight.detach().clone()
    SpectralNorm.apply(layer)
    for _ in range(200):  # power iteration converges in train mode
        layer(torch.zeros(1, 3, 4, 4))
    sigma = torch.linalg.matrix_norm(raw.flatten(1), ord=2)  # independent: an SVD
    assert torch.allclose(layer.weight, raw / sigma, rtol=1e-4)
    assert float(
        torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
    ) == pytest.approx(1, rel=1e-4)
    # Gradients reach the raw weight through the normalisation.
    layer.weight.sum().backward()
    assert layer.parametrizations.weight.original.grad is not None


def test_spectral_norm_iterates_only_in_train_mode():
    layer = nn.Linear(5, 3)
    SpectralNorm.apply(layer)
    u = layer.parametrizations.weight[0].u.clone()
    layer.eval()
    first = layer.weight
    assert torch.equal(layer.parametrizations.weight[0].u, u)
    assert torch.equal(layer.weight, first)  # a fixed function in eval mode
    layer.train()
    _ = layer.weight  # computing the weight runs one power iteration
    assert not torch.equal(layer.parametrizations.weight[0].u, u)
