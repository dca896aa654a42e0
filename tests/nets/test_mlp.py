import pytest
import torch
from torch import nn

from pyro_vigen.nets import MLP, Maxout, decoder_net, encoder_net


def test_maxout_is_the_max_over_pieces_of_affine_maps():
    layer = Maxout(3, 4, pieces=5)
    x = torch.randn(6, 3)
    w, b = layer.linear.weight, layer.linear.bias  # (4 * 5, 3), unit j's piece k at row 5 j + k
    pieces = torch.stack([x @ w[k::5].T + b[k::5] for k in range(5)])  # (pieces, N, units)
    assert layer(x).shape == (6, 4)
    assert torch.allclose(layer(x), pieces.max(0).values)
    # Unit j is the max of its own 5 rows of the linear map.
    j = 2
    by_hand = torch.stack([x @ w[5 * j + k] + b[5 * j + k] for k in range(5)]).max(0).values
    assert torch.allclose(layer(x)[:, j], by_hand)


def test_one_piece_is_a_linear_layer():
    layer = Maxout(3, 4, pieces=1)
    x = torch.randn(5, 3)
    assert torch.allclose(layer(x), layer.linear(x))


@pytest.mark.parametrize("bad", [{"pieces": 0}, {"pieces": 2.5}, {"out_dim": -1}])
def test_maxout_checks_its_sizes(bad):
    with pytest.raises(ValueError, match="must be a positive integer|must be positive"):
        Maxout(**{"in_dim": 3, "out_dim": 4, "pieces": 2, **bad})


def test_default_mlp_is_unchanged():
    # The layers, and so the random draws of their initialisation, of the plain MLP.
    torch.manual_seed(0)
    net = MLP(2, [8, 8], 1)
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    assert [type(m) for m in net] == [type(m) for m in plain]
    for a, b in zip(net.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_batch_norm_mlp_layers_and_modes():
    net = MLP(2, [16, 16], 2, batch_norm=True)
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [nn.Linear]
    assert net[0].bias is None and net[-1].bias is not None
    x = torch.randn(64, 2) * 3 + 1
    bn = net[1]
    # Train mode: the batch's statistics (each unit mean 0, variance 1 after the BN),
    # and the running statistics move, with or without gradient.
    with torch.no_grad():
        h = net[1](net[0](x))
    assert torch.allclose(h.mean(0), torch.zeros(16), atol=1e-5)
    assert bn.num_batches_tracked == 1 and not torch.equal(bn.running_mean, torch.zeros(16))
    # Eval mode: the running statistics; a point's output does not depend on its batch.
    net.eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert torch.allclose(net(x[:1]), net(x)[:1], atol=1e-6)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_maxout_mlp_layers():
    net = MLP(4, [200, 200, 200], 1, maxout=5)
    assert [type(m) for m in net] == [Maxout] * 3 + [nn.Linear]
    assert net[0].linear.weight.shape == (1000, 4) and net[1].linear.weight.shape == (1000, 200)
    assert net(torch.randn(7, 4)).shape == (7, 1)


def test_mlp_options_are_checked():
    with pytest.raises(ValueError, match="not both"):
        MLP(2, [8], 1, batch_norm=True, maxout=2)
    with pytest.raises(ValueError, match="maxout must be positive"):
        MLP(2, [8], 1, maxout=0)
    with pytest.raises(ValueError, match="batch_norm must be True or False"):
        MLP(2, [8], 1, batch_norm=1)


def test_image_nets_take_no_mlp_options():
    with pytest.raises(ValueError, match="conv nets of images take neither"):
        decoder_net(4, (1, 8, 8), (), batch_norm=True)
    with pytest.raises(ValueError, match="conv nets of images take neither"):
        encoder_net((1, 8, 8), 1, (), maxout=5)
