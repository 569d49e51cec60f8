"""Deprecated location of the speed benchmark: use :mod:`cwy_manifolds.tools.bench`.

Kept for one release; importing it warns. ``run`` and ``add_arguments`` moved to
:mod:`cwy_manifolds.cli.bench`.
"""

import warnings

from .cli.bench import add_arguments, run
from .tools.bench import FULL, METHODS, QUICK, benchmark, format_table

__all__ = ["FULL", "METHODS", "QUICK", "add_arguments", "benchmark", "format_table", "run"]

warnings.warn(
    "cwy_manifolds.bench is deprecated; use cwy_manifolds.tools.bench "
    "(and cwy_manifolds.cli.bench for run and add_arguments)",
    DeprecationWarning,
    stacklevel=2,
)
