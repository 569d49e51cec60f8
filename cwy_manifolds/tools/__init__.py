"""Tools at the edge of the package: the comparison harness, its plots, the benchmark.

The harness, one concern per module: ``compare`` (:func:`~cwy_manifolds.compare`, the
orchestration) over ``plan`` (what runs, refused up front), ``choices`` (methods,
optimizers, starts), ``execute`` (learning-rate search and seeds), ``runner`` (one
torch/geoopt run), ``pymanopt_runs`` (pymanopt's solvers), ``stopping`` (the rules and
the clock); ``results`` and ``tables`` (what is reported), ``suite`` and ``profiles``
(suites and performance profiles), ``plots``, ``output`` (files written together) and
``progress``. :mod:`~cwy_manifolds.tools.bench` is the speed benchmark. Nothing in the
library below imports them.
"""
