"""Loading a trained model back from its run directory."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..errors import UserError
from ..storage import CONFIG, CheckpointError, RunDir, load_checkpoint
from .family import Family, families


def load_run(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> tuple[dict, nn.Module]:
    """The config and the trained model of a run directory, in eval mode.

    The model is built by the registered family the run's ``kind`` names
    (:func:`~pyro_vigen.infer.family.get_family`).

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
    family = run_family(config, run.path)
    state = load_checkpoint(run.checkpoint, kind=family.name, map_location=map_location)
    model = family.model(family.model_config.from_dict(config["model"]))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(
            f"{run.checkpoint} does not fit the model in {run.file(CONFIG)}: {e}"
        ) from None
    return config, model.to(map_location).eval()


def run_family(config: dict, path: str | os.PathLike | None = None) -> Family:
    """The registered family of a run's ``config.json``.

    :param dict config: the run's ``config.json``.
    :param path: the run directory, named in the error message.
    :raises UserError: its ``kind`` names no registered family.
    """
    known = families()
    kind = config.get("kind")
    if kind not in known:
        raise UserError(
            f"{path or 'the run'} holds a run of unknown model kind {kind!r}; "
            f"known: {', '.join(known)}"
        )
    return known[kind]
