"""The run directory: its files, and when a folder may take a run."""

import json

import pytest
import torch

from pyro_vigen.storage import CONFIG, METRICS, RunDir

CONFIG_DICT = {"kind": "vae", "train": {"steps": 10, "lr": 1e-3}, "versions": {"torch": "1"}}


def test_json_and_samples_read_back(tmp_path):
    run = RunDir(tmp_path)
    run.write_json(METRICS, {"b": 1, "a": [0.5]})
    assert (tmp_path / METRICS).read_text() == '{\n  "a": [\n    0.5\n  ],\n  "b": 1\n}\n'
    run.save_samples(torch.arange(6.0).reshape(3, 2), seed=4)
    assert torch.equal(run.read_samples(), torch.arange(6.0).reshape(3, 2))


def test_prepare_guards_an_existing_run(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.prepare(CONFIG_DICT, resume=False, overwrite=False) is False
    assert run.read_config() == CONFIG_DICT
    with pytest.raises(ValueError, match="already holds a run"):
        run.prepare(CONFIG_DICT, resume=False, overwrite=False)
    # More steps and other library versions may resume; another learning rate may not.
    longer = {**CONFIG_DICT, "train": {"steps": 20, "lr": 1e-3}, "versions": {"torch": "2"}}
    assert run.prepare(longer, resume=True, overwrite=False) is False  # no checkpoint yet
    other = {**CONFIG_DICT, "train": {"steps": 10, "lr": 1e-2}}
    with pytest.raises(ValueError, match=r"differ in train\.lr"):
        run.prepare(other, resume=True, overwrite=False)
    assert run.prepare(other, resume=False, overwrite=True) is False
    assert json.loads((run.path / CONFIG).read_text())["train"]["lr"] == 1e-2
