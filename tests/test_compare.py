"""compare(): what it runs, what it accepts and refuses, what it reports."""

import csv
import json
import math
import re
import sys

import geoopt
import numpy as np
import pytest
import torch
from _harness import one_thread  # noqa: F401

import cwy_manifolds as cm
from cwy_manifolds import compare
from cwy_manifolds.problems import PCA, Problem, Procrustes
from cwy_manifolds.registry import METHODS
from cwy_manifolds.tools.choices import resolve_methods
from cwy_manifolds.tools.results import Comparison, ConfigError, Run
from cwy_manifolds.tools.tables import format_comparison

GRID = (0.1, 0.3, 1.0, 3.0)
FAST = {"references": [], "lr_grid": GRID, "threads": 1}


@pytest.fixture(scope="module")
def pca_result():
    """One small comparison with two seeds and pymanopt, shared by the read-only tests."""
    return compare(PCA.random(8, 2, seed=1), lr_grid=GRID, seeds=2, threads=1)


def test_every_pair_reaches_the_optimum_and_stops_there(pca_result):
    rows = pca_result.table()
    pairs = {(r["method"], r["optimizer"]) for r in rows}
    for method in ("tcwy", "cayley", "exp", "qr", "geoopt-canonical"):
        assert {(method, "rsgd"), (method, "radam")} <= pairs
    for row in rows:
        assert row["converged"] == 2, row
        assert row["gap"] <= 1e-6, row
        assert row["max_feasibility"] < 1e-12, row
        assert row["stop_code"] == "gap"
        assert row["steps_to_tol"] == row["steps"]


def test_pymanopt_solvers_run_on_their_manifold_and_on_the_vectors(pca_result):
    pytest.importorskip("pymanopt")
    rows = {(r["method"], r["optimizer"]): r for r in pca_result.table()}
    for label in ("pymanopt-sd", "pymanopt-cg", "pymanopt-tr"):
        for method in ("pymanopt", "tcwy"):
            assert rows[(method, label)]["converged"] == 2
            assert rows[(method, label)]["lr"] is None


def test_seeds_share_starts_across_pairs_and_differ_between_seeds(pca_result):
    by_seed = {}
    for run in pca_result.runs:
        by_seed.setdefault(run.seed, []).append(run.loss[0])
    assert sorted(by_seed) == [0, 1]
    for losses in by_seed.values():
        assert max(losses) - min(losses) < 1e-12
    assert abs(by_seed[0][0] - by_seed[1][0]) > 1e-6


def test_rows_summarise_seeds_as_median_and_range(pca_result):
    for row in pca_result.table():
        assert row["seeds"] == 2
        assert row["steps_min"] <= row["steps"] <= row["steps_max"]
        assert row["cpu_s_min"] <= row["cpu_s"] <= row["cpu_s_max"]
    text = pca_result.format_table()
    assert "2 seeds per pair (median [min-max])" in text
    assert "process CPU seconds" in text
    assert "load average" in text


def test_runs_keep_final_point_loss_and_traces(pca_result):
    prob = pca_result.problem
    for run in pca_result.runs:
        assert run.point.shape == (8, 2)
        assert run.point.dtype == torch.float64
        assert run.final_loss == pytest.approx(float(prob.loss(run.point)), abs=1e-12)
        assert run.step == sorted(run.step)
        assert run.step[0] == 0
        assert run.seconds == sorted(run.seconds)
        assert run.cpu_seconds == sorted(run.cpu_seconds)
        n = len(run.step)
        assert len(run.loss) == len(run.gap) == len(run.grad_norm) == len(run.cpu_seconds) == n
        assert run.extras["principal_angle"] < 1e-2


def test_learning_rate_grid_is_searched_and_shown(pca_result):
    for pair in pca_result.pairs():
        run = pca_result.runs_of(*pair)[0]
        if run.lr is None:
            continue
        assert list(run.lr_grid) == list(GRID)
        assert run.lr_grid[run.lr] == f"{run.steps} steps"
    assert "outcome for each learning rate tried" in pca_result.format_table()


def test_table_shows_final_loss_and_gradient_always_and_gap_when_known():
    user = Problem.from_function(lambda x: -(x[:2] ** 2).sum(), 5, 2, name="user")
    result = compare(user, methods="qr", optimizers="radam", lr=0.3, **FAST)
    text = result.format_table()
    assert "final loss" in text
    assert "|grad|" in text
    assert " gap " not in text
    assert "optimum unknown" in text
    row = result.table()[0]
    assert row["converged"] == 1
    assert row["stop_code"] == "grad"
    assert row["loss"] == pytest.approx(-2.0, abs=1e-9)
    assert math.isnan(row["gap"])


def test_csv_and_json(pca_result, tmp_path):
    with open(pca_result.to_csv(tmp_path / "s.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(pca_result.pairs())
    assert float(rows[0]["loss"]) == pytest.approx(pca_result.table()[0]["loss"])
    data = json.loads(pca_result.to_json(tmp_path / "r.json").read_text())
    assert data["settings"]["n"] == 8
    assert data["settings"]["seeds"] == [0, 1]
    assert data["runs"][0]["loss"] == pca_result.runs[0].loss
    assert "point" not in data["runs"][0]
    assert len(data["settings"]["load_average"]) == 3


def test_an_empty_comparison_writes_a_header(tmp_path):
    empty = Comparison(PCA.random(4, 2), [], {"seeds": [0]}, interrupted=True)
    lines = empty.to_csv(tmp_path / "s.csv").read_text().splitlines()
    assert lines[0].startswith("problem,method,optimizer")
    assert len(lines) == 1
    assert "(no runs finished)" in format_comparison(empty)


# -- methods and optimizers given as objects ---------------------------------------------


def test_manifold_instances_labels_and_optimizer_factories():
    def sgd(params, lr):
        return geoopt.optim.RiemannianSGD(params, lr=lr)

    result = compare(
        PCA.random(6, 2, seed=0),
        methods=[("tcwy-gauge", cm.TCWY()), cm.QRStiefel(), "cayley"],
        optimizers={"plain-rsgd": sgd, "radam": "radam"},
        lr=0.3,
        **FAST,
    )
    assert result.pairs() == [
        ("tcwy-gauge", "plain-rsgd"),
        ("tcwy-gauge", "radam"),
        ("QRStiefel(det=None)", "plain-rsgd"),
        ("QRStiefel(det=None)", "radam"),
        ("cayley", "plain-rsgd"),
        ("cayley", "radam"),
    ]
    assert all(row["converged"] for row in result.table())


def test_registry_names_take_constructor_options():
    """'name(key=value, ...)': the registry's factory with the options, det still set."""
    problem = Procrustes.random(6, group="o", det=-1, seed=0)
    (choice,) = resolve_methods("cwy(gradient=matrix, gauge='unit')", problem)
    manifold = choice.manifold(-1)  # the optimum's component, as for plain names
    assert (manifold.det, manifold.gradient, manifold.gauge) == (-1, "matrix", "unit")
    (fixed,) = resolve_methods("qr(det=1)", problem)  # an explicit det is used as given
    assert fixed.manifold(-1).det == 1
    result = compare(problem, methods=["cwy(gradient=matrix)", "cwy"], optimizers="rsgd",
                     lr=1.0, steps=400, **FAST)  # fmt: skip
    assert [run.method for run in result.runs] == ["cwy(gradient=matrix)", "cwy"]
    assert all(run.converged for run in result.runs)
    table = format_comparison(result).splitlines()
    row = next(line for line in table if line.startswith("cwy(gradient=matrix)"))
    assert row.split()[:2] == ["cwy(gradient=matrix)", "rsgd"]  # the label is not cut
    assert row.index("rsgd") == table[table.index(row) - 2].index("optimizer")  # aligned


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cwy(gradient=natural)", "could not be built: gradient must be one of"),
        ("cwy(colour=1)", "could not be built"),
        ("cwy(gradient)", "must be key=value pairs; got 'gradient'"),
        ("cwy(det=1, det=-1)", "must not repeat a key; got 'det' twice"),
        ("cwz(det=1)", "methods must be among cwy, tcwy"),
    ],
)
def test_bad_method_options_fail_in_one_line(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_methods(spec, Procrustes.random(4, group="o"))


def test_a_bare_string_is_one_name():
    result = compare(PCA.random(6, 2), methods="tcwy", optimizers="adam", lr=0.1, steps=3, **FAST)
    assert result.pairs() == [("tcwy", "adam")]


@pytest.mark.parametrize(
    "lr",
    [
        np.float32(0.1),
        np.float64(0.1),
        torch.tensor(0.1),
        torch.tensor(0.1, dtype=torch.float64),
        1,
    ],
    ids=["np-float32", "np-float64", "tensor-0d", "tensor-0d-f64", "int"],
)
def test_learning_rates_may_be_any_real_number(lr):
    result = compare(PCA.random(6, 2), methods="qr", optimizers="rsgd", lr=lr, steps=2, **FAST)
    assert result.runs[0].lr == pytest.approx(float(lr))
    assert isinstance(result.runs[0].lr, float)


@pytest.mark.parametrize(
    "name", ["tcwy", "cayley", "exp", "qr", "geoopt-canonical", "geoopt-euclidean", "geoopt-exact"]
)
def test_line_search_runs_on_every_thin_manifold(name):
    result = compare(PCA.random(6, 2), methods=name, optimizers="line-search", steps=100, **FAST)
    run = result.runs[0]
    assert run.lr is None
    assert run.lr_grid == {}
    assert run.converged, run.stop_reason


def test_line_search_runs_on_cwy():
    result = compare(
        Procrustes.random(4, group="so"), methods="cwy", optimizers="line-search", steps=150, **FAST
    )
    assert result.runs[0].converged


def test_matrix_gradient_runs_in_the_harness_with_sgd_adam_and_line_search():
    """CWY(gradient="matrix") as a labelled instance; the line search relies on its inner."""
    result = compare(
        Procrustes.random(5, group="so"),
        methods=[("cwy-matrix", cm.CWY(gradient="matrix"))],
        optimizers=["rsgd", "radam", "line-search"],
        lr=0.3,
        steps=300,
        **FAST,
    )
    assert [run.optimizer for run in result.runs] == ["rsgd", "radam", "line-search"]
    assert all(run.converged for run in result.runs), [r.stop_reason for r in result.runs]


# -- refused up front ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"methods": ["cwz"]}, "methods must be among cwy, tcwy, cayley, .*; got 'cwz'"),
        ({"methods": "tcwz"}, "got 'tcwz'"),
        ({"methods": ["cwy"]}, "cwy stands for square matrices"),
        ({"methods": []}, "methods must name at least one"),
        ({"methods": [torch.eye(2)]}, "methods must be registry names or geoopt manifolds"),
        (
            {"methods": [cm.QRStiefel(), cm.QRStiefel()]},
            "labels must be unique; got 'QRStiefel\\(det=None\\)'",
        ),
        ({"optimizers": ["lbfgs"]}, "optimizers must be among rsgd, radam, .*; got 'lbfgs'"),
        ({"optimizers": [3]}, "optimizers must be registry names or factories"),
        ({"methods": ["qr"], "optimizers": ["adam"]}, "optimizer 'adam' cannot run on method 'qr'"),
        ({"references": ["newton"]}, "references must be among"),
        ({"steps": 0}, "steps must be at least 1; got 0"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"lr": -1.0}, "lr must be a positive finite number"),
        ({"lr": True}, "lr must be a positive number; got True"),
        ({"lr": np.bool_(True)}, "lr must be a positive number"),
        ({"lr": torch.tensor([0.1])}, "lr must be a positive number"),
        ({"lr": float("nan")}, "lr must be a positive finite number"),
        ({"lr_grid": []}, "lr_grid must hold at least one"),
        ({"seed": -1}, "seed must be at least 0 and below 2\\*\\*63; got -1"),
        ({"seed": 2**63}, "seed must be at least 0 and below 2\\*\\*63"),
        ({"seeds": 0}, "seeds must be at least 1"),
        ({"seeds": [1, 1]}, "seeds must be distinct"),
        ({"device": "meta"}, "device must be 'cpu' or 'cuda\\[:k\\]'; got 'meta'"),
        ({"device": "warp-drive"}, "device must be 'cpu' or 'cuda"),
        ({"dtype": torch.float16}, "dtype must be torch.float32 or torch.float64"),
        ({"progress": "fancy"}, "progress must be"),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, str) else None,
)
def test_bad_settings_are_refused_in_one_line(kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        compare(PCA.random(6, 2), **{"references": [], **kwargs})
    assert "\n" not in str(info.value)


def test_invalid_pairs_can_be_skipped_with_a_note():
    result = compare(
        PCA.random(6, 2),
        methods=["tcwy", "qr"],
        optimizers=["adam"],
        lr=0.1,
        steps=2,
        skip_invalid=True,
        **FAST,
    )
    assert result.pairs() == [("tcwy", "adam")]
    assert any("skipped: optimizer 'adam' cannot run on method 'qr'" in n for n in result.notes)


def test_not_a_problem():
    with pytest.raises(ConfigError, match="problem must be"):
        compare(torch.eye(3))


def test_references_need_pymanopt(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymanopt", None)  # import fails
    result = compare(PCA.random(6, 2), methods=["qr"], optimizers=["radam"], steps=2, lr=0.1)
    assert [r.method for r in result.runs] == ["qr"]
    with pytest.raises(ConfigError, match="pip install pymanopt"):
        compare(PCA.random(6, 2), references=["trust-regions"])


def test_a_run_records_what_stopped_it():
    run = Run("qr", "radam", 1.0, stop_reason="reached gap 1e-06 at step 3", stop_code="gap")
    assert run.cost() == math.inf  # not converged: no cost
    run.converged, run.step, run.cpu_seconds, run.seconds = True, [0, 3], [0.0, 0.1], [0.0, 0.2]
    assert (run.cost("steps"), run.cost("cpu"), run.cost("wall")) == (3, 0.1, 0.2)


def test_radam_on_vectors_is_torch_adam():
    kwargs = {"methods": "tcwy", "lr": 0.1, "steps": 20, "tol": None, "grad_tol": None, **FAST}
    adam = compare(PCA.random(6, 2, seed=2), optimizers="adam", **kwargs).runs[0]
    radam = compare(PCA.random(6, 2, seed=2), optimizers="radam", **kwargs).runs[0]
    assert radam.loss == pytest.approx(adam.loss, rel=1e-12)


def test_registry_methods_are_the_default_methods():
    result = compare(Procrustes.random(4, group="so"), optimizers="radam", lr=0.1, steps=2, **FAST)
    defaults = [m for m, method in METHODS.items() if method.default]
    assert [r.method for r in result.runs] == defaults  # n = 4 even: tcwy reaches SO(4)
