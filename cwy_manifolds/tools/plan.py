r"""The plan of a comparison: which pairs run, in which components, with which notes.

Everything that can be refused is refused here, before the first run (Note [components
of O(n)] in ``cwy_manifolds.tools.choices``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from ..manifolds import MatrixManifold
from ..problems import Problem
from .choices import (
    MethodChoice,
    OptimizerChoice,
    invalid_reason,
    reachable,
    resolve_methods,
    resolve_optimizers,
    start_matrix,
)
from .pymanopt_runs import SOLVERS, pymanopt_available
from .results import ConfigError, NothingToRunError

__all__ = ["Pair", "Plan", "make_plan", "start_seed"]


def start_seed(seed: int) -> int:
    """Return the generator seed of the start for ``seed`` (independent of the problem's)."""
    return int(np.random.SeedSequence((seed, 0x5747)).generate_state(1, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Pair:
    """One row of the table: a method, and an optimizer or a pymanopt solver."""

    method: MethodChoice | None  # None: pymanopt's own manifold
    optimizer: OptimizerChoice | None  # None: a pymanopt solver
    solver: str | None = None
    components: tuple[int | None, ...] = (None,)

    @property
    def labels(self) -> tuple[str, str]:
        """(method, optimizer) labels."""
        method = "pymanopt" if self.method is None else self.method.label
        optimizer = SOLVERS[self.solver][1] if self.solver else self.optimizer.label
        return method, optimizer


@dataclass
class Plan:
    """Pairs to run, the target component, notes and warnings known before running.

    ``free``: both components of :math:`O(n)` hold an optimum, so each method runs in the
    first of det +1, det -1 that it can stand for.
    """

    pairs: list[Pair]
    target: int | None
    free: bool = False
    off_target: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _components(
    problem: Problem, method: MethodChoice, start: dict[int | None, Tensor], plan: Plan
) -> tuple[int | None, ...] | None:
    """Return the components ``method`` runs in (None: skip it); add notes and warnings."""
    square = problem.p == problem.n
    if not square:
        why = reachable(method, start[None], None)
        if why is None:
            return (None,)
        if method.registered is not None:
            why = method.registered.why_not(problem.n, problem.p) or why
        if method.explicit:
            raise ConfigError(
                f"methods must stand for {problem.n} x {problem.p} matrices: {method.label}: {why}"
            )
        plan.notes.append(f"skipped {method.label}: {why}.")
        return None
    wanted = (plan.target,) if plan.target is not None else (1, -1)
    ok = tuple(d for d in wanted if reachable(method, start[d], d) is None)
    if ok:
        return ok[:1] if plan.free else ok
    other = -plan.target if plan.target is not None and problem.group != "so" else None
    why = reachable(method, start[wanted[0]], wanted[0])
    if other is not None and reachable(method, start[other], other) is None:
        text = (
            f"{method.label} cannot stand for matrices of determinant {plan.target:+d} "
            f"({why}): it runs in the det {other:+d} component and cannot reach the optimum"
        )
        if method.explicit:
            plan.warnings.append(text + ".")
            plan.off_target.add(method.label)
            return (other,)
        plan.notes.append(
            f"skipped {method.label}: it cannot stand for matrices of "
            f"determinant {plan.target:+d}, the optimum's ({why})."
        )
        return None
    if method.explicit:
        raise ConfigError(f"methods must stand for the problem's matrices: {method.label}: {why}")
    plan.notes.append(f"skipped {method.label}: {why}.")
    return None


def make_plan(
    problem: Problem,
    methods: object,
    optimizers: object,
    references: object,
    *,
    seed: int,
    skip_invalid: bool,
    lenient: bool = False,
) -> Plan:
    """Check the methods, optimizers and pymanopt solvers; return the :class:`Plan`.

    ``lenient``: skip, with a note, methods that cannot stand for the problem's matrices.

    Raises
    ------
    ConfigError
        With one line naming the bad setting or pair; :class:`NothingToRunError` when no
        pair is left.
    """
    chosen = resolve_methods(methods, problem, lenient=lenient)
    optimizer_choices = resolve_optimizers(optimizers)
    solvers = _solvers(references)
    square = problem.p == problem.n
    target = (1 if problem.group == "so" else problem.component) if square else None
    free = square and problem.group != "so" and problem.column_signs_free
    plan = Plan([], target, free=free)
    dets: list[int | None] = [None] if not square else ([target] if target else [1, -1])
    if square and target is not None and problem.group != "so":
        dets.append(-target)
    s = start_seed(seed)
    start = {d: start_matrix(problem, s, d) for d in dets}
    components = {}
    for method in chosen:
        found = _components(problem, method, start, plan)
        if found is not None:
            components[method.label] = found
    methods_run = [m for m in chosen if m.label in components]
    invalid = []
    for method in methods_run:
        for optimizer in optimizer_choices:
            if (why := invalid_reason(method, optimizer)) is not None:
                invalid.append(why)
                continue
            plan.pairs.append(Pair(method, optimizer, None, components[method.label]))
    if invalid and not skip_invalid:
        raise ConfigError(
            f"{invalid[0]}; pass skip_invalid=True (--skip-invalid) to skip such pairs"
        )
    plan.notes += [f"skipped: {why}." for why in invalid]
    own = (target,) if target is not None else ((1,) if free else (1, -1) if square else (None,))
    for solver in solvers:
        plan.pairs.append(Pair(None, None, solver, own))
        for method in methods_run:
            if method.flat and isinstance(method.manifold(), MatrixManifold):
                plan.pairs.append(Pair(method, None, solver, components[method.label]))
    if not plan.pairs:
        raise NothingToRunError(
            f"methods and optimizers must leave at least one pair to run on {problem.name}"
        )
    return plan


def _solvers(references: object) -> list[str]:
    if references is None:
        return list(SOLVERS) if pymanopt_available() else []
    names = [references] if isinstance(references, str) else list(references)
    for name in names:
        if name not in SOLVERS:
            raise ConfigError(f"references must be among {', '.join(SOLVERS)}; got {name!r}")
    if names and not pymanopt_available():
        raise ConfigError("references need pymanopt: pip install pymanopt")
    return names
