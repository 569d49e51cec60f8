"""Square problems: every method starts in the optimum's component of O(n)."""

import numpy as np
import pytest
import torch
from _harness import one_thread  # noqa: F401
from _reference import haar

import cwy_manifolds as cm
from cwy_manifolds import compare
from cwy_manifolds.problems import Brockett, Problem, Procrustes, make_problem
from cwy_manifolds.tools.choices import resolve_methods
from cwy_manifolds.tools.results import ConfigError

FAST = {"references": [], "threads": 1}


def _det(x):
    return int(np.sign(np.linalg.det(x.numpy())))


@pytest.fixture(scope="module")
def det_minus_one():
    """The issue's instance: cwy-manifolds compare --problem procrustes --group o --n 8 --seed 3."""
    problem = make_problem("procrustes", 8, group="o", seed=3)
    assert problem.component == -1
    return problem


def test_every_method_reaches_a_determinant_minus_one_optimum(det_minus_one):
    result = compare(
        det_minus_one,
        optimizers="radam",
        lr_grid=(0.1, 0.3, 1.0, 3.0),
        references=["trust-regions"],
        threads=1,
    )
    methods = {r.method for r in result.runs}
    assert {"cwy", "tcwy", "cayley", "exp", "qr", "geoopt-canonical", "pymanopt"} <= methods
    for run in result.runs:
        assert _det(run.point) == -1, run.label
        assert run.converged, run.label
        assert run.gap[-1] <= 1e-6, run.label
    assert not result.warnings
    assert not any(note.startswith("skipped") for note in result.notes)


@pytest.mark.parametrize("name", ["cwy", "tcwy", "cayley", "exp", "qr"])
def test_every_package_manifold_is_built_with_the_reference_determinant(det_minus_one, name):
    (choice,) = resolve_methods([name], det_minus_one)
    assert choice.takes_det
    assert choice.manifold(-1).det == -1
    assert choice.manifold(1).det == 1


def test_geoopt_manifolds_start_from_the_matrix(det_minus_one):
    (choice,) = resolve_methods(["geoopt-canonical"], det_minus_one)
    assert not choice.takes_det
    assert choice.manifold(-1) is not None


def test_a_method_that_cannot_reach_the_component_runs_with_a_warning(det_minus_one):
    result = compare(
        det_minus_one,
        methods={"cwy-plus": cm.CWY(det=1), "qr-plus": cm.QRStiefel(det=1), "tcwy": "tcwy"},
        optimizers="radam",
        lr=0.3,
        steps=5,
        **FAST,
    )
    assert [r.method for r in result.runs] == ["cwy-plus", "qr-plus", "tcwy"]
    assert [_det(r.point) for r in result.runs] == [1, 1, -1]
    assert len(result.warnings) == 2
    assert all("cannot reach the optimum" in w for w in result.warnings)
    assert "warning: cwy-plus cannot stand for matrices of determinant -1" in result.format_table()
    assert "warning: qr-plus cannot stand for matrices of determinant -1" in result.format_table()


def test_a_run_ending_in_the_other_component_is_warned_about():
    sol = haar(4, det=-1, seed=0)

    class Teleport(torch.optim.Optimizer):
        """Jumps to a matrix of the other component: impossible for a continuous method."""

        def __init__(self, params, lr):
            super().__init__(params, {"lr": lr})

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    p.data.copy_(haar(4, det=1, seed=1))

    prob = Problem.from_function(
        lambda x: (x - sol.to(x)).square().sum(), 4, 4, group="o", solution=sol
    )
    result = compare(prob, methods="qr", optimizers={"teleport": Teleport}, lr=1.0, steps=1, **FAST)
    assert result.warnings == [
        "qr/teleport (seed 0) ended with det +1, in the other component of O(n) from the "
        "reference solution (det -1): it cannot reach the optimum."
    ]


def test_without_a_reference_both_components_are_tried_and_the_better_reported():
    target = haar(5, det=-1, seed=3)
    prob = Problem.from_function(lambda x: (x - target.to(x)).square().sum(), 5, 5, group="o")
    assert prob.component is None
    result = compare(prob, methods=["cwy", "qr"], optimizers="radam", lr=0.1, steps=300, **FAST)
    for run in result.runs:
        assert _det(run.point) == -1
        assert run.final_loss < 1e-8
    assert sum("ran from both components of O(n)" in n for n in result.notes) == 2


def test_so_problems_start_in_so():
    """Odd n included: T-CWY applies the sign flip D for det +1, as CWY does."""
    trap = Procrustes.determinant_trap(5)
    result = compare(trap, optimizers="radam", lr=0.1, steps=3, **FAST)
    assert all(_det(r.point) == 1 for r in result.runs)
    assert {"cwy", "tcwy", "cayley", "exp", "qr"} <= {r.method for r in result.runs}
    with pytest.raises(ConfigError, match="cwy-minus: m must have determinant"):
        compare(trap, methods={"cwy-minus": cm.CWY(det=-1)}, optimizers="radam", lr=0.1, **FAST)


def test_both_components_optimal_runs_once_in_either():
    prob = Brockett.random(4, 4, group="o", seed=0)
    assert prob.component is None
    assert prob.column_signs_free
    result = compare(prob, methods=["cwy", "tcwy", "qr"], optimizers="radam", lr=0.1, **FAST)
    assert len(result.runs) == 3
    assert all(r.converged for r in result.runs)
    assert not any("both components" in n for n in result.notes)
