"""Tools at the edge of the package: the comparison harness, its plots, the benchmark.

``cwy_manifolds.tools.compare`` (:func:`~cwy_manifolds.compare`) and
``cwy_manifolds.tools.results``, ``cwy_manifolds.tools.plots``,
:mod:`~cwy_manifolds.tools.bench`. Nothing in the library below imports them.
"""
