r"""Problems and suites of problems by name: :data:`PROBLEMS`, :data:`SUITES`.

A *problem type* builds seeded instances of one family at any size
(:func:`make_problem`); a *suite* is a named list of instances (:func:`make_suite`), what
``cwy-manifolds compare --suite NAME`` runs and performance profiles summarise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import Problem, check_size
from .brockett import Brockett
from .joint import JointDiagonalization
from .pca import PCA, DominantSubspace
from .procrustes import Procrustes

__all__ = ["PROBLEMS", "SUITES", "Instance", "ProblemType", "Suite", "make_problem", "make_suite"]


@dataclass(frozen=True)
class ProblemType:
    """A family of problems that :func:`make_problem` builds by name.

    Attributes
    ----------
    name : str
    build : callable
        ``build(n, p, group=..., seed=..., **options) -> Problem``.
    summary : str
        One line for help texts, with where the optimum comes from.
    groups : tuple of str
        The groups it can be posed on; the first is the default.
    fixed_n : int or None
        The only possible ``n`` (real data), if any.
    matrices : int
        About how many ``n x n`` float64 matrices building an instance holds (for the
        memory estimate of :func:`make_problem`).
    """

    name: str
    build: Callable[..., Problem]
    summary: str
    groups: tuple[str, ...] = ("stiefel",)
    fixed_n: int | None = None
    matrices: int = 8

    def default_p(self, n: int, group: str) -> int:
        """``n`` on a square group, else ``min(8, n)``."""
        return n if group != "stiefel" else min(8, n)


def _trap(n: int, p: int, *, group: str, seed: int, **options: Any) -> Problem:
    if p != n:
        raise ValueError(f"p must equal n for trap (square); got n={n}, p={p}")
    trap = Procrustes.determinant_trap(n, seed=seed, **options)
    return trap if group == "so" else trap.over(group)


def _digits(n: int, p: int, *, group: str, seed: int) -> Problem:
    return PCA.digits(p)


def _stiefel(cls: Any) -> Callable[..., Problem]:
    def build(n: int, p: int, *, group: str, seed: int, **options: Any) -> Problem:
        return cls.random(n, p, seed=seed, **options)

    return build


def _grouped(cls: Any) -> Callable[..., Problem]:
    def build(n: int, p: int, *, group: str, seed: int, **options: Any) -> Problem:
        return cls.random(n, p, group=group, seed=seed, **options)

    return build


#: Problem types by name, for :func:`~cwy_manifolds.problems.make_problem` and the command
#: line.
PROBLEMS: dict[str, ProblemType] = {
    t.name: t
    for t in (
        ProblemType("pca", _stiefel(PCA), "PCA of a random covariance (closed form: eigh)"),
        ProblemType(
            "dominant-subspace",
            _stiefel(DominantSubspace),
            "top-p invariant subspace of a symmetric indefinite matrix (closed form: eigh)",
        ),
        ProblemType(
            "brockett",
            _grouped(Brockett),
            "Brockett's cost tr(X^T A X N) (closed form: sorted eigenvectors)",
            groups=("stiefel", "o", "so"),
        ),
        ProblemType(
            "procrustes",
            _grouped(Procrustes),
            "orthogonal Procrustes 1/2 ||A X - B||^2 (closed form when square; "
            "else a pymanopt reference)",
            groups=("stiefel", "o", "so"),
        ),
        ProblemType(
            "trap",
            _trap,
            "square Procrustes whose O(n) optimum has determinant -1 (on SO(n): Kabsch)",
            groups=("so", "o"),
        ),
        ProblemType(
            "joint-diagonalization",
            _grouped(JointDiagonalization),
            "joint diagonalization of 4 symmetric matrices with a known diagonalizer "
            "(thin instances have local minima)",
            groups=("stiefel", "o", "so"),
            matrices=16,
        ),
        ProblemType(
            "digits",
            _digits,
            "PCA of scikit-learn's handwritten digits, n = 64 (closed form: eigh)",
            fixed_n=64,
        ),
    )
}


def _memory_limit() -> float | None:
    """Half of this machine's physical memory in bytes, or None where unknown."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2
    except (ValueError, OSError, AttributeError):
        return None


def _bytes_text(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.3g} {unit}"
        size /= 1000
    raise AssertionError  # pragma: no cover


def estimate_bytes(name: str, n: int, p: int) -> float:
    """Estimate the memory that building and optimizing an instance takes.

    :func:`make_problem` refuses, before any work, a size whose estimate exceeds half of
    the machine's memory.

    Parameters
    ----------
    name : str
        A key of :data:`PROBLEMS`.
    n, p : int
        The shape of the instance's matrix, ``n x p``.

    Returns
    -------
    float
        About how many bytes: the problem's ``n x n`` float64 matrices and about 200
        ``n x p`` working tensors.
    """
    return 8.0 * (PROBLEMS[name].matrices * n * n + 200 * n * p)


def make_problem(
    name: str,
    n: int | None = None,
    p: int | None = None,
    *,
    group: str | None = None,
    seed: int = 0,
    label: str | None = None,
    **options: Any,
) -> Problem:
    """Build a seeded random instance of the problem type registered as ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`PROBLEMS`.
    n, p : int, optional
        Shape of the point; ``n`` defaults to 64 (or the only size of real data), ``p``
        to ``n`` on square groups and ``min(8, n)`` otherwise.
    group : str, optional
        One of the type's groups; default its first.
    seed : int, default 0
    label : str, optional
        Name of the instance (default: the type's).
    **options
        Passed to the ``random`` constructor of the class (e.g. ``condition``).

    Raises
    ------
    ValueError
        Unknown name or group, bad sizes, or an instance that would need more than half
        of this machine's memory (estimated up front).

    Examples
    --------
    >>> from cwy_manifolds.problems import make_problem
    >>> make_problem("procrustes", 4, 4, group="so")
    Procrustes(name='procrustes', n=4, p=4, group='so')
    """
    if not isinstance(name, str) or name not in PROBLEMS:
        raise ValueError(f"name must be one of {', '.join(map(repr, PROBLEMS))}; got {name!r}")
    kind = PROBLEMS[name]
    group = kind.groups[0] if group is None else group
    if group not in kind.groups:
        raise ValueError(
            f"group must be one of {', '.join(map(repr, kind.groups))} for {name}; got {group!r}"
        )
    n = (kind.fixed_n or 64) if n is None else check_size(n, "n")
    if kind.fixed_n is not None and n != kind.fixed_n:
        raise ValueError(f"n must be {kind.fixed_n} for {name} (its number of features); got {n}")
    p = kind.default_p(n, group) if p is None else check_size(p, "p")
    if p > n:
        raise ValueError(f"p must be at most n (a Stiefel matrix is tall); got n={n}, p={p}")
    limit, need = _memory_limit(), estimate_bytes(name, n, p)
    if limit is not None and need > limit:
        raise ValueError(
            f"n must be small enough to fit in memory: n={n} needs about {_bytes_text(need)} "
            f"for {name}, more than half of this machine's memory ({_bytes_text(2 * limit)})"
        )
    problem = kind.build(n, p, group=group, seed=seed, **options)
    if label is not None:
        problem.name = label
    return problem


@dataclass(frozen=True)
class Instance:
    """One problem of a suite: a type of :data:`PROBLEMS`, a size and options."""

    problem: str
    n: int | None = None
    p: int | None = None
    group: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Name of the instance in tables, e.g. ``"pca-16x4"`` or ``"trap-o6"``."""
        kind = PROBLEMS[self.problem]
        group = self.group or kind.groups[0]
        n = self.n or kind.fixed_n or 64
        if group != "stiefel":
            return f"{self.problem}-{group}{n}"
        return f"{self.problem}-{n}x{self.p or kind.default_p(n, group)}"

    def build(self, seed: int = 0) -> Problem:
        """Build the seeded instance (:func:`make_problem`), named :attr:`label`."""
        return make_problem(
            self.problem,
            self.n,
            self.p,
            group=self.group,
            seed=seed,
            label=self.label,
            **dict(self.options),
        )


@dataclass(frozen=True)
class Suite:
    """A named list of problem instances."""

    name: str
    summary: str
    instances: tuple[Instance, ...]

    def problems(self, seed: int = 0) -> list[Problem]:
        """Build every instance with ``seed``."""
        return [instance.build(seed) for instance in self.instances]


#: Suites by name, ``demo`` (what ``make demo`` runs), ``small`` and ``full``.
SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            "demo",
            "four small problems, one of them on O(n) with a determinant -1 optimum",
            (
                Instance("pca", 16, 4),
                Instance("brockett", 10, 3),
                Instance("trap", 6, group="o"),
                Instance("joint-diagonalization", 6, group="o"),
            ),
        ),
        Suite(
            "small",
            "every problem type at small sizes",
            (
                Instance("pca", 32, 4),
                Instance("dominant-subspace", 32, 4),
                Instance("brockett", 16, 4),
                Instance("procrustes", 16, 4),
                Instance("procrustes", 8, group="so"),
                Instance("trap", 8, group="o"),
                Instance("joint-diagonalization", 12, group="o"),
                Instance("digits", p=4),
            ),
        ),
        Suite(
            "full",
            "every problem type at moderate sizes, a noisy joint diagonalization",
            (
                Instance("pca", 128, 8),
                Instance("dominant-subspace", 128, 8),
                Instance("brockett", 64, 8),
                Instance("procrustes", 64, 8),
                Instance("procrustes", 32, group="so"),
                Instance("trap", 32, group="o"),
                Instance("joint-diagonalization", 16, group="o", options={"noise": 0.05}),
                Instance("digits", p=10),
            ),
        ),
    )
}


def make_suite(name: str, seed: int = 0) -> list[Problem]:
    """Build the problems of the suite registered as ``name`` (a key of :data:`SUITES`).

    Examples
    --------
    >>> from cwy_manifolds.problems import make_suite
    >>> [p.name for p in make_suite("demo")]
    ['pca-16x4', 'brockett-10x3', 'trap-o6', 'joint-diagonalization-o6']
    """
    if not isinstance(name, str) or name not in SUITES:
        raise ValueError(f"suite must be one of {', '.join(map(repr, SUITES))}; got {name!r}")
    return SUITES[name].problems(seed)
