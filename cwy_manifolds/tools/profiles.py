r"""Performance profiles (Dolan and Moré) and time-to-tolerance tables over a suite.

Note [performance profiles]
~~~~~~~~~~~~~~~~~~~~~~~~~~~
For solvers :math:`s` (here: (method, optimizer) pairs) and problems :math:`q`, let
:math:`t_{q,s}` be the cost of :math:`s` on :math:`q` to convergence (steps, or CPU
seconds; the median over seeds) and :math:`+\infty` if it did not converge. The
performance ratio is :math:`r_{q,s} = t_{q,s} / \min_{s'} t_{q,s'}` and the profile of
:math:`s` is the fraction of problems it solves within a factor :math:`\tau` of the best,

.. math::

    \rho_s(\tau) = \frac{|\{q : r_{q,s} \le \tau\}|}{|Q_s|}, \qquad \tau \ge 1,

where :math:`Q_s` is the set of problems :math:`s` ran on (a method that stands for square
matrices only is not counted as failing on thin problems; the legend says on how many it
ran). :math:`\rho_s(1)` is the fraction of problems on which :math:`s` was the fastest,
:math:`\rho_s(\infty)` the fraction it solved at all. Dolan and Moré (2002),
*Benchmarking optimization software with performance profiles*, Math. Program. 91.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["performance_profile", "profile_summary", "ratios"]

Costs = Mapping[str, Mapping[str, float]]


def ratios(costs: Costs) -> dict[str, dict[str, float]]:
    """Return the performance ratios :math:`r_{q,s}` from ``costs[solver][problem]``.

    Problems that no solver solved give ratio ``inf`` for every solver that ran on them.

    Examples
    --------
    >>> ratios({"a": {"p": 2.0, "q": 1.0}, "b": {"p": 4.0, "q": float("inf")}})
    {'a': {'p': 1.0, 'q': 1.0}, 'b': {'p': 2.0, 'q': inf}}
    """
    problems = list(dict.fromkeys(q for per in costs.values() for q in per))
    best = {
        q: min((per[q] for per in costs.values() if q in per), default=math.inf) for q in problems
    }

    def ratio(c: float, low: float) -> float:
        if math.isfinite(c) and low > 0:
            return c / low
        return 1.0 if c == 0 else math.inf

    return {s: {q: ratio(c, best[q]) for q, c in per.items()} for s, per in costs.items()}


def performance_profile(
    costs: Costs, taus: Sequence[float] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    r"""Return the profiles :math:`\rho_s(\tau)` (Note [performance profiles]).

    Parameters
    ----------
    costs : mapping
        ``costs[solver][problem]``: cost to convergence, ``inf`` if not converged; a
        problem missing for a solver means it did not run there.
    taus : sequence of float, optional
        Where to evaluate; default: every distinct finite ratio, from 1.

    Returns
    -------
    taus : numpy.ndarray
    profiles : dict
        Solver -> :math:`\rho_s` at ``taus``.

    Examples
    --------
    >>> taus, rho = performance_profile({"a": {"p": 2.0, "q": 1.0}, "b": {"p": 4.0, "q": 3.0}})
    >>> taus.tolist(), rho["a"].tolist(), rho["b"].tolist()
    ([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [0.0, 0.5, 1.0])
    """
    r = ratios(costs)
    if taus is None:
        finite = {v for per in r.values() for v in per.values() if math.isfinite(v)}
        taus = sorted(finite | {1.0})
    grid = np.asarray(taus, dtype=float)
    profiles = {}
    for s, per in r.items():
        values = np.asarray(list(per.values()), dtype=float)
        profiles[s] = (
            (values[None, :] <= grid[:, None]).mean(axis=1) if values.size else np.zeros_like(grid)
        )
    return grid, profiles


def profile_summary(costs: Costs) -> list[dict[str, object]]:
    """Per solver: problems run, fraction solved, fraction fastest, fraction within 2x."""
    r = ratios(costs)
    rows = []
    for s, per in r.items():
        values = list(per.values())
        count = len(values) or 1
        rows.append(
            {
                "solver": s,
                "problems": len(values),
                "solved": sum(math.isfinite(v) for v in values) / count,
                "fastest": sum(v <= 1.0 for v in values) / count,
                "within_2x": sum(v <= 2.0 for v in values) / count,
            }
        )
    return rows
