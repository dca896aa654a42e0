"""Checkpoints: written atomically, read back as data (never as code)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .atomic import atomic_write

FORMAT = "pyro_vigen-checkpoint"
# 2: optimiser state is a torch.optim state_dict (1 held pyro.optim's per-parameter state).
FORMAT_VERSION = 2


class CheckpointError(UserError):
    """A checkpoint file that is missing, truncated, or not one of this library's.

    Example::

        from pyro_vigen.storage import CheckpointError, load_checkpoint
        try:
            load_checkpoint("runs/vae/checkpoint.pt", kind="gan")
        except CheckpointError as e:    # a ValueError
            print(e)                    # runs/vae/checkpoint.pt holds a 'vae' model, expected 'gan'
    """


def save_checkpoint(path: str | os.PathLike, *, kind: str, step: int, **state: Any) -> None:
    """Write a checkpoint atomically: the format fields, ``kind``, ``step`` and ``state``.

    :param path: the checkpoint file.
    :param str kind: the model kind it holds, which :func:`load_checkpoint` checks.
    :param int step: the training step it was written at.
    :param state: the rest (``model``, ``optim``, ``rng``...), tensors and plain data
        that ``torch.load(..., weights_only=True)`` reads back.
    """
    atomic_write(
        path,
        {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "step": step, **state},
    )


def load_checkpoint(
    path: str | os.PathLike, *, kind: str | None = None, map_location: Any = "cpu"
) -> dict:
    """Read a checkpoint with ``weights_only=True`` and check that it is one of ours.

    :raises CheckpointError: missing, unreadable, foreign or of another model kind.
    :param path: the checkpoint file.
    :param str kind: the model kind it must hold; ``None`` accepts any.
    :param map_location: where tensors are loaded, as for :func:`torch.load`.
    :returns: the checkpoint's dict: ``step``, ``wall_time``, ``model`` (the state dict),
        ``optim``, ``sampler``, ``rng`` and the format fields.

    Example::

        from pyro_vigen.storage import load_checkpoint
        state = load_checkpoint("runs/vae/checkpoint.pt", kind="vae")
        state["step"]                 # the step it was written at
        vae.load_state_dict(state["model"])   # vae: a VAE of the run's config
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, pickle with code, garbage: all unreadable here
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or foreign?): {type(e).__name__}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pyro_vigen checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {state.get('format_version')}, expected {FORMAT_VERSION}"
        )
    if kind is not None and state.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {state.get('kind')!r} model, expected {kind!r}")
    return state


def rng_state() -> dict:
    """Every random-number state a training step consumes, as weights-only-loadable data."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the random-number states :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x
