"""The comparison harness, its plots and the `compare` command."""

import csv
import json
import sys

import pytest
import torch

from cwy_manifolds import compare
from cwy_manifolds.cli import main
from cwy_manifolds.problems import PCA, Procrustes
from cwy_manifolds.tools.compare import _Progress
from cwy_manifolds.tools.plots import plot_comparison
from cwy_manifolds.tools.results import ConfigError, Run

GRID = (0.1, 1.0, 10.0)


@pytest.fixture(scope="module")
def pca_result():
    """One small comparison shared by the read-only tests below."""
    return compare(PCA.random(10, 3, seed=1), steps=150, lr_grid=GRID, optimizers=["rsgd", "radam"])


def test_every_method_reaches_the_optimum(pca_result):
    rows = pca_result.table()
    pairs = {(r["method"], r["optimizer"]) for r in rows}
    for method in ("tcwy", "cayley", "exp", "qr", "geoopt-canonical"):
        assert {(method, "rsgd"), (method, "radam")} <= pairs
    for row in rows:
        assert row["gap"] < 1e-6, row
        assert row["max_feasibility"] < 1e-12, row


def test_runs_start_from_the_same_matrix(pca_result):
    first = [run.loss[0] for run in pca_result.runs]
    assert max(first) - min(first) < 1e-12
    assert all(run.step[0] == 0 for run in pca_result.runs)
    assert all(run.seconds[0] == 0 for run in pca_result.runs if run.method != "pymanopt")


def test_grid_is_searched_and_shown(pca_result):
    for run in pca_result.runs:
        if run.method == "pymanopt":
            continue
        assert list(run.lr_grid) == list(GRID)
        assert run.lr in GRID
        assert run.lr_grid[run.lr] == run.gap[-1]
    assert "final gap for each learning rate tried" in pca_result.format_table()


def test_steps_to_tol_count_from_where_the_gap_stays_below():
    run = Run("qr", "radam", 1.0, "test", gap=[1.0, 1e-7, 1.0, 1e-7, 1e-8])
    assert run.first_within(1e-6) == 3
    assert Run("qr", "radam", 1.0, "test", gap=[1.0, 1e-7, 1.0]).first_within(1e-6) is None


def test_traces_are_monotone_in_steps_and_time(pca_result):
    for run in pca_result.runs:
        assert run.step == sorted(run.step)
        assert run.seconds == sorted(run.seconds)
        assert len(run.step) == len(run.loss) == len(run.gap) == len(run.feasibility)


def test_pymanopt_reference_rows(pca_result):
    pytest.importorskip("pymanopt")
    rows = [r for r in pca_result.table() if r["method"] == "pymanopt"]
    assert [r["optimizer"] for r in rows] == [
        "steepest-descent",
        "conjugate-gradient",
        "trust-regions",
    ]
    assert all(r["gap"] < 1e-8 for r in rows)


def test_csv_and_json(pca_result, tmp_path):
    with open(pca_result.to_csv(tmp_path / "s.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(pca_result.runs)
    assert float(rows[0]["gap"]) == pytest.approx(pca_result.table()[0]["gap"])
    data = json.loads(pca_result.to_json(tmp_path / "r.json").read_text())
    assert data["settings"]["n"] == 10
    assert data["runs"][0]["loss"] == pca_result.runs[0].loss


def test_plots_are_written(pca_result, tmp_path):
    paths = plot_comparison(pca_result, tmp_path / "plots")
    assert [p.name for p in paths] == [
        "gap_vs_step.png",
        "gap_vs_time.png",
        "feasibility_vs_step.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_determinant_trap():
    """CWY with det +1 reaches the SO(n) optimum; on O(n), nobody started in SO(n) gets below it."""
    trap = Procrustes.determinant_trap(6)
    so = compare(trap, methods=["cwy"], optimizers=["radam"], references=[], steps=300, lr=0.05)
    assert so.table()[0]["gap"] < 1e-8
    over_o = trap.over("o")
    assert over_o.optimum < trap.optimum  # the O(n) optimum has determinant -1
    o = compare(
        over_o, methods=["cwy", "cayley"], optimizers=["radam"], references=[], steps=300, lr=0.05
    )
    expected = (trap.optimum - over_o.optimum) / max(1.0, abs(over_o.optimum))
    for row in o.table():
        assert row["gap"] >= expected * (1 - 1e-9)
    assert o.table()[0]["gap"] == pytest.approx(expected, rel=1e-9)  # cwy: the SO(n) optimum


def test_fixed_learning_rate_and_torch_optimizers():
    problem = PCA.random(6, 2, seed=2)
    result = compare(problem, optimizers=["radam", "adam", "sgd"], references=[], steps=20, lr=0.5)
    pairs = [(r.method, r.optimizer, r.lr, r.lr_grid) for r in result.runs]
    assert ("tcwy", "adam", 0.5, {}) in pairs
    assert not any(opt in ("adam", "sgd") for method, opt, _, _ in pairs if method != "tcwy")
    traces = {(r.method, r.optimizer): r.loss for r in result.runs}
    # RiemannianAdam on the vectors is torch.optim.Adam
    assert traces[("tcwy", "radam")] == pytest.approx(traces[("tcwy", "adam")], rel=1e-12)


def test_square_defaults_use_cwy_not_tcwy_for_odd_n():
    result = compare(
        Procrustes.random(5, group="so"), optimizers=["radam"], references=[], steps=2, lr=0.1
    )
    methods = [r.method for r in result.runs]
    assert "cwy" in methods
    assert "tcwy" not in methods


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"methods": ["cwz"]},
            "methods must be among cwy, tcwy, cayley, exp, qr, geoopt-canonical, geoopt-euclidean, "
            "geoopt-exact; got 'cwz'",
        ),
        ({"methods": ["cwy"]}, "cwy stands for square matrices"),
        ({"methods": []}, "at least one"),
        ({"optimizers": ["lbfgs"]}, "optimizers must be among rsgd, radam, sgd, adam; got 'lbfgs'"),
        ({"references": ["newton"]}, "references must be among"),
        ({"steps": 0}, "steps must be a positive integer; got 0"),
        ({"lr": -1.0}, "learning rates must be positive"),
        ({"lr_grid": []}, "learning rates must be positive"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        compare(PCA.random(6, 2), **{"references": [], **kwargs})


def test_odd_square_tcwy_is_refused():
    with pytest.raises(ConfigError, match="tcwy with M = N = 5"):
        compare(Procrustes.random(5, group="so"), methods=["tcwy"], references=[])


def test_not_a_problem():
    with pytest.raises(ConfigError, match="problem must be"):
        compare(torch.eye(3))


def test_references_need_pymanopt(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymanopt", None)  # import fails
    result = compare(PCA.random(6, 2), methods=["qr"], optimizers=["radam"], steps=2, lr=0.1)
    assert [r.method for r in result.runs] == ["qr"]
    with pytest.raises(ConfigError, match="pip install pymanopt"):
        compare(PCA.random(6, 2), references=["trust-regions"])


def test_progress_bar(capsys):
    bar = _Progress(2, enabled=True)
    bar.began -= 10  # pretend the runs have taken a while
    bar.advance("qr/radam")
    bar.close()
    assert "compare [###############...............] 1/2 qr/radam" in capsys.readouterr().err


# -- the command ------------------------------------------------------------------------

SMALL = ["compare", "--n", "8", "--p", "2", "--steps", "20", "--lr", "0.5"]


def test_cli_end_to_end(tmp_path, capsys):
    assert main([*SMALL, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "tcwy" in out
    assert "steps to 1e-06" in out
    assert "wrote:" in out
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "feasibility_vs_step.png",
        "gap_vs_step.png",
        "gap_vs_time.png",
        "results.json",
        "summary.csv",
    ]


@pytest.mark.parametrize("problem", ["procrustes", "trap"])
def test_cli_square_problems(problem, tmp_path, capsys):
    argv = [
        "compare",
        "--problem",
        problem,
        "--group",
        "so",
        "--n",
        "4",
        "--steps",
        "5",
        "--lr",
        "0.1",
        "--references",
        "--no-plots",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    assert "cwy " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "cwz"], "invalid choice: 'cwz' (choose from 'cwy', 'tcwy', 'cayley'"),
        (["--optimizers", "lbfgs"], "invalid choice: 'lbfgs'"),
        (["--problem", "mnist"], "invalid choice: 'mnist'"),
        (["--p", "9"], "p must be at most n"),
        (["--steps", "0"], "must be a positive integer; got 0"),
        (["--n", "-3"], "must be a positive integer; got -3"),
        (["--lr", "nan"], "must be a positive number"),
        (["--methods", "cwy"], "cwy stands for square matrices"),
        (["--problem", "digits", "--n", "10"], "--n must be 64 for digits"),
        (["--device", "cuda:7"], "--device must be available"),
        (["--device", "warp-drive"], "device"),
    ],
)
def test_cli_bad_input_is_one_line(extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*SMALL, "--out", str(tmp_path), *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as info:
        main([*SMALL, "--out", str(blocker / "sub")])
    assert info.value.code == 2
    assert "--out must be a writable folder" in capsys.readouterr().err
