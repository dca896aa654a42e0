"""A model family declared outside the library: registered, it trains, is diagnosed,
reported and compared through the library's own commands, with no edit to the library.

The family is a linear-Gaussian generator, x = W z + b + sigma * eps with z ~ N(0, I),
and an amortised linear Gaussian guide, trained by stock SVI with Pyro's Trace_ELBO. The
documentation's "Adding a model family" shows the same code.
"""

import dataclasses
import itertools
import json
import math
import shlex
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from torch import nn

from pyro_vigen.cli import build_parser, main, sections
from pyro_vigen.config import Config
from pyro_vigen.data import DataConfig
from pyro_vigen.flags import config_from_args, setting
from pyro_vigen.infer import Family, ModuleSVI, TrainingStep, get_family, load_run, register
from pyro_vigen.report import command_for, compare, configurations

# The family, as the documentation's "Adding a model family" shows it (between the markers).
# family-start
_names = itertools.count()


@dataclasses.dataclass
class LinearConfig(Config):
    data_shape: tuple[int, ...] | None = None  # set from the data
    latent_dim: int = setting(2, help="latent dimensions")


@dataclasses.dataclass
class LinearTrainConfig(Config):
    steps: int = setting(300, help="SVI steps")
    batch_size: int = setting(128, help="minibatch size")
    lr: float = setting(0.02, help="Adam learning rate")
    lr_decay: float = setting(0.0, help="share of the run over which the rate decays")
    seed: int = setting(0, help="random seed")
    checkpoint_every: int = setting(100, help="steps between checkpoints")
    num_saved_samples: int = setting(1000, help="samples saved at the end")
    device: str = setting("cpu", help="cpu or cuda")


class LinearGaussian(nn.Module):
    def __init__(self, config: LinearConfig) -> None:
        super().__init__()
        self.config = config
        self.name = f"linear{next(_names)}"  # its own names in Pyro's param store
        (width,) = config.data_shape
        self.decoder = nn.Linear(config.latent_dim, width)  # W and b
        self.log_sigma = nn.Parameter(torch.zeros(()))
        self.encoder = nn.Linear(width, 2 * config.latent_dim)

    def model(self, x):
        pyro.module(self.name, self)
        prior = dist.Normal(torch.zeros(self.config.latent_dim), 1.0).to_event(1)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", prior)
            noise = dist.Normal(self.decoder(z), self.log_sigma.exp()).to_event(1)
            pyro.sample("x", noise, obs=x)

    def guide(self, x):
        pyro.module(self.name, self)
        loc, log_scale = self.encoder(x).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    @torch.no_grad()
    def sample(self, num, generator=None):
        z = torch.randn(num, self.config.latent_dim, generator=generator)
        eps = torch.randn(num, *self.config.data_shape, generator=generator)
        return self.decoder(z) + self.log_sigma.exp() * eps


def linear_step(model, train, x, sampler):
    svi = ModuleSVI(
        model.model, model.guide, torch.optim.Adam(model.parameters(), lr=train.lr), Trace_ELBO()
    )

    def step(_):
        batch = x[sampler.next()]
        return {"loss": svi.step(batch) / len(batch)}

    return TrainingStep(step, {"svi": svi.optim}, ["loss"])


def linear_label(config):
    return f"linear-Gaussian, {config['model']['latent_dim']} latent dims"


LINEAR = register(
    Family(
        name="linear",
        help="train a linear-Gaussian model with stock SVI",
        model_config=LinearConfig,
        train_config=LinearTrainConfig,
        model=LinearGaussian,
        build_step=linear_step,
        label=linear_label,
    )
)
# family-end

DATA = ["--data", "ring8", "--num-points", "1000"]


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("family") / "linear"
    argv = ["train", "linear", *DATA, "--steps", "200", "--latent-dim", "1", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    return out


def test_the_cli_trains_the_registered_family(linear_run):
    for name in ("config.json", "checkpoint.pt", "history.csv", "samples.pt"):
        assert (linear_run / name).is_file(), name
    config, model = load_run(linear_run)
    assert config["kind"] == "linear" and config["model"] == {"data_shape": [2], "latent_dim": 1}
    assert isinstance(model, LinearGaussian)
    losses = [
        float(line.split(",")[1]) for line in (linear_run / "history.csv").read_text().split()[1:]
    ]
    assert len(losses) == 200 and all(math.isfinite(v) for v in losses)
    # Trained: the ELBO per point improved from its start.
    assert sum(losses[-20:]) < sum(losses[:20])
    assert torch.load(linear_run / "samples.pt")["samples"].shape == (1000, 2)


def test_its_printed_command_reparses_to_the_same_config(linear_run):
    config, _ = load_run(linear_run)
    command = command_for(config, linear_run)
    assert command.startswith("pyro-vigen train linear ")
    args = build_parser().parse_args(shlex.split(command)[1:])
    for section, cls in sections(get_family("linear")).items():
        expected = cls.from_dict(config[section])
        if section == "model":  # the data sets data_shape; no flag for it
            expected = expected.replace(data_shape=None)
        assert config_from_args(cls, args) == expected


def test_diagnose_and_report_handle_the_family(linear_run, tmp_path):
    assert main(["diagnose", str(linear_run), "--num-samples", "1000", "--no-progress"]) == 0
    metrics = json.loads((linear_run / "metrics.json").read_text())
    for key in ("kl_forward", "kl_reverse", "hq_fraction", "mode_kl"):
        assert math.isfinite(metrics[key]), key
    assert metrics["num_modes"] == 8 and metrics["kl_method"].startswith("knn")
    assert (linear_run / "diagnostics.nc").is_file()
    report = tmp_path / "report.html"
    assert main(["report", str(linear_run), "--out", str(report), "--no-progress"]) == 0
    html = report.read_text()
    assert "linear-Gaussian, 1 latent dims" in html and "pyro-vigen train linear" in html


def test_compare_takes_the_family_among_its_configurations(tmp_path, monkeypatch):
    # The worker processes import this module, tests.test_families, to unpickle the family.
    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent))
    data = DataConfig("ring8", num_points=1000)
    configs = {"vae": configurations(data)["vae"], "linear": (LINEAR, {"steps": 100})}
    compare(data, 1, tmp_path, vae_steps=50, num_samples=500, progress=False, configs=configs)
    summary = json.loads((tmp_path / "summary.json").read_text())
    linear = summary["configurations"]["linear-Gaussian, 2 latent dims"]
    assert linear["kl_forward"]["n"] == 1 and math.isfinite(linear["kl_forward"]["mean"])
    assert "VAE" in summary["configurations"]
    assert json.loads((tmp_path / "linear/seed0/config.json").read_text())["train"]["steps"] == 100
    assert "linear-Gaussian, 2 latent dims" in (tmp_path / "report.html").read_text()
