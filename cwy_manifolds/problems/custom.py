r"""Problems from plain functions: :class:`FunctionProblem` (``Problem.from_function``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from .base import F64, Answer, MetricsSpec, Problem

__all__ = ["FunctionProblem"]


class FunctionProblem(Problem):
    r"""A problem given by a loss function of the matrix, and optionally its optimum.

    .. math::

        \min_X f(X), \qquad X \in \mathrm{St}(n, p),\ O(n) \text{ or } SO(n).

    Parameters
    ----------
    loss : callable
        ``loss(X) -> Tensor``: a differentiable scalar torch function of the matrix ``X``
        of shape ``(n, p)``. It receives ``X`` in the dtype and on the device of the run
        (float64 by default) and in float64 on the CPU for the metrics, so write it
        dtype-generic: ``A.to(X) @ X`` rather than ``A @ X`` with a fixed dtype.
    n, p : int
        Shape of ``X``, ``p <= n``.
    group : {"stiefel", "o", "so"}, default ``"stiefel"``
        ``"o"`` and ``"so"`` need ``p == n``.
    optimum : float, optional
        The optimal value :math:`f^\star`, if known; the gap is NaN otherwise.
    solution : torch.Tensor or numpy.ndarray, optional
        A point attaining the optimum, shape ``(n, p)``, on the group. Gives the optimum
        when ``optimum`` is omitted, and for square problems the component of
        :math:`O(n)` that every method must start in (:attr:`Problem.component`).
    metrics : callable or mapping, optional
        Extra metrics: ``metrics(X) -> {name: value}``, or ``{name: fn}`` with
        ``fn(X) -> float``. ``X`` is float64 on the CPU.
    name : str, default ``"custom"``
    reference : str, optional
        Where ``optimum``/``solution`` come from, for the tables (default: "given by the
        user").

    Raises
    ------
    ValueError, TypeError
        At construction, if ``loss`` does not return a real scalar tensor on a float64
        ``(n, p)`` matrix, or the solution is not a point of the group.

    Examples
    --------
    The leading eigenvector of a symmetric matrix, in ten lines:

    >>> import torch
    >>> from cwy_manifolds.problems import Problem
    >>> a = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> prob = Problem.from_function(
    ...     lambda x: -(x * (a.to(x) @ x)).sum(), 2, 1,
    ...     solution=torch.tensor([[1.0], [0.0]], dtype=torch.float64),
    ...     metrics={"x0": lambda x: float(x[0, 0])}, name="top-eigenvector")
    >>> prob.optimum, sorted(prob.metrics(prob.solution))
    (-2.0, ['feasibility', 'gap', 'grad_norm', 'loss', 'x0'])
    """

    def __init__(
        self,
        loss: Callable[[Tensor], Tensor],
        n: int,
        p: int,
        *,
        group: str = "stiefel",
        optimum: float | None = None,
        solution: Tensor | np.ndarray | None = None,
        metrics: MetricsSpec | None = None,
        name: str = "custom",
        reference: str | None = None,
    ) -> None:
        if not callable(loss):
            raise TypeError(f"loss must be callable; got {type(loss).__name__}")
        super().__init__(name, n, p, group)
        self.function = loss
        self._check_loss()
        if optimum is not None:
            if isinstance(optimum, bool) or not isinstance(optimum, (int, float, np.floating)):
                raise TypeError(f"optimum must be a real number; got {type(optimum).__name__}")
            if not math.isfinite(optimum):
                raise ValueError(f"optimum must be finite; got {optimum!r}")
        self._given = (optimum, solution)
        self._source = reference or "given by the user"  # read only when something is given
        if metrics is not None and not (callable(metrics) or isinstance(metrics, Mapping)):
            raise TypeError(
                "metrics must be a callable or a mapping of callables; got "
                f"{type(metrics).__name__}"
            )
        self._metrics = metrics
        if solution is not None:
            self._answer  # noqa: B018 (check the solution now, not at first use)

    def _check_loss(self) -> None:
        x = torch.eye(self.n, self.p, dtype=F64, requires_grad=True)
        try:
            value = self.function(x)
        except Exception as error:
            raise TypeError(
                f"loss must accept a float64 matrix of shape {(self.n, self.p)}; calling it "
                f"raised {type(error).__name__}: {error}"
            ) from error
        if not isinstance(value, Tensor) or value.numel() != 1 or not value.is_floating_point():
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(f"loss must return a real scalar tensor; got {got}")

    def objective(self, x: Tensor) -> Tensor:
        """Return ``loss(x)`` as a 0-d tensor."""
        return self.function(x).reshape(())

    def solve(self) -> Answer:
        """Return the optimum and solution given at construction."""
        optimum, solution = self._given
        if optimum is None and solution is None:
            return Answer()
        return Answer(None if optimum is None else float(optimum), solution, self._source)

    def extra_metrics(self, x: Tensor) -> dict[str, float]:
        """Evaluate the user's metrics."""
        if self._metrics is None:
            return {}
        if isinstance(self._metrics, Mapping):
            return {str(k): float(fn(x)) for k, fn in self._metrics.items()}
        return {str(k): float(v) for k, v in self._metrics(x).items()}
