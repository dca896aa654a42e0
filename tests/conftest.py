import subprocess

import pyro
import pytest
import torch

from pyro_vigen.cli import main

# The nets in tests are tiny: one thread is faster than two fighting over the cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_pyro():
    """Every test starts from an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture
def cli(capsys):
    """Run the command line in this process (fast); returns what a shell would see."""

    def call(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's own exits
            code = e.code
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return call
