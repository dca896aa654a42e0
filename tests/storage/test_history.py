"""``history.csv``: buffered rows, cut back to the checkpoint on resume."""

import pytest

from pyro_vigen.data import DataConfig
from pyro_vigen.infer import GANTrainConfig, loop, train
from pyro_vigen.models import GANConfig
from pyro_vigen.storage import History, load_checkpoint, read_history


def test_history_keeps_the_rows_up_to_the_resumed_step(tmp_path):
    path = tmp_path / "history.csv"
    history = History(path, ["loss"])
    history.start(0)
    for step in range(1, 6):
        history.append([step, 10.0 - step, 0.1 * step])
    history.flush()
    assert read_history(path)["loss"] == [9.0, 8.0, 7.0, 6.0, 5.0]
    # Steps 4 and 5 came after the checkpoint at step 3: a resume drops them.
    resumed = History(path, ["loss"])
    resumed.start(3)
    resumed.append([4, 0.5, 1.0])
    resumed.flush()
    history = read_history(path)
    assert list(history) == ["step", "loss", "wall_time"]
    assert history["step"] == [1.0, 2.0, 3.0, 4.0] and history["loss"][-1] == 0.5


def test_resume_after_a_crash_past_the_checkpoint_keeps_each_step_once(tmp_path, monkeypatch):
    # A run killed after history.csv took steps 5-8 but before the checkpoint of step 8
    # was written: the file runs ahead of the checkpoint (step 4). Resuming must leave
    # steps 1-12 once each, with the values of a run never interrupted.
    data, model = DataConfig("ring8", num_points=600), GANConfig(hidden=(16, 16))
    settings = GANTrainConfig(steps=12, batch_size=64, checkpoint_every=4, num_saved_samples=10)
    train("gan", tmp_path / "full", data, settings, model, progress=False)

    class Killed(Exception):
        pass

    def killed_at_step_8(path, **state):
        if state["step"] == 8:
            raise Killed
        return save(path, **state)

    save = loop.save_checkpoint
    monkeypatch.setattr(loop, "save_checkpoint", killed_at_step_8)
    with pytest.raises(Killed):
        train("gan", tmp_path / "cut", data, settings, model, progress=False)
    monkeypatch.undo()
    assert read_history(tmp_path / "cut" / "history.csv")["step"] == [float(s) for s in range(1, 9)]
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt", kind="gan")["step"] == 4

    train("gan", tmp_path / "cut", data, settings, model, resume=True, progress=False)
    full = read_history(tmp_path / "full" / "history.csv")
    resumed = read_history(tmp_path / "cut" / "history.csv")
    assert resumed["step"] == [float(s) for s in range(1, 13)]
    for column in ("disc_loss", "gen_loss", "penalty"):  # wall_time differs
        assert resumed[column] == full[column], column
