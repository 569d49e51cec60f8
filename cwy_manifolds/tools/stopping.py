r"""When a run stops, and the clock that times it.

Note [stopping rules]
~~~~~~~~~~~~~~~~~~~~~
Every run, of a geoopt or torch optimizer or of a pymanopt solver, is checked after each
step against the same :class:`StoppingRule`, on metrics computed the same way for every
method (:meth:`~cwy_manifolds.problems.Problem.metrics`, float64):

1. *converged*: the relative gap is at most ``gap_tol`` (when the optimum is known), or
   the Riemannian gradient norm of the matrix is at most ``grad_tol`` (Note [Riemannian
   gradient of the matrix] in ``cwy_manifolds.problems.base``);
2. *failed*: the loss is not finite (diverged), or the matrix left the manifold
   (:math:`\|X^\top X - I\|_F` above ``max_infeasibility``);
3. *out of budget*: ``max_steps`` steps done, ``time_budget`` seconds spent, or (in a
   learning-rate search) as many steps as the best rate so far needed without
   converging: that rate can no longer win.

A run that stops on a small gradient while the gap is known and above tolerance has
reached a critical point that is not the optimum; it counts as not converged. The
reason is kept in plain words (:attr:`Stop.reason`).

Note [timing]
~~~~~~~~~~~~~
:class:`Clock` measures the optimization steps only (metrics are computed with the clock
paused), both as wall-clock time (:func:`time.perf_counter`) and as process CPU time
(:func:`time.process_time`). CPU time counts every thread of the process, so it can
exceed wall time with several threads; on a loaded machine it is the steadier of the two,
because time spent waiting for a core is not counted. On CUDA the device is synchronised
before each reading, and the CPU time then includes the time spent waiting for the device.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

__all__ = ["Clock", "Stop", "StoppingRule"]


@dataclass(frozen=True)
class Stop:
    """Why a run stopped: a short ``code``, a plain-English ``reason``, ``converged``.

    Codes: ``"gap"``, ``"grad"`` (converged), ``"critical"`` (small gradient, gap above
    tolerance), ``"steps"``, ``"time"``, ``"capped"`` (could not beat a better learning
    rate), ``"diverged"``, ``"infeasible"``, ``"solver"`` (the solver ended by itself),
    ``"interrupted"``.
    """

    code: str
    reason: str
    converged: bool = False


@dataclass(frozen=True)
class StoppingRule:
    r"""The stopping rules of every run (Note [stopping rules]).

    Attributes
    ----------
    max_steps : int, default 500
        Optimizer steps (solver iterations) at most.
    gap_tol : float or None, default 1e-6
        Stop once the relative gap is at most this (problems with a known optimum).
    grad_tol : float or None, default 1e-6
        Stop once the Riemannian gradient norm of the matrix is at most this.
    time_budget : float or None
        Seconds of (wall-clock) optimization per run.
    max_infeasibility : float, default 1e-3
        Stop when :math:`\|X^\top X - I\|_F` exceeds this (the matrix left the manifold).
    """

    max_steps: int = 500
    gap_tol: float | None = 1e-6
    grad_tol: float | None = 1e-6
    time_budget: float | None = None
    max_infeasibility: float = 1e-3

    def check(
        self, step: int, metrics: dict[str, float], seconds: float, cap: int | None = None
    ) -> Stop | None:
        """Return why to stop after ``step`` with ``metrics``, or None to go on.

        ``seconds`` is the optimization time so far; ``cap`` the step count of the best
        learning rate so far, if any.
        """
        loss, gap, grad = metrics["loss"], metrics["gap"], metrics.get("grad_norm", math.nan)
        if not math.isfinite(loss) or not math.isfinite(grad):
            return Stop("diverged", f"diverged: non-finite loss or gradient at step {step}")
        if metrics["feasibility"] > self.max_infeasibility:
            return Stop(
                "infeasible",
                f"left the manifold: ||X^T X - I|| = {metrics['feasibility']:.1e} at step {step}",
            )
        if self.gap_tol is not None and gap <= self.gap_tol:
            return Stop("gap", f"reached gap {self.gap_tol:g} at step {step}", converged=True)
        if self.grad_tol is not None and grad <= self.grad_tol:
            if math.isnan(gap) or self.gap_tol is None:
                return Stop(
                    "grad", f"gradient norm below {self.grad_tol:g} at step {step}", converged=True
                )
            return Stop(
                "critical",
                f"gradient norm below {self.grad_tol:g} at step {step}, at a critical point "
                f"with gap {gap:.1e}",
            )
        if step >= self.max_steps:
            return Stop("steps", f"ran all {self.max_steps} steps")
        if self.time_budget is not None and seconds >= self.time_budget:
            return Stop("time", f"used up the time budget of {self.time_budget:g} s at step {step}")
        if cap is not None and step >= cap:
            return Stop("capped", f"not converged after {cap} steps, where a better rate was")
        return None


class Clock:
    """Accumulates wall-clock and process CPU time of the timed parts (Note [timing]).

    Examples
    --------
    >>> clock = Clock()
    >>> with clock:
    ...     _ = sum(range(1000))
    >>> clock.wall >= 0 and clock.cpu >= 0
    True
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self._device = device
        self._began: tuple[float, float] | None = None

    def _sync(self) -> None:
        if self._device is not None and self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def start(self) -> None:
        """Start (or resume) timing."""
        self._sync()
        self._began = (time.perf_counter(), time.process_time())

    def stop(self) -> None:
        """Pause timing and add the time since :meth:`start`."""
        if self._began is None:
            return
        self._sync()
        wall, cpu = self._began
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self._began = None

    def __enter__(self) -> Clock:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
