import pyro
import pytest
import torch

# The nets in tests are tiny: one thread is faster than two fighting over the cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_pyro():
    """Every test starts from an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
