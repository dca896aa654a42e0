"""The thread policy: one place sets torch's intra-op threads, and puts the caller's back."""

import pytest
import torch

import pyro_vigen.infer.family as family
from pyro_vigen.data import DataConfig
from pyro_vigen.infer import GANTrainConfig, train
from pyro_vigen.models import GANConfig
from pyro_vigen.threads import DEFAULT_THREADS, resolve_threads, torch_threads


@pytest.fixture
def caller_threads():
    """The caller runs on 2 threads (not the default), and gets its own setting back."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def test_default_is_one_thread():
    assert DEFAULT_THREADS == 1
    assert resolve_threads(None) == 1
    assert resolve_threads(3) == 3


def test_torch_threads_sets_and_restores(caller_threads):
    with torch_threads() as n:
        assert n == torch.get_num_threads() == DEFAULT_THREADS
    assert torch.get_num_threads() == caller_threads
    with torch_threads(1):
        with torch_threads(3):
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == caller_threads


def test_torch_threads_restores_after_an_error(caller_threads):
    with pytest.raises(RuntimeError, match="boom"), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == caller_threads


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused_before_anything_changes(caller_threads, bad):
    with pytest.raises(ValueError, match="threads must be (a )?positive"), torch_threads(bad):
        pytest.fail("the block must not run")
    assert torch.get_num_threads() == caller_threads


@pytest.mark.parametrize("threads, inside", [(1, 1), (None, DEFAULT_THREADS), (3, 3)])
def test_train_gan_trains_on_its_threads_and_restores_the_callers(
    tmp_path, monkeypatch, caller_threads, threads, inside
):
    seen = []

    def fit(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_fit(*args, **kwargs)

    real_fit = family.fit
    monkeypatch.setattr(family, "fit", fit)
    train(
        "gan",
        tmp_path / "r",
        DataConfig("ring8", num_points=300),
        GANTrainConfig(steps=3, batch_size=64, num_saved_samples=10),
        GANConfig(hidden=(8,)),
        progress=False,
        threads=threads,
    )
    assert seen == [inside]
    assert torch.get_num_threads() == caller_threads
    # A runtime setting: not part of the run's settings.
    assert "threads" not in (tmp_path / "r" / "config.json").read_text()


def test_train_gan_refuses_bad_threads_before_writing_anything(tmp_path, caller_threads):
    with pytest.raises(ValueError, match="threads must be positive, got 0"):
        train("gan", tmp_path / "r", DataConfig("ring8"), GANTrainConfig(steps=3), threads=0)
    assert not (tmp_path / "r").exists()
    assert torch.get_num_threads() == caller_threads
