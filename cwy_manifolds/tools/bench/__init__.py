"""The speed benchmark: CWY/T-CWY against the other ways to get orthogonal matrices.

``cwy_manifolds.tools.bench.run`` times (:func:`~cwy_manifolds.tools.bench.benchmark`),
``cwy_manifolds.tools.bench.methods`` holds the timed methods,
``cwy_manifolds.tools.bench.report`` formats and plots the results.
"""

from .report import format_table, plot, write_csv
from .run import FULL, METHODS, QUICK, benchmark

__all__ = ["FULL", "METHODS", "QUICK", "benchmark", "format_table", "plot", "write_csv"]
