"""Pyro names: unique per model, and the parameter names ``pyro.module`` would give.

``pyro.module(name, ...)`` registers parameters in Pyro's global param store under
``name``; a second model registered under the same name would have its optimiser
update the first model's tensors. Each model therefore gets a name of its own.
"""

from __future__ import annotations

import itertools

import pyro
from pyro.params.param_store import param_with_module_name
from torch import nn

_counter = itertools.count()


def unique_name(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


def register_parts(name: str, module: nn.Module, parts: tuple[str, ...]) -> None:
    """``pyro.param`` the trainable parameters of ``module``'s attributes ``parts``.

    Each is named as ``pyro.module(name, module)`` would name it (``<name>$$$part.…``),
    but only the parts a model or guide uses are registered: a param site costs a
    message through every handler on every step, and the other program registers the
    rest.
    """
    for part in parts:
        value = getattr(module, part)
        named = (
            value.named_parameters(prefix=part) if isinstance(value, nn.Module) else [(part, value)]
        )
        store = pyro.get_param_store()
        for param_name, param in named:
            if param.requires_grad:
                full = param_with_module_name(name, param_name)
                # A parameter replaced out of place (``layer.weight = nn.Parameter(...)``):
                # pyro.param would return the stale tensor the store still holds, and the
                # gradient would go there.
                if full in store and store[full] is not param:
                    store[full] = param
                pyro.param(full, param)
