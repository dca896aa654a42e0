"""Plain ``torch.nn`` building blocks, chosen by the shape of the data."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import UserError
from .conv import ConvDecoder, ConvEncoder
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .mlp import MLP, Maxout, activation


def encoder_net(
    data_shape: tuple[int, ...],
    out_dim: int,
    hidden: Sequence[int],
    act: str = "relu",
    *,
    batch_norm: bool = False,
    maxout: int = 1,
) -> nn.Module:
    """An MLP for ``(D,)`` points, a :class:`ConvEncoder` for ``(C, H, W)`` images.

    :param tuple data_shape: shape of one data point, ``(D,)`` or ``(C, H, W)``.
    :param int out_dim: output width.
    :param hidden: hidden widths of the MLP (unused for images).
    :param str act: hidden activation of the MLP (unused for images).
    :param bool batch_norm: batch norm in the MLP's hidden layers (see :class:`MLP`).
    :param int maxout: maxout pieces of the MLP's hidden layers (see :class:`MLP`).
    :returns: the network, mapping ``(N, *data_shape)`` to ``(N, out_dim)``.
    :raises ValueError: ``batch_norm`` or ``maxout`` asked of an image net.

    Example::

        from pyro_vigen.nets import encoder_net
        encoder_net((2,), 4, hidden=(32, 32))      # an MLP 2 -> 32 -> 32 -> 4
        encoder_net((1, 8, 8), 4, hidden=())       # a ConvEncoder (hidden is ignored)
    """
    if len(data_shape) == 1:
        return MLP(data_shape[0], hidden, out_dim, act, batch_norm=batch_norm, maxout=maxout)
    _check_conv_options(batch_norm, maxout)
    return ConvEncoder(data_shape, out_dim)


def decoder_net(
    in_dim: int,
    data_shape: tuple[int, ...],
    hidden: Sequence[int],
    act: str = "relu",
    *,
    batch_norm: bool = False,
    maxout: int = 1,
) -> nn.Module:
    """An MLP to ``(D,)`` points, a :class:`ConvDecoder` to ``(C, H, W)`` images.

    :param int in_dim: input width.
    :param tuple data_shape: shape of one data point, ``(D,)`` or ``(C, H, W)``.
    :param hidden: hidden widths of the MLP (unused for images).
    :param str act: hidden activation of the MLP (unused for images).
    :param bool batch_norm: batch norm in the MLP's hidden layers (see :class:`MLP`).
    :param int maxout: maxout pieces of the MLP's hidden layers (see :class:`MLP`).
    :returns: the network, mapping ``(N, in_dim)`` to ``(N, *data_shape)``.
    :raises ValueError: ``batch_norm`` or ``maxout`` asked of an image net.

    Example::

        from pyro_vigen.nets import decoder_net
        decoder_net(4, (2,), hidden=(32, 32))      # an MLP 4 -> 32 -> 32 -> 2
        decoder_net(4, (1, 28, 28), hidden=())     # a ConvDecoder (hidden is ignored)
    """
    if len(data_shape) == 1:
        return MLP(in_dim, hidden, data_shape[0], act, batch_norm=batch_norm, maxout=maxout)
    _check_conv_options(batch_norm, maxout)
    return ConvDecoder(in_dim, data_shape)


def _check_conv_options(batch_norm: bool, maxout: int) -> None:
    if batch_norm or maxout != 1:
        raise UserError(
            "batch_norm and maxout are options of the MLPs for points; the conv nets of "
            "images take neither"
        )


__all__ = [
    "MLP",
    "ConvDecoder",
    "ConvEncoder",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "Maxout",
    "activation",
    "decoder_net",
    "encoder_net",
]
