import pyro
import pytest
import torch
from pyro.infer.util import is_validation_enabled

from pyro_vigen.infer import BatchSampler, RunDir, fit


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
