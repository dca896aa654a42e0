"""Multilayer perceptron."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

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
        raise ValueError(
            f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}"
        ) from None


class MLP(nn.Sequential):
    """Fully connected net ``in_dim -> hidden... -> out_dim`` with no output activation.

    With ``hidden=()`` it is a single linear map (the linear-Gaussian VAE uses that).

    :param int in_dim: input width.
    :param hidden: widths of the hidden layers, each followed by the activation.
    :param int out_dim: output width.
    :param str act: hidden activation, a name for :func:`activation`.

    Example::

        import torch
        from pyro_vigen.nets import MLP
        net = MLP(2, [64, 64], 1, act="tanh")
        net(torch.randn(5, 2)).shape      # torch.Size([5, 1])
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, act: str = "relu") -> None:
        layers: list[nn.Module] = []
        sizes = [in_dim, *hidden]
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), activation(act)]
        layers.append(nn.Linear(sizes[-1], out_dim))
        super().__init__(*layers)
