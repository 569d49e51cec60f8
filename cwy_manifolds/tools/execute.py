"""Running the pairs of a comparison: the learning-rate search and the seeds.

See Note [fair learning rates] in ``cwy_manifolds.tools.compare``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..problems import Problem
from .choices import start_matrix
from .plan import Pair, Plan, start_seed
from .pymanopt_runs import run_pymanopt
from .results import Run
from .runner import run_optimizer
from .stopping import StoppingRule

__all__ = ["PairRunner", "best_run", "middle_out"]


def middle_out(rates: Sequence[float]) -> list[float]:
    """Order the rates from the middle of the grid outwards."""
    middle = (len(rates) - 1) / 2
    return sorted(rates, key=lambda r: (abs(rates.index(r) - middle), rates.index(r)))


def outcome(run: Run) -> str:
    """Describe a run of the learning-rate search in a few words (for ``Run.lr_grid``)."""
    if run.converged:
        return f"{run.steps} steps"
    if run.stop_code in ("capped", "diverged", "infeasible"):
        return run.stop_code
    gap = run.gap[-1] if run.gap else math.nan
    return f"gap {gap:.1e}" if math.isfinite(gap) else f"loss {run.final_loss:.4g}"


def best_run(runs: Sequence[Run], rel_tol: float = 1e-6) -> Run:
    """Pick the converged run with fewest steps among those ending lowest; else the lowest."""

    def final(run: Run) -> float:
        return run.final_loss if math.isfinite(run.final_loss) else math.inf

    converged = [r for r in runs if r.converged]
    if converged:
        low = min(final(r) for r in converged)
        good = [r for r in converged if final(r) - low <= rel_tol * max(1.0, abs(low))]
        return min(good, key=lambda r: (r.steps, final(r)))
    return min(runs, key=final)


class PairRunner:
    """Runs the pairs of a plan (the body of :func:`compare`)."""

    def __init__(
        self,
        problem: Problem,
        plan: Plan,
        rule: StoppingRule,
        *,
        lr: float | None,
        rates: list[float],
        seeds: list[int],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.problem, self.plan, self.rule = problem, plan, rule
        self.lr, self.rates, self.seeds = lr, rates, seeds
        self.device, self.dtype = device, dtype

    def one(self, pair: Pair, seed: int, det: int | None, lr: float | None, cap: int | None) -> Run:
        """One run of ``pair`` from the start of ``seed`` in component ``det``."""
        start = start_matrix(self.problem, start_seed(seed), det)
        if pair.solver is not None:
            vectors = None if pair.method is None else pair.method.manifold(det)
            run = run_pymanopt(
                self.problem,
                pair.solver,
                start,
                self.rule,
                seed=seed,
                vectors=vectors,
                method=pair.labels[0],
            )
        else:
            run = run_optimizer(
                self.problem,
                pair.method.manifold(det),
                pair.optimizer.factory,
                lr,
                start,
                self.rule,
                labels=pair.labels,
                seed=seed,
                device=self.device,
                dtype=self.dtype,
                cap=cap,
            )
        if run.point is not None:
            run.extras = {k: float(v) for k, v in self.problem.extra_metrics(run.point).items()}
        return run

    def search(self, pair: Pair, seed: int, det: int | None) -> Run:
        """Grid search on ``seed`` (Note [fair learning rates])."""
        if pair.solver is not None or not pair.optimizer.uses_lr:
            return self.one(pair, seed, det, None, None)
        if self.lr is not None:
            return self.one(pair, seed, det, self.lr, None)
        tried: dict[float, Run] = {}
        cap = None
        for rate in middle_out(self.rates):
            run = tried[rate] = self.one(pair, seed, det, rate, cap)
            if run.converged:
                cap = run.steps if cap is None else min(cap, run.steps)
        best = best_run(list(tried.values()), self.rule.gap_tol or 1e-6)
        best.lr_grid = {rate: outcome(tried[rate]) for rate in self.rates}
        return best

    def pair(self, pair: Pair) -> list[Run]:
        """Every seed of one pair; the better component when both are tried."""
        first, *others = self.seeds
        candidates = {det: self.search(pair, first, det) for det in pair.components}
        best = best_run(list(candidates.values()), self.rule.gap_tol or 1e-6)
        det = next(d for d, run in candidates.items() if run is best)
        if len(candidates) > 1:
            self.plan.notes.append(
                f"{best.label}: ran from both components of O(n); det {det:+d} reached the "
                "lower loss and is reported."
            )
        return [best] + [self.one(pair, seed, det, best.lr, None) for seed in others]

    def check_component(self, runs: list[Run]) -> None:
        """Warn about runs that ended in another component of O(n) than the reference."""
        target = self.problem.component
        if target is None:
            return
        for run in runs:
            if run.point is None or run.method in self.plan.off_target:
                continue
            det = 1 if float(torch.linalg.slogdet(run.point).sign) > 0 else -1
            if det != target:
                self.plan.warnings.append(
                    f"{run.label} (seed {run.seed}) ended with det {det:+d}, in the other "
                    f"component of O(n) from the reference solution (det {target:+d}): it "
                    "cannot reach the optimum."
                )
