"""Small convolutional encoder and decoder for 8x8 and 28x28 images."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .mlp import activation

# Stride-2 stages that bring each supported image size down to a small grid:
# 8 -> 4 and 28 -> 14 -> 7.
_STAGES = {8: 1, 28: 2}


def _check_image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in _STAGES:
        raise UserError(f"conv nets support (C, 8, 8) and (C, 28, 28) images, got {shape}")
    return shape  # type: ignore[return-value]


class ConvEncoder(nn.Module):
    """Image ``(C, H, W)`` -> vector of ``out_dim`` (also used as the GAN's critic).

    :param tuple image_shape: ``(C, 8, 8)`` or ``(C, 28, 28)``.
    :param int out_dim: output width.
    :param int width: channels of the first convolution, doubled at each stride-2 stage.
    :param str act: activation, a name for :func:`activation`.
    :raises ValueError: an image size other than 8x8 or 28x28.

    Example::

        import torch
        from pyro_vigen.nets import ConvEncoder
        encoder = ConvEncoder((1, 28, 28), out_dim=16)
        encoder(torch.rand(4, 1, 28, 28)).shape    # torch.Size([4, 16])
    """

    def __init__(
        self, image_shape: tuple[int, ...], out_dim: int, width: int = 32, act: str = "leaky_relu"
    ) -> None:
        super().__init__()
        c, h, _ = _check_image_shape(image_shape)
        stages = _STAGES[h]
        layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1), activation(act)]
        ch = width
        for _ in range(stages):
            layers += [nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1), activation(act)]
            ch *= 2
        side = h // 2**stages
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(ch * side * side, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvDecoder(nn.Module):
    """Vector of ``in_dim`` -> image ``(C, H, W)`` of unconstrained values (logits or means).

    :param int in_dim: input width.
    :param tuple image_shape: ``(C, 8, 8)`` or ``(C, 28, 28)``.
    :param int width: channels before the last convolution, doubled at each stride-2 stage
        going back towards the input.
    :param str act: activation, a name for :func:`activation`.
    :raises ValueError: an image size other than 8x8 or 28x28.

    Example::

        import torch
        from pyro_vigen.nets import ConvDecoder
        decoder = ConvDecoder(8, (1, 8, 8))
        decoder(torch.randn(4, 8)).shape    # torch.Size([4, 1, 8, 8])
    """

    def __init__(
        self, in_dim: int, image_shape: tuple[int, ...], width: int = 32, act: str = "relu"
    ) -> None:
        super().__init__()
        c, h, _ = _check_image_shape(image_shape)
        stages = _STAGES[h]
        ch = width * 2**stages
        side = h // 2**stages
        self.grid = (ch, side, side)
        self.fc = nn.Sequential(nn.Linear(in_dim, ch * side * side), activation(act))
        layers: list[nn.Module] = []
        for _ in range(stages):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1), activation(act)]
            ch //= 2
        layers.append(nn.Conv2d(ch, c, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(z).view(-1, *self.grid))
