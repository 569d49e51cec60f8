r"""Compare methods over a suite of problems: :func:`compare_suite`, :class:`SuiteComparison`.

Each problem gets its own :func:`~cwy_manifolds.compare` (same settings); the suite adds
performance profiles in steps and in CPU time (Note [performance profiles]) and a
time-to-tolerance table, one line per (method, optimizer) pair.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..problems import SUITES, Problem, Suite, make_suite
from .compare import DEFAULT_OPTIMIZERS, compare
from .plan import make_plan
from .profiles import performance_profile, profile_summary
from .results import Comparison, ConfigError, NothingToRunError, write_csv
from .tables import format_comparison

__all__ = ["SuiteComparison", "compare_suite"]

#: What a profile can measure: the summary column of the cost to convergence.
MEASURES = {"steps": "steps_to_tol", "cpu": "cpu_s_to_tol", "wall": "wall_s_to_tol"}


@dataclass
class SuiteComparison:
    """What :func:`compare_suite` returns: one comparison per problem.

    Attributes
    ----------
    name : str
        The suite's name (``"custom"`` for a list of problems).
    comparisons : list of cwy_manifolds.tools.results.Comparison
        In problem order; fewer than the problems when interrupted.
    interrupted : bool
        True when Ctrl-C stopped the suite.
    notes : list of str
        Problems skipped because none of the methods asked for applies to them.
    """

    name: str
    comparisons: list[Comparison] = field(default_factory=list)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    def table(self) -> list[dict[str, object]]:
        """Return the summary rows of every problem (the columns of ``Comparison.table``)."""
        return [row for result in self.comparisons for row in result.table()]

    def costs(self, measure: str = "steps") -> dict[str, dict[str, float]]:
        """``costs[pair][problem]``: median cost to convergence (inf: not converged)."""
        column = MEASURES[measure]
        costs: dict[str, dict[str, float]] = {}
        for row in self.table():
            value = row[column]
            pair = f"{row['method']}/{row['optimizer']}"
            costs.setdefault(pair, {})[str(row["problem"])] = (
                math.inf if value is None else float(value)
            )
        return costs

    def profile(
        self, measure: str = "steps", taus: Sequence[float] | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return the performance profiles in ``measure`` (``"steps"``, ``"cpu"``, ``"wall"``)."""
        return performance_profile(self.costs(measure), taus)

    def format_profiles(self) -> str:
        """Time-to-tolerance table (CPU s and steps) and the profile summary, as text."""
        problems = [r.problem.name for r in self.comparisons]
        steps, cpu = self.costs("steps"), self.costs("cpu")
        width = max([16, *(len(p) + 2 for p in problems)])
        first = max([32, *(len(pair) + 2 for pair in steps)])  # labels are never cut
        head = f"{'method/optimizer':<{first}}" + "".join(f"{p:>{width}}" for p in problems)
        lines = ["CPU seconds (steps) to tolerance, median over seeds; - : not converged", head]
        lines.append("-" * len(head))
        for pair in steps:
            cells = []
            for p in problems:
                if p not in steps[pair]:
                    cells.append(f"{'':>{width}}")
                elif math.isinf(cpu[pair][p]):
                    cells.append(f"{'-':>{width}}")
                else:
                    cells.append(f"{f'{cpu[pair][p]:.3f} ({steps[pair][p]:g})':>{width}}")
            lines.append(f"{pair:<{first}}" + "".join(cells))
        lines += ["", "performance profiles (fraction of the problems each ran on):"]
        head = f"{'method/optimizer':<{first}}{'problems':>9}{'solved':>8}"
        head += f"{'fastest (steps)':>17}{'fastest (CPU)':>15}{'within 2x CPU':>15}"
        lines += [head, "-" * len(head)]
        by_time = {row["solver"]: row for row in profile_summary(cpu)}
        for row in profile_summary(steps):
            t = by_time[row["solver"]]
            lines.append(
                f"{row['solver']:<{first}}{row['problems']:>9}{row['solved']:>8.2f}"
                f"{row['fastest']:>17.2f}{t['fastest']:>15.2f}{t['within_2x']:>15.2f}"
            )
        return "\n".join(lines)

    def format(self) -> str:
        """Every problem's table, then the profiles."""
        parts = [format_comparison(result) for result in self.comparisons]
        if self.notes:
            parts.append("\n".join(f"note: {n}" for n in self.notes))
        if self.interrupted:
            parts.append("interrupted: only the problems and pairs that finished are shown.")
        if self.comparisons:
            parts.append(self.format_profiles())
        return ("\n\n" + "=" * 100 + "\n\n").join(parts)

    def to_csv(self, path: str | Path) -> Path:
        """Write the summary rows of every problem as CSV."""
        return write_csv(path, self.table())

    def to_json(self, path: str | Path) -> Path:
        """Write every comparison and the profiles as JSON."""
        data: dict[str, Any] = {"suite": self.name, "interrupted": self.interrupted}
        data["notes"] = self.notes
        data["comparisons"] = [r.to_dict() for r in self.comparisons]
        for measure in ("steps", "cpu"):
            taus, rho = self.profile(measure)
            data[f"profile_{measure}"] = {
                "taus": taus.tolist(),
                "profiles": {k: v.tolist() for k, v in rho.items()},
            }
        Path(path).write_text(json.dumps(data, indent=1, default=str))
        return Path(path)


def compare_suite(
    problems: str | Suite | Sequence[Problem], *, seed: int = 0, **options: Any
) -> SuiteComparison:
    """Run :func:`~cwy_manifolds.compare` on every problem of a suite.

    Parameters
    ----------
    problems : str, Suite or sequence of Problem
        A key of :data:`~cwy_manifolds.problems.SUITES`, a
        :class:`~cwy_manifolds.problems.Suite`, or problems.
    seed : int, default 0
        Seed of the problem instances (suites) and of the starts.
    **options
        Passed to :func:`~cwy_manifolds.compare` (methods, optimizers, seeds, ...);
        ``skip_inapplicable`` defaults to True: a method that cannot stand for a problem's
        matrices is skipped there with a note.

    Returns
    -------
    SuiteComparison
        Stopped early, with ``interrupted=True``, by Ctrl-C.

    Examples
    --------
    >>> from cwy_manifolds.problems import PCA, Brockett
    >>> from cwy_manifolds.tools.suite import compare_suite
    >>> suite = compare_suite([PCA.random(8, 2), Brockett.random(6, 2)], methods=["tcwy", "qr"],
    ...                       optimizers="radam", references=[], lr_grid=[0.1, 0.3], threads=1)
    >>> sorted(suite.costs("steps"))
    ['qr/radam', 'tcwy/radam']
    """
    if isinstance(problems, str):
        if problems not in SUITES:
            raise ConfigError(f"suite must be one of {', '.join(SUITES)}; got {problems!r}")
        name, built = problems, make_suite(problems, seed)
    elif isinstance(problems, Suite):
        name, built = problems.name, problems.problems(seed)
    else:
        name, built = "custom", list(problems)
        if not built or not all(isinstance(p, Problem) for p in built):
            raise ConfigError("problems must be a suite name or a non-empty list of Problems")
    names = [p.name for p in built]
    if len(set(names)) < len(names):
        raise ConfigError(f"problems must have distinct names; got {names}")
    result = SuiteComparison(name)
    options.setdefault("skip_inapplicable", True)
    planned = []
    for problem in built:  # refuse bad settings before the first run
        try:
            make_plan(
                problem,
                options.get("methods"),
                options.get("optimizers", DEFAULT_OPTIMIZERS),
                options.get("references"),
                seed=seed,
                skip_invalid=bool(options.get("skip_invalid", False)),
                lenient=bool(options["skip_inapplicable"]),
            )
        except NothingToRunError:
            result.notes.append(f"skipped {problem.name}: none of the methods applies to it.")
            continue
        planned.append(problem)
    try:
        for problem in planned:
            comparison = compare(problem, seed=seed, **options)
            result.comparisons.append(comparison)
            if comparison.interrupted:
                result.interrupted = True
                break
    except KeyboardInterrupt:
        result.interrupted = True
    return result
