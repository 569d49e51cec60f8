"""Sphinx configuration of the cwy_manifolds documentation (build: `make docs`)."""

import os
import sys
import warnings
from pathlib import Path

import cwy_manifolds

project = "cwy_manifolds"
author = "The cwy_manifolds developers"
copyright = "2026, The cwy_manifolds developers"
release = cwy_manifolds.__version__
version = release

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

extensions = [
    "cwy_docs",  # the Notes page, links to it, and a check of rendered links
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # a copy of MathJax 3 in _static/mathjax instead of the CDN: math renders offline
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_intersphinx", "auto_examples/*.ipynb", "auto_examples/*.py"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# -- API reference ----------------------------------------------------------------------
autosummary_generate = True
templates_path = ["_templates"]
autodoc_default_options = {"members": True}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_preprocess_types = False
# Off: filling in a missing field type from the class annotations makes napoleon (Sphinx 9)
# merge napoleon_type_aliases into autodoc_type_aliases in place, after which signatures
# that nest `Tensor` (tuple[Tensor, Tensor], Callable[[Tensor], Tensor]) or `Path` render
# as "TypeAliasForwardRef('torch.Tensor')", depending on the order documents are read.
napoleon_attr_annotations = False
napoleon_type_aliases = {
    "Tensor": "torch.Tensor",
    "ManifoldTensor": "geoopt.ManifoldTensor",
    "Manifold": "geoopt.manifolds.Manifold",
    "Comparison": "cwy_manifolds.tools.results.Comparison",
    "Problem": "cwy_manifolds.problems.Problem",
    "Path": "pathlib.Path",
}

# -- cross-references -------------------------------------------------------------------
# Each project falls back on a small local inventory first (docs/_intersphinx, written by
# make_inventories.py), so the build needs no internet and its links are stable.
intersphinx_mapping = {
    name: (url, (f"_intersphinx/{name}.inv", None))
    for name, url in {
        "python": "https://docs.python.org/3/",
        "torch": "https://docs.pytorch.org/docs/stable/",
        "geoopt": "https://geoopt.readthedocs.io/en/latest/",
        "numpy": "https://numpy.org/doc/stable/",
        "scipy": "https://docs.scipy.org/doc/scipy/",
    }.items()
}
intersphinx_timeout = 5
nitpicky = True
nitpick_ignore_regex = [
    # names in signatures that are not documented objects anywhere
    ("py:class", r"(optional|default .*|array_like|scalar|callable)"),
    ("py:class", r"torch\.(nn\.modules\.module\.)?Module.*"),
    ("py:class", r"geoopt\.tensor\.ManifoldTensor|geoopt\.manifolds\.base\.Manifold"),
    ("py:class", r"argparse\._SubParsersAction"),
    ("py:class", r"contextlib\.AbstractContextManager"),  # not in the local inventory
    ("py:class", r"(np|numpy)\.(floating|integer|random\.Generator)"),
    ("py:class", r"_?[A-Z]{1,2}|T_co|Ellipsis"),
    # numpydoc choice sets and collection words in docstring types
    ("py:class", r"\{.*|.*\}|iterable|sequence|mapping|list of .*"),
]

# -- gallery ----------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    # no "<matplotlib.legend.Legend object at 0x...>" when a block ends with ax.legend()
    # or torch.manual_seed(0)
    "ignore_repr_types": r"matplotlib\.(text|axes|legend)|torch\._C\.Generator",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "plot_gallery": os.environ.get("CWY_DOCS_GALLERY", "True"),
}
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")

# -- HTML -------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"cwy_manifolds {release}"
html_static_path = ["_static"]
