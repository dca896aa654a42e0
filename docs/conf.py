"""Sphinx configuration of the pyro_vigen documentation.

The build never needs the network: intersphinx links to Pyro, PyTorch, ArviZ and
Python are added only when ``PYRO_VIGEN_DOCS_ONLINE=1`` is set (a failed inventory
fetch would be a warning, and ``make docs`` treats warnings as errors).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # pyro_vigen itself (also installed editable in .venv)
sys.path.insert(0, str(HERE / "_ext"))  # local extensions

import pyro_vigen  # noqa: E402

project = "pyro_vigen"
author = "the pyro_vigen authors"
copyright = "2026, the pyro_vigen authors"
version = release = pyro_vigen.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "vigen_docs",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "alabaster"
html_theme_options = {
    "description": "The VAE and the GAN in one variational-inference frame, in Pyro.",
    "fixed_sidebar": True,
}

nitpicky = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

# Offline by default: no inventories are fetched unless asked for.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if os.environ.get("PYRO_VIGEN_DOCS_ONLINE") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "pyro": ("https://docs.pyro.ai/en/stable/", None),
        "torch": ("https://pytorch.org/docs/stable/", None),
        "arviz": ("https://python.arviz.org/en/stable/", None),
    }
