"""Sphinx configuration of the romancore user documentation.

Only extensions that ship with Sphinx are used, plus the local ``romancore_params``
extension (``docs/_ext``) that renders parameter and DQ tables from the code.
No network access is needed: intersphinx is loaded but has no mappings.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))          # the repository root: import romancore
sys.path.insert(0, os.path.join(HERE, "_ext"))      # local extensions

import romancore  # noqa: E402

project = "romancore"
author = "the romancore developers"
copyright = "the romancore developers"  # noqa: A001 - Sphinx configuration name
release = romancore.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "romancore_params",
]

# No mappings: the build must work offline.
intersphinx_mapping = {}

exclude_patterns = ["_build", "performance.md"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

html_theme = "alabaster"
html_static_path = []
html_title = f"romancore {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_inherit_docstrings = False

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Section headings used in romancore docstrings besides the standard numpydoc ones.
napoleon_custom_sections = [("Class attributes", "params_style")]

# Parameter defaults and rules quote literal values: keep straight quotes.
smartquotes = False

nitpicky = False
suppress_warnings = []
