r"""The generator and discriminator of DCGAN for 8x8, 28x28 and 32x32 images.

Radford, Metz and Chintala, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", ICLR 2016: strided (transposed)
convolutions instead of pooling, batch norm in the generator, ReLU in the generator and
LeakyReLU (slope 0.2) in the discriminator, weights drawn from N(0, 0.02^2).

One change: the discriminator takes spectral normalisation (Miyato et al., "Spectral
Normalization for Generative Adversarial Networks", ICLR 2018) where DCGAN has batch
norm. Batch norm would make the discriminator's verdict on a point depend on the other
points of its batch, so :math:`q_\phi(y|x)` would not be a function of x, and the
generator phase, which scores only the generated points, would see another function
than the discriminator phase trained (on 8x8 digits the generator then collapsed onto
one digit within 300 iterations). Without either, the discriminator won and the
generator collapsed as well; with spectral normalisation it learns varied digits.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UserError

# Stride-2 stages between each supported image size and the small grid the nets start
# (generator) or end (discriminator) on: 8 -> 4 -> 2, 28 -> 14 -> 7, 32 -> 16 -> 8 -> 4.
_STAGES = {8: 2, 28: 2, 32: 3}
#: DCGAN's initialisation: weights from N(0, INIT_STD^2), biases 0, batch norm scale from N(1, INIT_STD^2).
INIT_STD = 0.02


def _check_image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in _STAGES:
        sizes = ", ".join(f"(C, {s}, {s})" for s in _STAGES)
        raise UserError(f"DCGAN nets support {sizes} images, got {tuple(shape)}")
    return shape  # type: ignore[return-value]


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation of every convolution, linear and batch-norm layer of ``module``."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, INIT_STD)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(layer.weight, 1.0, INIT_STD)
            nn.init.zeros_(layer.bias)


class SpectralNorm(nn.Module):
    """Divides a layer's weight by its largest singular value (Miyato et al., 2018).

    The singular value comes from one step of power iteration per forward pass in train
    mode, on a vector ``u`` kept as a buffer (so it is checkpointed with the model); in
    eval mode ``u`` stays put. The same computation as
    :func:`torch.nn.utils.parametrizations.spectral_norm`, written without that
    function's ``out=`` arguments, which :func:`torch.jit.trace` rejects when the weight
    requires grad (the compiled GAN objectives trace the parameters as inputs).
    Install it with :meth:`apply`.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        u = F.normalize(torch.randn(weight.shape[0]), dim=0, eps=1e-12)
        self.register_buffer("u", u)

    @classmethod
    def apply(cls, layer: nn.Module) -> None:
        """Register the normalisation on ``layer.weight`` as a parametrization."""
        nn.utils.parametrize.register_parametrization(layer, "weight", cls(layer.weight))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.flatten(1)
        if self.training:
            # detach(), not no_grad(): the tracer does not record no_grad regions.
            fixed = w.detach()
            v = F.normalize(fixed.t() @ self.u, dim=0, eps=1e-12)
            self.u.copy_(F.normalize(fixed @ v, dim=0, eps=1e-12))
        # A copy: the graph must not hold the buffer that the next pass updates in place.
        u = self.u.clone()
        v = F.normalize(w.t() @ u, dim=0, eps=1e-12)
        return weight / (u @ w @ v)


class DCGANGenerator(nn.Module):
    """Noise of ``noise_dim`` -> image ``(C, H, W)`` in [0, 1].

    A linear layer to a ``(width * 2^(s-1), side, side)`` grid, then s stride-2
    transposed convolutions, each halving the channels and doubling the side; batch norm
    and ReLU after every layer but the last, a sigmoid at the end (DCGAN's tanh, moved
    to the data's range [0, 1]).

    :param int noise_dim: input width.
    :param tuple image_shape: ``(C, H, H)`` with H in 8, 28, 32.
    :param int width: channels of the last hidden layer.
    :raises ValueError: an unsupported image size.

    Example::

        import torch
        from pyro_vigen.nets import DCGANGenerator
        generator = DCGANGenerator(16, (1, 28, 28))
        generator(torch.randn(4, 16)).shape    # torch.Size([4, 1, 28, 28])
    """

    def __init__(self, noise_dim: int, image_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        c, h, _ = _check_image_shape(image_shape)
        stages = _STAGES[h]
        ch = width * 2 ** (stages - 1)
        side = h // 2**stages
        self.grid = (ch, side, side)
        self.fc = nn.Sequential(
            nn.Linear(noise_dim, ch * side * side, bias=False),
            nn.BatchNorm1d(ch * side * side),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, c, 4, stride=2, padding=1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(z).view(-1, *self.grid))


class DCGANDiscriminator(nn.Module):
    """Image ``(C, H, W)`` -> one logit.

    s stride-2 convolutions from ``width`` channels, doubling at each, LeakyReLU (0.2)
    after each, then a linear layer to the logit; every layer spectrally normalised
    (its weight divided by its largest singular value, estimated by one power iteration
    per training forward pass).

    :param tuple image_shape: ``(C, H, H)`` with H in 8, 28, 32 (C includes a pack's
        images, concatenated along the channels).
    :param int width: channels of the first convolution.
    :raises ValueError: an unsupported image size.

    Example::

        import torch
        from pyro_vigen.nets import DCGANDiscriminator
        discriminator = DCGANDiscriminator((1, 8, 8))
        discriminator(torch.rand(4, 1, 8, 8)).shape    # torch.Size([4, 1])
    """

    def __init__(self, image_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        c, h, _ = _check_image_shape(image_shape)
        stages = _STAGES[h]
        layers: list[nn.Module] = []
        ch = c
        for stage in range(stages):
            out = width * 2**stage
            layers += [nn.Conv2d(ch, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch = out
        side = h // 2**stages
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(ch * side * side, 1)
        dcgan_init(self)
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                SpectralNorm.apply(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
