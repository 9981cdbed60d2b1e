"""Sphinx configuration of the glompo_like documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors).
Only extensions that ship with Sphinx are used; the theme is furo (the ``docs`` extra).
"""

import os
import sys

# Document the source tree next to this folder, installed or not.
sys.path.insert(0, os.path.abspath(".."))

from glompo_like import __version__  # noqa: E402

project = "glompo_like"
author = "the glompo_like developers"
copyright = "the glompo_like developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build"]
templates_path: list[str] = []

# The docstrings are numpydoc-style ("Parameters" with dashed underlines).
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

html_theme = "furo"  # a maintained theme; code blocks scroll instead of cutting long lines
html_title = f"glompo_like {release}"
html_static_path: list[str] = []
