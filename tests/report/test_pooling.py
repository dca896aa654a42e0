"""A report pools runs of one dataset only: averages over two datasets mean nothing."""

import json

import pytest
import torch

from pyro_vigen.report import read_runs, summarise


def fake_run(path, data, shape, seed=0):
    """A diagnosed VAE run folder, written by hand: the files read_runs reads, no training."""
    path.mkdir(parents=True)
    config = {
        "kind": "vae",
        "data": {"name": data, "num_points": 500, "seed": 1234, "data_root": None, "holdout": 0.1},
        "model": {"data_shape": list(shape), "likelihood": "normal"},
        "train": {"seed": seed, "steps": 10},
    }
    (path / "config.json").write_text(json.dumps(config))
    (path / "metrics.json").write_text(json.dumps({"kl_forward": 1.0 + seed, "kl_reverse": 2.0}))
    (path / "history.csv").write_text("step,loss,wall_time\n1,3.0,0.1\n")
    torch.save({"samples": torch.zeros(4, *shape), "seed": seed}, path / "samples.pt")
    torch.save({}, path / "checkpoint.pt")
    return path


def test_runs_of_two_datasets_are_refused_naming_both_and_their_folders(tmp_path, cli):
    ring = fake_run(tmp_path / "ring" / "vae", "ring8", (2,))
    grid = fake_run(tmp_path / "grid" / "vae", "grid25", (2,))
    with pytest.raises(ValueError, match=r"2 different datasets.*one report per dataset") as e:
        read_runs([tmp_path])
    for needle in ("ring8", "grid25", str(ring), str(grid)):
        assert needle in str(e.value)

    out = tmp_path / "report.html"
    r = cli("report", tmp_path / "ring", tmp_path / "grid", "--out", out)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "ring8" in lines[0] and "grid25" in lines[0] and "one report per dataset" in lines[0]
    assert not out.exists()


def test_a_user_file_of_the_same_name_but_another_shape_is_another_dataset(tmp_path):
    # Two seeds on one file, spelled two ways ("./" or not): one dataset, pooled.
    fake_run(tmp_path / "a" / "s0", "mine.csv", (2,), seed=0)
    fake_run(tmp_path / "a" / "s1", "./mine.csv", (2,), seed=1)
    summary = summarise(read_runs([tmp_path / "a"]))
    assert summary["VAE"]["kl_forward"] == {"mean": 1.5, "sd": pytest.approx(0.5**0.5), "n": 2}

    wide = fake_run(tmp_path / "b", "mine.csv", (3,))
    with pytest.raises(ValueError, match=r"mine\.csv \(points of shape 2\).*mine\.csv \(points of shape 3\)") as e:  # fmt: skip
        read_runs([tmp_path])
    assert str(tmp_path / "a" / "s0") in str(e.value) and str(wide) in str(e.value)
