"""Loading a trained model back from its run directory."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..errors import UserError
from ..models import VAE, GANConfig, VAEConfig, VariationalGAN
from ..storage import CONFIG, CheckpointError, RunDir, load_checkpoint

# kind -> (config class, model class); each model is built as ``cls(config_cls.from_dict(...))``.
MODEL_KINDS: dict[str, tuple[type, type]] = {
    "vae": (VAEConfig, VAE),
    "gan": (GANConfig, VariationalGAN),
}


def load_run(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> tuple[dict, nn.Module]:
    """The config and the trained model of a run directory, in eval mode.

    :returns: ``(config, model)``, ``config`` being ``config.json`` as a dict.
    :raises ValueError: not a run directory, unknown model kind, missing or bad checkpoint.
    :param path: the run directory.
    :param map_location: the device the model is loaded onto.

    Example::

        from pyro_vigen.infer import load_run
        config, vae = load_run("runs/vae")
        config["kind"], config["train"]["steps"]    # ('vae', 200)
        vae.sample(1000).shape                      # torch.Size([1000, 2])
    """
    run = RunDir(path)
    config = run.read_config()
    kind = config.get("kind")
    if kind not in MODEL_KINDS:
        raise UserError(
            f"{run.path} holds a run of unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}"
        )
    config_cls, model_cls = MODEL_KINDS[kind]
    state = load_checkpoint(run.checkpoint, kind=kind, map_location=map_location)
    model = model_cls(config_cls.from_dict(config["model"]))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(
            f"{run.checkpoint} does not fit the model in {run.file(CONFIG)}: {e}"
        ) from None
    return config, model.to(map_location).eval()
