"""Multilayer perceptron, with optional batch norm or maxout hidden layers."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from ..config import require_positive
from ..errors import UserError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


def activation(name: str) -> nn.Module:
    """A new activation module, by name.

    :param str name: ``"relu"``, ``"leaky_relu"`` (slope 0.2), ``"tanh"`` or ``"elu"``.
    :returns: a new activation module.
    :raises ValueError: an unknown name.

    Example::

        from pyro_vigen.nets import activation
        activation("leaky_relu")    # LeakyReLU(negative_slope=0.2)
    """
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise UserError(
            f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}"
        ) from None


class Maxout(nn.Module):
    r"""Linear maxout layer: each output unit is the largest of ``pieces`` affine maps.

    .. math::

        h_j(x) = \max_{k = 1}^{K} \big(x^\top W_{jk} + b_{jk}\big), \quad j = 1, \dots,
        \text{out\_dim},

    Goodfellow et al.'s maxout unit [1]; the discriminator of the PacGAN and VEEGAN
    synthetic experiments [2] stacks three of 200 units with 5 pieces. The pieces are
    one :class:`torch.nn.Linear` of width ``out_dim * pieces`` (attribute ``linear``):
    unit j's piece k is its row ``j * pieces + k``, as in Blocks' ``LinearMaxout``.

    :param int in_dim: input width.
    :param int out_dim: output width, the number of maxout units.
    :param int pieces: affine pieces K per unit; 1 makes it a plain linear layer.
    :raises ValueError: a width or ``pieces`` that is not a positive integer.

    Example::

        import torch
        from pyro_vigen.nets import Maxout
        layer = Maxout(2, 200, pieces=5)
        layer(torch.randn(7, 2)).shape     # torch.Size([7, 200])

    References:
    [1] Goodfellow et al., "Maxout Networks", ICML 2013.
    [2] Lin et al., "PacGAN: The power of two samples in generative adversarial
    networks", NeurIPS 2018.
    """

    def __init__(self, in_dim: int, out_dim: int, pieces: int) -> None:
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("pieces", pieces)):
            require_positive(name, value, integer=True)
        super().__init__()
        self.out_dim, self.pieces = out_dim, pieces
        self.linear = nn.Linear(in_dim, out_dim * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(-1, (self.out_dim, self.pieces)).amax(-1)

    def extra_repr(self) -> str:
        return f"out_dim={self.out_dim}, pieces={self.pieces}"


class MLP(nn.Sequential):
    """Fully connected net ``in_dim -> hidden... -> out_dim`` with no output activation.

    With ``hidden=()`` it is a single linear map (the linear-Gaussian VAE uses that).
    Each hidden layer is, by the options:

    - default: :class:`torch.nn.Linear`, then the activation;
    - ``batch_norm=True``: :class:`torch.nn.Linear` without bias (batch norm's shift
      takes its place), :class:`torch.nn.BatchNorm1d` (PyTorch's defaults: momentum
      0.1, eps :math:`10^{-5}`), then the activation: the generator of the PacGAN and
      VEEGAN synthetic experiments [1]. Batch norm computes with the batch's statistics
      in train mode and with its running statistics in eval mode, and updates those
      running statistics (buffers) at every train-mode call, gradient or not;
    - ``maxout=K > 1``: a :class:`Maxout` layer of K pieces, which is its own
      nonlinearity (``act`` is unused): the discriminator of [1].

    :param int in_dim: input width.
    :param hidden: widths of the hidden layers.
    :param int out_dim: output width.
    :param str act: hidden activation, a name for :func:`activation`.
    :param bool batch_norm: batch norm in every hidden layer, before the activation.
    :param int maxout: pieces of the maxout hidden layers; 1 (the default) is the plain
        linear layer and activation.
    :raises ValueError: an unknown activation, ``maxout`` not a positive integer, or
        ``batch_norm`` together with ``maxout > 1`` (no protocol needs the pair, and
        where batch norm would sit is ambiguous).

    Example::

        import torch
        from pyro_vigen.nets import MLP
        net = MLP(2, [64, 64], 1, act="tanh")
        net(torch.randn(5, 2)).shape      # torch.Size([5, 1])
        generator = MLP(2, [400] * 4, 2, batch_norm=True)   # PacGAN's 2-D generator
        critic = MLP(2, [200] * 3, 1, maxout=5)             # and its discriminator

    References:
    [1] Lin et al., "PacGAN: The power of two samples in generative adversarial
    networks", NeurIPS 2018, after Srivastava et al., "VEEGAN", NeurIPS 2017.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        act: str = "relu",
        *,
        batch_norm: bool = False,
        maxout: int = 1,
    ) -> None:
        require_positive("maxout", maxout, integer=True)
        if not isinstance(batch_norm, bool):
            raise UserError(f"batch_norm must be True or False, got {batch_norm!r}")
        if batch_norm and maxout > 1:
            raise UserError("an MLP takes batch_norm or maxout > 1, not both")
        layers: list[nn.Module] = []
        sizes = [in_dim, *hidden]
        for a, b in itertools.pairwise(sizes):
            if maxout > 1:
                layers.append(Maxout(a, b, maxout))
            elif batch_norm:
                layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), activation(act)]
            else:
                layers += [nn.Linear(a, b), activation(act)]
        layers.append(nn.Linear(sizes[-1], out_dim))
        super().__init__(*layers)
