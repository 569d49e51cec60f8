"""scripts/steps_bench.py: the optima of its problems, and its learning-rate race."""

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cwy_manifolds as cm

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "steps_bench.py"
spec = importlib.util.spec_from_file_location("steps_bench", SCRIPT)
steps_bench = importlib.util.module_from_spec(spec)
sys.modules["steps_bench"] = steps_bench  # dataclasses look their module up
spec.loader.exec_module(steps_bench)
F64 = torch.float64


def _symmetric(form, n):
    """The symmetric A of a quadratic form x -> x^T A x, by polarisation (NumPy)."""
    eye = torch.eye(n, dtype=F64)
    return np.array(
        [[(form(eye[i] + eye[j]) - form(eye[i] - eye[j])) / 4 for j in range(n)] for i in range(n)]
    )


def test_dominant_optimum_is_minus_the_top_eigenvalues():
    problem = steps_bench.dominant(40, 3)
    a = _symmetric(lambda x: -float(problem.loss(x[:, None])), 40)
    values = np.linalg.eigvalsh(a)
    assert problem.fstar == pytest.approx(-values[-3:].sum(), rel=1e-12)
    assert values[-3] - values[-4] == pytest.approx(0.1, rel=1e-9)  # the eigengap
    assert values[0] < 0 < values[-1]  # indefinite


def test_brockett_optimum_pairs_ascending_eigenvalues_with_descending_weights():
    """Against brute force: the loss at every ordered choice of 3 of the 5 lowest eigenvectors."""
    problem = steps_bench.brockett(12, 3)
    zero = torch.zeros(12, dtype=F64)
    # with X = [x, 0, 0] the loss is N_11 x^T A x = 3 x^T A x
    a = _symmetric(lambda x: float(problem.loss(torch.stack([x, zero, zero], 1))) / 3, 12)
    vectors = np.linalg.eigh(a)[1]
    best = min(
        float(problem.loss(torch.from_numpy(vectors[:, list(idx)].copy())))
        for idx in itertools.permutations(range(5), 3)
    )
    assert problem.fstar == pytest.approx(best, rel=1e-10)


def test_procrustes_optimum_has_determinant_minus_one():
    problem = steps_bench.procrustes(6)
    assert problem.det == -1
    prob = cm.problems.Procrustes.random(6, group="o", det=-1, seed=0)
    assert problem.fstar == prob.optimum
    assert float(torch.linalg.det(prob.solution)) == pytest.approx(-1)


def test_the_race_finds_the_fewest_steps_of_the_grid(monkeypatch):
    """The lockstep race gives what running every learning rate to the end gives."""
    problem = steps_bench.pca(12, 3)
    start = cm.QRStiefel().random(12, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    grid = (1.0, 3.0, 10.0)
    monkeypatch.setattr(steps_bench, "GRID", grid)
    race = steps_bench.best_lr(problem, cm.TCWY, "rsgd", start, 1e-5, 300)
    alone = {}
    for lr in grid:
        monkeypatch.setattr(steps_bench, "GRID", (lr,))
        alone[lr] = steps_bench.best_lr(problem, cm.TCWY, "rsgd", start, 1e-5, 300).steps
    assert race.steps == min(k for k in alone.values() if k is not None)
    assert alone[race.lr] == race.steps


def test_tables_have_the_matrix_gradient_for_square_problems_only(monkeypatch, capsys):
    monkeypatch.setattr(steps_bench, "GRID", (1.0,))
    suite = [steps_bench.pca(12, 3), steps_bench.procrustes(6)]
    steps_bench.run_tables(suite, 1e-3, 30, verbose=False)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| (")]
    assert len(rows) == 4  # two problems, two optimizers
    for row in rows:
        cells = row.split(" | ")
        assert len(cells) == 11  # the problem, seven manifolds, three ratios
        assert ("n/a" in cells[7]) == ("pca" in row)  # CWY(gradient="matrix"): square only


def test_only_selects_problems_by_letter():
    assert [p.name[:3] for p in steps_bench.problems(True, "bd")] == ["(b)", "(d)"]
    with pytest.raises(SystemExit):
        steps_bench.main(["--only", "e", "--no-tables"])
