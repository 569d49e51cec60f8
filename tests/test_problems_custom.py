"""The open problem API: Problem.from_function and the public subclass protocol."""

import math

import numpy as np
import pytest
import torch
from _harness import one_thread  # noqa: F401
from _reference import haar

from cwy_manifolds.problems import Answer, FunctionProblem, Problem

F64 = torch.float64
A = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=F64))


def _trace_loss(x):
    return -(x * (A.to(x) @ x)).sum()


def test_a_plain_function_and_a_shape_are_enough():
    prob = Problem.from_function(_trace_loss, 4, 2)
    assert isinstance(prob, FunctionProblem)
    assert (prob.name, prob.n, prob.p, prob.group) == ("custom", 4, 2, "stiefel")
    assert prob.optimum is None
    assert prob.solution is None
    assert prob.component is None
    x = haar(4, 2, seed=1)
    metrics = prob.metrics(x)
    assert metrics["loss"] == pytest.approx(-np.trace(x.numpy().T @ A.numpy() @ x.numpy()))
    assert math.isnan(metrics["gap"])


def test_optimum_gives_the_gap():
    prob = Problem.from_function(_trace_loss, 4, 2, optimum=-7.0, name="top2")
    x = torch.eye(4, 2, dtype=F64)
    assert prob.gap(x) == pytest.approx(0.0, abs=1e-15)
    assert prob.reference == "given by the user"


def test_solution_gives_the_optimum_and_the_component():
    sol = torch.eye(3, dtype=F64)
    sol[:, -1] *= -1  # det -1
    prob = Problem.from_function(
        lambda x: (x - sol.to(x)).square().sum(), 3, 3, group="o", solution=sol
    )
    assert prob.optimum == 0.0
    assert prob.component == -1
    torch.testing.assert_close(prob.solution, sol)


@pytest.mark.parametrize(
    "metrics",
    [
        {"corner": lambda x: float(x[0, 0])},
        lambda x: {"corner": float(x[0, 0])},
    ],
    ids=["mapping", "callable"],
)
def test_extra_metrics(metrics):
    prob = Problem.from_function(_trace_loss, 4, 2, metrics=metrics)
    assert prob.metrics(torch.eye(4, 2, dtype=F64))["corner"] == 1.0
    assert "corner" not in prob.metrics(torch.eye(4, 2, dtype=F64), extra=False)


def test_a_subclass_implements_objective_only():
    class Top(Problem):
        def __init__(self):
            super().__init__("top", 4, 1)

        def objective(self, x):
            return -(x * (A.to(x) @ x)).sum()

        def solve(self):
            return Answer(None, np.eye(4, 1), "closed form: e_1")

    prob = Top()
    assert prob.optimum == -4.0
    assert prob.reference == "closed form: e_1"
    assert prob.metrics(prob.solution)["grad_norm"] == pytest.approx(0.0, abs=1e-14)


def test_protocol_has_no_abstract_random():
    assert Problem.__abstractmethods__ == frozenset({"objective"})


BAD = [
    pytest.param(
        lambda: Problem.from_function(3, 4, 2),
        TypeError,
        "loss must be callable",
        id="not-callable",
    ),
    pytest.param(
        lambda: Problem.from_function(lambda x: x, 4, 2),
        TypeError,
        r"loss must return a real scalar tensor; got \(4, 2\)",
        id="not-scalar",
    ),
    pytest.param(
        lambda: Problem.from_function(lambda x: 1.0, 4, 2),
        TypeError,
        "loss must return a real scalar tensor; got float",
        id="not-tensor",
    ),
    pytest.param(
        lambda: Problem.from_function(lambda x: x[9, 9], 4, 2),
        TypeError,
        r"loss must accept a float64 matrix of shape \(4, 2\); calling it raised IndexError",
        id="raises",
    ),
    pytest.param(
        lambda: Problem.from_function(_trace_loss, 4, 2, optimum=float("nan")),
        ValueError,
        "optimum must be finite",
        id="optimum-nan",
    ),
    pytest.param(
        lambda: Problem.from_function(_trace_loss, 4, 2, solution=torch.ones(4, 2)),
        ValueError,
        "the solution must have orthonormal columns",
        id="solution-not-orthonormal",
    ),
    pytest.param(
        lambda: Problem.from_function(_trace_loss, 4, 2, solution=torch.eye(3, 2)),
        ValueError,
        r"the solution must have shape \(4, 2\)",
        id="solution-shape",
    ),
    pytest.param(
        lambda: Problem.from_function(
            _trace_loss, 4, 4, group="so", solution=torch.diag(torch.tensor([1.0, 1, 1, -1]))
        ),
        ValueError,
        "determinant \\+1 for group 'so'",
        id="solution-det",
    ),
    pytest.param(
        lambda: Problem.from_function(_trace_loss, 4, 2, group="o"),
        ValueError,
        "p must equal n for group 'o'",
        id="group-o-thin",
    ),
    pytest.param(
        lambda: Problem.from_function(_trace_loss, 4, 2, metrics=3),
        TypeError,
        "metrics must be a callable or a mapping",
        id="metrics",
    ),
]


@pytest.mark.parametrize(("build", "error", "match"), BAD)
def test_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()
