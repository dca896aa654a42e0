"""``history.csv``: buffered rows, cut back to the checkpoint on resume."""

from pyro_vigen.storage import History, read_history


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
