"""Plain ``torch.nn`` building blocks, chosen by the shape of the data."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .conv import ConvDecoder, ConvEncoder
from .mlp import MLP, activation


def encoder_net(
    data_shape: tuple[int, ...], out_dim: int, hidden: Sequence[int], act: str = "relu"
) -> nn.Module:
    """An MLP for ``(D,)`` points, a :class:`ConvEncoder` for ``(C, H, W)`` images."""
    if len(data_shape) == 1:
        return MLP(data_shape[0], hidden, out_dim, act)
    return ConvEncoder(data_shape, out_dim)


def decoder_net(
    in_dim: int, data_shape: tuple[int, ...], hidden: Sequence[int], act: str = "relu"
) -> nn.Module:
    """An MLP to ``(D,)`` points, a :class:`ConvDecoder` to ``(C, H, W)`` images."""
    if len(data_shape) == 1:
        return MLP(in_dim, hidden, data_shape[0], act)
    return ConvDecoder(in_dim, data_shape)


__all__ = ["MLP", "ConvDecoder", "ConvEncoder", "activation", "decoder_net", "encoder_net"]
