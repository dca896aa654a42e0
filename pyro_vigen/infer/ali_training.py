"""The ALI family: an :class:`~pyro_vigen.models.ALI` trained with the GAN's two ELBOs on pairs.

Its declaration, :data:`ALI_FAMILY`; :func:`~pyro_vigen.infer.train` trains it
(``train("ali", ...)``) with a :class:`~pyro_vigen.infer.GANTrainConfig`: the same
phases, priors and optimisers as the GAN, the generator phase scoring both labels.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..models import ALI, ALIConfig
from .family import Family, register
from .gan_training import GANTrainConfig, adversarial_label, gan_step


def check_ali_settings(model: ALIConfig, train: GANTrainConfig) -> None:
    """The importance-weighted loss weighs generated rows only; ALI's generator phase
    scores both labels, so it is refused."""
    if train.loss == "importance_weighted":
        raise UserError(
            "the importance-weighted loss applies to a GAN's generated points; ALI's "
            "generator phase scores both labels: use --loss nonsaturating or minimax",
            field="loss",
        )


def ali_label(config: dict[str, Any]) -> str:
    """``ALI``, its prior and generator steps (:func:`adversarial_label`)."""
    return adversarial_label("ALI", config["train"])


#: The ALI family (points): its runs get reconstruction quality (x to z to x) and the
#: aggregate posterior's KL to the prior.
ALI_FAMILY = register(
    Family(
        name="ali",
        help="train ALI/BiGAN: a GAN on (x, z) pairs of an encoder and a decoder",
        model_config=ALIConfig,
        train_config=GANTrainConfig,
        model=ALI,
        build_step=gan_step,
        label=ali_label,
        check=check_ali_settings,
        diagnostics=("reconstruction", "latent"),
    )
)
