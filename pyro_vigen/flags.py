"""Config fields as command-line flags, in both directions.

A config class declares each of its settings once, as a dataclass field made by
:func:`setting`: its default, its help, and where they differ from the field's, its
flag and choices. From that declaration :func:`add_flags` adds the fields to an
:mod:`argparse` parser, :func:`config_from_args` builds the config back from the parsed
arguments, and :func:`to_argv` turns a config into the arguments that build it again.
A field made without :func:`setting` has no flag (``data_shape``, which the data sets).

How a value is spelled follows the field's type:

- ``bool``: a switch that sets the value other than the default (``--gen-batch-norm``,
  ``--no-jit``);
- ``tuple``: comma-separated items, the empty string for ``()`` (``--hidden 64,64``,
  ``--hidden ''`` for a linear net);
- ``None``: the flag left out, so only a field whose default is ``None`` can be ``None``;
- ``int``, ``float`` and ``str``: as :class:`str` writes them.

Example::

    import argparse, shlex
    from pyro_vigen.flags import add_flags, config_from_args, to_argv
    from pyro_vigen.models import VAEConfig
    parser = argparse.ArgumentParser()
    add_flags(parser, VAEConfig)
    shlex.join(to_argv(VAEConfig(hidden=())))    # "--hidden ''"
    config_from_args(VAEConfig, parser.parse_args(["--hidden", ""])).hidden   # ()
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from typing import Any

__all__ = ["Option", "add_flags", "config_from_args", "options", "setting", "to_argv"]

# The key of a field's metadata that holds its :class:`Option`'s declared parts.
_KEY = "pyro_vigen.flag"


def setting(default: Any, *, help: str, flag: str | None = None, choices=None) -> Any:
    """A config field with a command-line flag.

    :param default: the field's default (immutable: tuples, not lists).
    :param str help: the flag's help. The CLI adds ``(default: X)``; a field whose
        default is ``None`` (the library picks the value later) says its default itself.
    :param str flag: the option, when not ``--`` and the field's name with dashes
        (``"--data"`` for ``DataConfig.name``; ``"--no-jit"`` for ``jit``, a switch).
    :param choices: the values allowed, where the parser should list them.
    :returns: a :func:`dataclasses.field`.
    """
    declared = {"help": help, "flag": flag, "choices": None if choices is None else tuple(choices)}
    return dataclasses.field(default=default, metadata={_KEY: declared})


@dataclasses.dataclass(frozen=True)
class Option:
    """One config field's flag, as :func:`options` resolves it.

    :ivar str field: the field's name.
    :ivar str flag: the option, ``--num-points``.
    :ivar str dest: where :mod:`argparse` puts the value, unique across config classes
        (``DataConfig.seed`` and ``VAETrainConfig.seed`` share a parser).
    :ivar str help: the help text.
    :ivar tuple choices: the values allowed, or ``None``.
    :ivar default: the field's default.
    :ivar type kind: ``bool``, ``int``, ``float`` or ``str``; a tuple's item type.
    :ivar bool is_tuple: the field holds a tuple of ``kind``.
    """

    field: str
    flag: str
    dest: str
    help: str
    choices: tuple | None
    default: Any
    kind: type
    is_tuple: bool


@functools.cache
def options(cls: type) -> tuple[Option, ...]:
    """The flags of a config class's fields made by :func:`setting`, in field order."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        declared = f.metadata.get(_KEY)
        if declared is None:
            continue
        kind, is_tuple = _spelling(hints[f.name])
        found.append(
            Option(
                field=f.name,
                flag=declared["flag"] or "--" + f.name.replace("_", "-"),
                dest=f"{cls.__name__}.{f.name}",
                help=declared["help"],
                choices=declared["choices"],
                default=f.default,
                kind=kind,
                is_tuple=is_tuple,
            )
        )
    return tuple(found)


def _spelling(hint: Any) -> tuple[type, bool]:
    """``(kind, is_tuple)`` of a field's type: ``tuple[int, ...] | None`` is ``(int, True)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True
    return hint, False


_ITEMS = {int: "integers", float: "numbers"}


def _tuple_of(kind: type):
    """The argparse ``type`` of a tuple field: ``"128,128"`` -> ``(128, 128)``, ``""`` -> ``()``."""

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {_ITEMS.get(kind, 'values')}, got {text!r}"
            ) from None

    return parse


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """Add a flag for each field of ``cls`` made by :func:`setting` to ``parser`` (or a group)."""
    for o in options(cls):
        if o.kind is bool:
            action = "store_false" if o.default else "store_true"
            parser.add_argument(o.flag, dest=o.dest, action=action, help=o.help)
            continue
        parser.add_argument(
            o.flag,
            dest=o.dest,
            type=_tuple_of(o.kind) if o.is_tuple else o.kind,
            default=o.default,
            choices=o.choices,
            # The name argparse would derive from the flag, not from the dotted dest;
            # with choices, argparse lists them instead.
            metavar=None if o.choices else o.flag.lstrip("-").upper().replace("-", "_"),
            help=o.help,
        )


def config_from_args(cls: type, args: argparse.Namespace):
    """The ``cls`` config the parsed ``args`` describe (its flagless fields at their defaults)."""
    return cls(**{o.field: getattr(args, o.dest) for o in options(cls)})


def to_argv(config) -> list[str]:
    """The arguments that build ``config`` again: a flag for each field not at its default.

    Join them with :func:`shlex.join` to print them.

    :raises ValueError: a value no flag spells: ``None`` where the default is not, or
        ``"--"``, which :mod:`argparse` reads as the end of the options.
    """
    argv: list[str] = []
    for o in options(type(config)):
        value = getattr(config, o.field)
        if value == o.default:
            continue
        if o.kind is bool:
            argv.append(o.flag)
            continue
        text = None if value is None else ",".join(map(str, value)) if o.is_tuple else str(value)
        # argparse drops a "--" even as "--flag=--": it ends the options.
        if text in (None, "--"):
            raise ValueError(
                f"{type(config).__name__}.{o.field} is {value!r}, which no flag spells "
                f"(its default is {o.default!r})"
            )
        # "--data -x" would read -x as an option; "--data=-x" is the value.
        argv += [f"{o.flag}={text}"] if text.startswith("-") else [o.flag, text]
    return argv
