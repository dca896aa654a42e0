import contextlib

import pyro
import pytest
import torch
from pyro.infer.util import is_validation_enabled

from pyro_vigen.infer import BatchSampler, fit
from pyro_vigen.infer.loop import check_lr_decay, linear_decay
from pyro_vigen.storage import RunDir


def record_validation(tmp_path, steps: int, resume: bool) -> list[bool]:
    module = torch.nn.Linear(1, 1)
    optim = torch.optim.Adam(module.parameters())
    seen = []

    def step(_):
        seen.append(is_validation_enabled())
        return {"loss": 0.0}

    run = RunDir(tmp_path)
    run.path.mkdir(exist_ok=True)
    fit(run, kind="vae", module=module, optims={"adam": optim}, sampler=BatchSampler(4, 2, 0),
        step_fn=step, columns=["loss"], steps=steps, checkpoint_every=2, resume=resume,
        progress=False)  # fmt: skip
    return seen


@pytest.mark.parametrize("enabled", [True, False])
def test_validation_checks_the_first_step_of_each_start_and_is_restored(tmp_path, enabled):
    with pyro.validation_enabled(enabled):
        assert record_validation(tmp_path, steps=4, resume=False) == [enabled, False, False, False]
        assert is_validation_enabled() == enabled
        # A resumed run checks its own first step again.
        assert record_validation(tmp_path, steps=6, resume=True) == [enabled, False]
        assert is_validation_enabled() == enabled


def record_lrs(tmp_path, steps, resume=False, stop_at=None):
    """The learning rate each step of fit saw, under a linear decay over the last half."""
    module = torch.nn.Linear(1, 1)
    optims = {
        "a": torch.optim.Adam(module.parameters(), lr=0.5),
        "b": torch.optim.SGD(module.parameters(), lr=2.0),
    }
    seen = []

    def step(t):
        if t == stop_at:
            raise KeyboardInterrupt
        # Rounded: the rates are products of floats; the schedule's values are exact tenths.
        seen.append((t, *(round(o.param_groups[0]["lr"], 12) for o in optims.values())))
        return {"loss": 0.0}

    run = RunDir(tmp_path)
    run.path.mkdir(exist_ok=True)
    with pytest.raises(KeyboardInterrupt) if stop_at else contextlib.nullcontext():
        fit(run, kind="vae", module=module, optims=optims, sampler=BatchSampler(4, 2, 0),
            step_fn=step, columns=["loss"], steps=steps, checkpoint_every=3, resume=resume,
            progress=False, lr_factor=linear_decay(steps, 0.5))  # fmt: skip
    return seen


def test_linear_decay_follows_the_hand_written_schedule_and_survives_a_resume(tmp_path):
    # 10 steps, the last half decaying: factor min(1, (11 - t) / 5) at step t.
    factors = [1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2]
    expected = [(t, round(0.5 * f, 12), round(2.0 * f, 12)) for t, f in enumerate(factors, 1)]
    seen = record_lrs(tmp_path / "full", 10)
    assert [t for t, *_ in seen] == list(range(1, 11))
    assert seen == expected
    # Interrupted at step 8 (checkpoint at 6, whose optimisers hold decayed rates), resumed.
    first = record_lrs(tmp_path / "cut", 10, stop_at=8)
    resumed = record_lrs(tmp_path / "cut", 10, resume=True)
    assert first == expected[:7] and resumed == expected[6:]


@pytest.mark.parametrize("fraction, none", [(0.0, True), (0.01, True), (1.0, False)])
def test_linear_decay_of_nothing_is_constant(fraction, none):
    factor = linear_decay(10, fraction)
    assert (factor is None) == none
    if factor is not None:  # all ten steps decay: 1.0, 0.9, ..., 0.1
        assert [factor(t) for t in range(1, 11)] == pytest.approx([1 - 0.1 * i for i in range(10)])


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_bad_lr_decay_is_refused(bad):
    with pytest.raises(ValueError, match="lr_decay"):
        check_lr_decay(bad)
