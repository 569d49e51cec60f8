"""Deprecated location of the comparison plots: use :mod:`cwy_manifolds.tools.plots`.

Kept for one release; importing it warns.
"""

import warnings

from .tools.plots import plot_comparison

__all__ = ["plot_comparison"]

warnings.warn(
    "cwy_manifolds.plots is deprecated; use cwy_manifolds.tools.plots",
    DeprecationWarning,
    stacklevel=2,
)
