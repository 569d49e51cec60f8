"""Stopping rules, the clock and the learning-rate search (Note [stopping rules])."""

import math
import time

import pytest
import torch
from _harness import one_thread  # noqa: F401

from cwy_manifolds import compare
from cwy_manifolds.problems import PCA, Procrustes
from cwy_manifolds.tools import execute
from cwy_manifolds.tools.execute import best_run, middle_out
from cwy_manifolds.tools.results import Run
from cwy_manifolds.tools.stopping import Clock, StoppingRule

FAST = {"references": [], "threads": 1}
OK = {"loss": -1.0, "gap": 1e-3, "feasibility": 1e-15, "grad_norm": 1e-2}

RULES = [
    ({}, {}, 5, None, None),
    ({}, {"gap": 1e-7}, 5, None, "gap"),
    ({}, {"gap": math.nan, "grad_norm": 1e-8}, 5, None, "grad"),
    ({}, {"grad_norm": 1e-8}, 5, None, "critical"),
    ({"gap_tol": None}, {"gap": 1e-9}, 5, None, None),
    ({}, {}, 500, None, "steps"),
    ({"time_budget": 1.0}, {}, 5, None, None),
    ({}, {"loss": math.nan}, 5, None, "diverged"),
    ({}, {"feasibility": 0.5}, 5, None, "infeasible"),
    ({}, {}, 7, 7, "capped"),
    ({}, {"gap": 1e-9}, 7, 7, "gap"),
]


@pytest.mark.parametrize(
    ("options", "metrics", "step", "cap", "code"),
    RULES,
    ids=[
        "go-on",
        "gap",
        "grad-no-optimum",
        "critical",
        "gap-off",
        "steps",
        "budget-left",
        "diverged",
        "infeasible",
        "capped",
        "converged-at-cap",
    ],
)
def test_rule(options, metrics, step, cap, code):
    stop = StoppingRule(**options).check(step, OK | metrics, 0.5, cap)
    assert (stop and stop.code) == code
    if stop is not None:
        assert stop.converged == (code in ("gap", "grad"))
        assert stop.reason  # plain words


def test_time_budget():
    stop = StoppingRule(time_budget=0.25).check(3, OK, 0.3)
    assert stop.code == "time"
    assert stop.reason == "used up the time budget of 0.25 s at step 3"


def test_clock_counts_only_the_timed_parts():
    clock = Clock()
    time.sleep(0.05)  # not timed
    with clock:
        sum(range(10_000))
    assert 0 < clock.wall < 0.05
    assert clock.cpu >= 0


def test_a_run_stops_at_the_first_step_within_tolerance():
    result = compare(PCA.random(6, 2), methods="qr", optimizers="radam", lr=0.3, tol=1e-4, **FAST)
    run = result.runs[0]
    assert run.stop_code == "gap"
    assert run.converged
    assert run.gap[-1] <= 1e-4 < min(run.gap[:-1])
    assert run.stop_reason == f"reached gap 0.0001 at step {run.steps}"


def test_time_budget_stops_runs():
    result = compare(
        PCA.random(6, 2), methods="qr", optimizers="radam", lr=0.001, time_budget=1e-9, **FAST
    )
    assert result.runs[0].steps == 1
    assert result.runs[0].stop_code == "time"


class _NaN(torch.optim.Optimizer):
    """Writes NaN into the parameters: a diverging optimizer."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        if closure is not None:
            closure()
        for group in self.param_groups:
            for p in group["params"]:
                p.data.fill_(math.nan)


def test_divergence_and_leaving_the_manifold_stop_a_run():
    diverged = compare(PCA.random(6, 2), methods="tcwy", optimizers={"nan": _NaN}, lr=0.1, **FAST)
    assert diverged.runs[0].stop_code == "diverged"
    assert diverged.runs[0].steps == 1

    def torch_adam(params, lr):  # a factory: compare cannot know it is not Riemannian
        return torch.optim.Adam(params, lr=lr)

    off = compare(PCA.random(6, 2), methods="qr", optimizers={"adam": torch_adam}, lr=0.1, **FAST)
    assert off.runs[0].stop_code == "infeasible"
    assert off.runs[0].stop_reason.startswith("left the manifold: ||X^T X - I|| = ")


def test_pymanopt_runs_obey_the_same_rules():
    pytest.importorskip("pymanopt")
    prob = PCA.random(8, 3, seed=2)
    loose = compare(
        prob,
        methods="tcwy",
        optimizers="radam",
        lr=0.3,
        references=["trust-regions", "steepest-descent"],
        tol=1e-3,
        threads=1,
    )
    for run in loose.runs:
        assert run.stop_code == "gap"
        assert run.gap[-1] <= 1e-3 < min(run.gap[:-1])
    short = compare(
        prob,
        methods="tcwy",
        optimizers="radam",
        lr=0.3,
        steps=2,
        references=["conjugate-gradient"],
        threads=1,
    )
    assert {(r.label, r.steps, r.stop_code) for r in short.runs} == {
        ("tcwy/radam", 2, "steps"),
        ("pymanopt/pymanopt-cg", 2, "steps"),
        ("tcwy/pymanopt-cg", 2, "steps"),
    }


def test_middle_out_order():
    assert middle_out([1, 2, 3, 4, 5]) == [3, 2, 4, 1, 5]
    assert middle_out([1, 2, 3, 4]) == [2, 3, 1, 4]


def _run(steps, loss, converged):
    run = Run("m", "o", 0.1, step=[0, steps], loss=[0.0, loss], converged=converged)
    return run


@pytest.mark.parametrize(
    ("runs", "best"),
    [
        ([_run(50, -1.0, True), _run(30, -1.0, True), _run(10, -0.5, False)], 1),
        ([_run(50, -1.0, False), _run(30, -2.0, False), _run(10, math.nan, False)], 1),
        ([_run(50, -2.0, True), _run(10, -1.0, True)], 0),  # a quick but worse critical point
    ],
    ids=["fewest-steps", "lowest-loss", "not-a-worse-critical-point"],
)
def test_best_run(runs, best):
    assert best_run(runs) is runs[best]


def test_rates_that_can_no_longer_win_are_capped(monkeypatch):
    calls = []
    original = execute.run_optimizer

    def spy(*args, cap=None, **kwargs):
        run = original(*args, cap=cap, **kwargs)
        calls.append((run.lr, cap, run.steps, run.converged))
        return run

    monkeypatch.setattr(execute, "run_optimizer", spy)
    grid = (0.03, 0.1, 0.3, 1.0, 3.0)
    result = compare(PCA.random(6, 2), methods="qr", optimizers="rsgd", lr_grid=grid, **FAST)
    assert [lr for lr, *_ in calls] == middle_out(list(grid))
    best = None
    for _, cap, steps, converged in calls:
        assert cap == best
        if best is not None:
            assert steps <= best
        if converged:
            best = steps if best is None else min(best, steps)
    assert result.runs[0].steps == best
    assert "capped" in result.runs[0].lr_grid.values()


def test_float32_runs_are_measured_in_float64():
    result = compare(
        Procrustes.random(4, group="so"),
        methods=["cwy", "qr"],
        optimizers="radam",
        lr=0.1,
        dtype=torch.float32,
        tol=1e-5,
        **FAST,
    )
    for run in result.runs:
        assert run.converged
        assert run.point.dtype == torch.float64
        assert run.feasibility[-1] <= 1e-5  # float32 matrix, measured in float64
