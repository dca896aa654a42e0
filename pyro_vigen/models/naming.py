"""Unique Pyro names, so that two models in one process never share parameters.

``pyro.module(name, ...)`` registers parameters in Pyro's global param store under
``name``; a second model registered under the same name would have its optimiser
update the first model's tensors. Each model therefore gets a name of its own, and
checkpoints store optimiser state under parameter names without that prefix.
"""

from __future__ import annotations

import itertools

from pyro.params.param_store import param_with_module_name

_counter = itertools.count()


def unique_name(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


def strip_prefix(state: dict, name: str) -> dict:
    """Optimiser state keyed by full Pyro param names -> keyed by local names."""
    head = param_with_module_name(name, "")
    return {k[len(head) :] if k.startswith(head) else k: v for k, v in state.items()}


def add_prefix(state: dict, name: str) -> dict:
    """Inverse of :func:`strip_prefix`, for a model registered under ``name``."""
    return {param_with_module_name(name, k): v for k, v in state.items()}
