"""``--tensorboard``: the losses of every step and the model's samples, with training untouched."""

import io
import sys

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pyro_vigen.cli import main
from pyro_vigen.data import DataConfig
from pyro_vigen.infer import BatchSampler, fit, load_run, train
from pyro_vigen.infer.gan_training import GANTrainConfig
from pyro_vigen.infer.loop import TensorBoardLog, TensorBoardUnavailable
from pyro_vigen.infer.vae_training import VAETrainConfig
from pyro_vigen.models import GANConfig, VAEConfig
from pyro_vigen.storage import RunDir, read_history

POINTS = DataConfig("ring8", num_points=300)


def read_log(log_dir):
    """Every scalar and image event of a TensorBoard folder, as TensorBoard itself reads it."""
    log = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    log.Reload()
    scalars = {tag: log.Scalars(tag) for tag in log.Tags()["scalars"]}
    images = {tag: log.Images(tag) for tag in log.Tags()["images"]}
    return scalars, images


def assert_log_is_the_history(log_dir, run_dir, columns):
    scalars, _ = read_log(log_dir)
    history = read_history(run_dir / "history.csv")
    assert set(scalars) == {f"train/{c}" for c in columns}
    for column in columns:
        events = scalars[f"train/{column}"]
        assert [e.step for e in events] == history["step"]
        # TensorBoard keeps float32; history.csv the float64 of the step.
        assert [e.value for e in events] == pytest.approx(history[column], rel=1e-6, abs=1e-12)


def test_vae_run_logs_its_loss_every_step_and_samples_at_checkpoints(tmp_path):
    out, log_dir = tmp_path / "run", tmp_path / "tb"
    code = main(
        [
            "train",
            "vae",
            "--num-points",
            "300",
            "--hidden",
            "8",
            "--batch-size",
            "64",
            "--steps",
            "7",
            "--checkpoint-every",
            "3",
            "--out",
            str(out),
            "--no-progress",
            "--tensorboard",
            str(log_dir),
        ]
    )
    assert code == 0
    assert_log_is_the_history(log_dir, out, ["loss"])
    _, images = read_log(log_dir)
    # At every checkpoint and at the last step: a scatter plot of the samples.
    assert [e.step for e in images["samples"]] == [3, 6, 7]
    picture = Image.open(io.BytesIO(images["samples"][-1].encoded_image_string))
    assert picture.mode == "RGB" and min(picture.size) >= 200
    assert "tensorboard" not in (out / "config.json").read_text()


def test_gan_on_images_logs_both_phases_and_a_grid_of_samples(tmp_path):
    out, log_dir = tmp_path / "run", tmp_path / "tb"
    train(
        "gan",
        out,
        DataConfig("digits"),
        GANTrainConfig(steps=4, batch_size=32, checkpoint_every=2, prior="data"),
        GANConfig(conv_width=8),
        progress=False,
        tensorboard=log_dir,
    )
    assert_log_is_the_history(log_dir, out, ["disc_loss", "gen_loss", "penalty"])
    _, images = read_log(log_dir)
    assert [e.step for e in images["samples"]] == [2, 4]
    # 64 images of 8x8 in an 8x8 grid, 2 pixels of padding around each.
    assert (images["samples"][-1].width, images["samples"][-1].height) == (82, 82)


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_logging_leaves_training_and_resuming_exactly_as_without_it(tmp_path, kind):
    # The GAN's generator has batch norm: drawing the samples must not move its statistics.
    if kind == "vae":
        settings, model = (
            VAETrainConfig(steps=8, batch_size=64, checkpoint_every=4),
            VAEConfig(hidden=(8,)),
        )
    else:
        settings, model = (
            GANTrainConfig(steps=8, batch_size=64, checkpoint_every=4, prior="data"),
            GANConfig(hidden=(8,), gen_batch_norm=True),
        )
    plain = state(train(kind, tmp_path / "plain", POINTS, settings, model, progress=False))
    logged = train(
        kind,
        tmp_path / "logged",
        POINTS,
        settings,
        model,
        progress=False,
        tensorboard=tmp_path / "tb",
    )
    assert_same_state(plain, state(logged))
    # Half a run with the log, resumed without it; and half without, resumed with it.
    half = type(settings).from_dict({**settings.to_dict(), "steps": 4})
    for name, first_log, then_log in (
        ("a", tmp_path / "tb_a", None),
        ("b", None, tmp_path / "tb_b"),
    ):
        out = tmp_path / name
        train(kind, out, POINTS, half, model, progress=False, tensorboard=first_log)
        resumed = train(
            kind, out, POINTS, settings, model, progress=False, resume=True, tensorboard=then_log
        )
        assert_same_state(plain, state(resumed))
    histories = [read_history(tmp_path / name / "history.csv") for name in ("plain", "logged", "a")]
    for history in histories:
        del history["wall_time"]
    assert histories[0] == histories[1] == histories[2]


def test_a_resumed_log_shows_each_step_once(tmp_path):
    """Steps logged after the last checkpoint of an interrupted run are hidden on resume."""
    module = torch.nn.Linear(1, 1)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    log = TensorBoardLog(tmp_path / "tb", lambda n: torch.zeros(n, 2), torch.randn(50, 2))

    def run_to(steps, stop_at=None, resume=False):
        def step(t):
            if t == stop_at:
                raise KeyboardInterrupt
            return {"loss": float(t) + (0.5 if resume else 0.0)}

        fit(
            run,
            kind="vae",
            module=module,
            optims={"adam": torch.optim.Adam(module.parameters())},
            sampler=BatchSampler(4, 2, 0),
            step_fn=step,
            columns=["loss"],
            steps=steps,
            checkpoint_every=3,
            resume=resume,
            progress=False,
            tensorboard=log,
        )

    with pytest.raises(KeyboardInterrupt):
        run_to(10, stop_at=6)  # logged steps 1..5, checkpointed at 3
    run_to(8, resume=True)
    scalars, images = read_log(tmp_path / "tb")
    # Steps 1-3 from the first start, 4-8 (the values of the second) from the resumed one.
    assert [(e.step, e.value) for e in scalars["train/loss"]] == [
        (1, 1.0),
        (2, 2.0),
        (3, 3.0),
        (4, 4.5),
        (5, 5.5),
        (6, 6.5),
        (7, 7.5),
        (8, 8.5),
    ]
    assert [e.step for e in images["samples"]] == [3, 6, 8]


def test_compare_logs_each_run_in_its_own_folder(tmp_path):
    code = main(
        [
            "compare",
            "--num-points",
            "300",
            "--seeds",
            "1",
            "--steps",
            "3",
            "--vae-steps",
            "3",
            "--num-samples",
            "200",
            "--out",
            str(tmp_path / "c"),
            "--no-progress",
            "--tensorboard",
            str(tmp_path / "tb"),
        ]
    )
    assert code == 0
    runs = sorted(
        p.parent.relative_to(tmp_path / "c") for p in (tmp_path / "c").rglob("config.json")
    )
    assert len(runs) == 4
    logs = sorted(
        p.parent.relative_to(tmp_path / "tb") for p in (tmp_path / "tb").rglob("events.*")
    )
    assert logs == runs
    for run in runs:
        config, _ = load_run(tmp_path / "c" / run)
        columns = ["loss"] if config["kind"] == "vae" else ["disc_loss", "gen_loss", "penalty"]
        assert_log_is_the_history(tmp_path / "tb" / run, tmp_path / "c" / run, columns)


def test_without_the_package_tensorboard_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    # None in sys.modules makes `import` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        train("vae", tmp_path / "py", POINTS, VAETrainConfig(steps=2), tensorboard=tmp_path / "tb")
    for command in (["train", "vae"], ["train", "gan"], ["compare"]):
        code = main(
            [
                *command,
                "--out",
                str(tmp_path / "r"),
                "--tensorboard",
                str(tmp_path / "tb"),
                "--no-progress",
            ]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "pip install tensorboard" in err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
    assert issubclass(TensorBoardUnavailable, ImportError)
