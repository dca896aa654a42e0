"""Settings declared once: config fields to flags and back, for every config class."""

import argparse
import dataclasses
import shlex
import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pyro_vigen.cli import build_parser
from pyro_vigen.config import Config
from pyro_vigen.data import DataConfig
from pyro_vigen.flags import add_flags, config_from_args, options, setting, to_argv
from pyro_vigen.infer import GANTrainConfig, VAETrainConfig
from pyro_vigen.models import GANConfig, VAEConfig

# Each config class, with the command whose parser reads its flags.
COMMANDS = {
    DataConfig: "vae",
    VAEConfig: "vae",
    VAETrainConfig: "vae",
    GANConfig: "gan",
    GANTrainConfig: "gan",
}

# Paths and names as users write them: spaces, quotes, a leading dash, nothing at all.
odd_text = st.one_of(
    st.sampled_from(["", " ", "my data.csv", "it's", '"q"', "-x", "--out", "a=b", "~/d $HOME"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
)


def values(option):
    """Values of one flagged field, most of them valid."""
    if option.choices:
        strategy = st.sampled_from(option.choices)
    elif option.kind is bool:
        strategy = st.booleans()
    elif option.kind is str:
        strategy = odd_text
    else:
        items = {
            int: st.integers(1, 10**6),
            # Fractions and learning rates alike; repr-exact round trips included.
            float: st.floats(1e-9, 0.99),
        }[option.kind]
        strategy = st.lists(items, max_size=4).map(tuple) if option.is_tuple else items
    return st.one_of(st.none(), strategy) if option.default is None else strategy


@st.composite
def configs(draw, cls):
    kwargs = draw(st.fixed_dictionaries({o.field: values(o) for o in options(cls)}))
    # argparse reads "--" as the end of the options (to_argv refuses it, as tested below).
    assume("--" not in kwargs.values())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # prior data with gen_steps=1 warns
            return cls(**kwargs)
    except ValueError:
        assume(False)


def parse(cls, argv):
    """The ``cls`` config that the real command line reads from ``argv``."""
    args = build_parser().parse_args(["train", COMMANDS[cls], "--out", "o", *argv])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return config_from_args(cls, args)


@pytest.mark.parametrize("cls", COMMANDS, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_flags_read_back_every_config(cls, data):
    config = data.draw(configs(cls))
    printed = shlex.join(to_argv(config))
    assert parse(cls, shlex.split(printed)) == config, printed


@pytest.mark.parametrize("cls", COMMANDS, ids=lambda c: c.__name__)
def test_no_flag_is_the_default_config(cls):
    assert parse(cls, []) == cls()
    # Values the config resolves from None are spelled out: gen_steps=1 of the mixed prior.
    assert to_argv(cls()) == (["--gen-steps", "1"] if cls is GANTrainConfig else [])


def test_spellings_of_tuples_switches_and_dashes():
    assert to_argv(VAEConfig(hidden=())) == ["--hidden", ""]
    assert to_argv(GANConfig(gen_hidden=(), disc_hidden=(8, 4))) == [
        "--gen-hidden",
        "",
        "--disc-hidden",
        "8,4",
    ]
    assert to_argv(GANTrainConfig(jit=False, betas_gen=(0.0, 0.9))) == [
        "--gen-steps",
        "1",
        "--betas-gen",
        "0.0,0.9",
        "--no-jit",
    ]
    assert to_argv(DataConfig(name="-odd.csv", seed=-3)) == ["--data=-odd.csv", "--data-seed=-3"]


def test_a_none_that_no_flag_spells_is_refused():
    @dataclasses.dataclass
    class Tiny(Config):
        width: int | None = setting(4, help="a width")

    parser = argparse.ArgumentParser()
    add_flags(parser, Tiny)
    assert config_from_args(Tiny, parser.parse_args(["--width", "7"])) == Tiny(width=7)
    with pytest.raises(ValueError, match=r"Tiny\.width is None, which no flag spells"):
        to_argv(Tiny(width=None))
    with pytest.raises(ValueError, match="DataConfig.name is '--', which no flag spells"):
        to_argv(DataConfig(name="--"))


def test_help_comes_from_the_config_fields():
    def subcommand(parser, name):
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return action.choices[name]

    gan = subcommand(subcommand(build_parser(), "train"), "gan")
    (action,) = [a for a in gan._actions if "--gen-steps" in a.option_strings]
    (option,) = [o for o in options(GANTrainConfig) if o.field == "gen_steps"]
    assert action.help == option.help and action.default is None
