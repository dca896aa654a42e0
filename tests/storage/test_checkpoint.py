"""Checkpoints read back as data, and the random state they carry."""

import random

import numpy as np
import pytest
import torch

from pyro_vigen.storage import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def test_a_checkpoint_reads_back_and_names_its_kind(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, kind="vae", step=7, model={"w": torch.ones(3)})
    state = load_checkpoint(path, kind="vae")
    assert state["step"] == 7 and torch.equal(state["model"]["w"], torch.ones(3))
    with pytest.raises(CheckpointError, match="holds a 'vae' model, expected 'gan'"):
        load_checkpoint(path, kind="gan")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_the_rng_state_survives_a_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, kind="vae", step=1, rng=rng_state())
    first = torch.rand(3), np.random.rand(3), random.random()
    set_rng_state(load_checkpoint(path)["rng"])
    again = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1]) and first[2] == again[2]
