"""The command line, called in-process through main(argv)."""

import subprocess
import sys
import textwrap

import pytest
from _harness import one_thread  # noqa: F401

from cwy_manifolds.cli import main

QUICK = ["--lr", "0.3", "--references", "--threads", "1", "--no-plots"]
USER_PROBLEM = '''
    import torch
    from cwy_manifolds.problems import Problem

    A = torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64))


    def top_two():
        """Leading 2-dimensional eigenspace of A, optimum -(6 + 5)."""
        return Problem.from_function(lambda x: -(x * (A.to(x) @ x)).sum(), 6, 2,
                                     optimum=-11.0, name="top-two")
'''


def test_demo_runs_every_parametrization_on_the_demo_suite_with_a_profile(tmp_path, capsys):
    argv = ["demo", "--methods", "cwy", "qr", "--optimizers", "radam", "--seeds", "1"]
    argv += ["--lr-grid", "0.3", "--references", "--threads", "1", "--steps", "60"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("pca-16x4", "brockett-10x3", "trap-o6", "joint-diagonalization-o6"):
        assert name in out
    assert "performance profiles" in out
    assert "CPU seconds (steps) to tolerance" in out
    assert (tmp_path / "profile.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "trap-o6.png").exists()


def test_help_shows_defaults_and_explains_the_run_options(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "maximum steps (solver iterations) per run (default: 500)" in text
    assert (
        "seed of the problem instance and of the first start (0 <= seed < 2**63) (default: 0)"
        in text
    )
    assert "dtype of the optimized parameters (metrics are float64) (default: float64)" in text
    assert "cpu or cuda[:k]" in text
    assert "(default: cpu)" in text
    assert "(default: None)" not in text


def test_progress_is_one_line_per_finished_pair_when_not_a_terminal(tmp_path, capsys):
    argv = ["compare", "--n", "6", "--p", "2", "--methods", "qr", "tcwy", "--optimizers", "radam"]
    assert main([*argv, *QUICK, "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pca [1/2] qr/radam: lr=0.3, ")
    assert lines[1].startswith("pca [2/2] tcwy/radam: lr=0.3, ")


def test_methods_with_constructor_options(tmp_path, capsys):
    argv = ["compare", "--n", "6", "--p", "2", "--optimizers", "rsgd"]
    argv += ["--methods", "tcwy(gauge=free)", "tcwy", *QUICK, "--out", str(tmp_path)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pca [1/2] tcwy(gauge=free)/rsgd: ")
    assert "tcwy(gauge=free)" in (tmp_path / "summary.csv").read_text()


@pytest.mark.parametrize("form", ["file", "module"])
def test_a_user_problem_from_a_file_or_a_module(form, tmp_path, capsys, monkeypatch):
    path = tmp_path / "my_problems.py"
    path.write_text(textwrap.dedent(USER_PROBLEM))
    if form == "module":
        monkeypatch.syspath_prepend(str(tmp_path))
        spec = "my_problems:top_two"
    else:
        spec = f"{path}:top_two"
    argv = ["compare", "--problem", spec, "--methods", "tcwy", "qr", "--optimizers", "radam"]
    assert main([*argv, *QUICK, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "top-two: St(6, 2), optimum -11 (given by the user)" in out
    assert out.count("gap tol") == 2


THIN = ["--n", "6", "--p", "2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            [*THIN, "--seed", "-1"],
            "argument --seed: must be a non-negative integer below 2**63; got -1",
        ),
        (
            [*THIN, "--seed", "99999999999999999999"],
            "argument --seed: must be a non-negative integer",
        ),
        ([*THIN, "--seed", "x"], "argument --seed: must be an integer; got 'x'"),
        ([*THIN, "--device", "meta"], "device must be 'cpu' or 'cuda[:k]'; got 'meta'"),
        ([*THIN, "--device", "cuda:7"], "device must be available"),
        ([*THIN, "--device", "warp-drive"], "device must be 'cpu' or 'cuda[:k]'"),
        (["--n", "100000000"], "n must be small enough to fit in memory: n=100000000 needs about"),
        ([*THIN, "--methods", "cwz"], "invalid choice: 'cwz' (choose from 'cwy', 'tcwy', 'cayley'"),
        ([*THIN, "--methods", "cwz(det=1)"], "invalid choice: 'cwz(det=1)' (choose from 'cwy',"),
        ([*THIN, "--methods", "tcwy(gauge)"], "method options must be key=value pairs"),
        ([*THIN, "--methods", "tcwy(gauge=none)"], "could not be built: gauge must be one of"),
        ([*THIN, "--optimizers", "lbfgs"], "invalid choice: 'lbfgs'"),
        (["--problem", "mnist"], "--problem must be one of pca, dominant-subspace"),
        (["--problem", "no_such_module_xyz:p"], "--problem could not load 'no_such_module_xyz'"),
        (["--problem", "missing.py:p"], "--problem must name an existing file; got 'missing.py'"),
        (["--problem", "math:pi"], "--problem must name a Problem or a zero-argument callable"),
        (["--problem", "math:nothing"], "--problem: 'math' has no attribute 'nothing'"),
        (["--problem", "math:sqrt"], "--problem: calling 'math:sqrt' raised TypeError"),
        (["--suite", "demo", "--n", "8"], "--n does not apply to --suite"),
        (["--n", "6", "--p", "9"], "p must be at most n"),
        ([*THIN, "--steps", "0"], "must be a positive integer; got 0"),
        ([*THIN, "--lr", "nan"], "must be a positive number"),
        ([*THIN, "--methods", "cwy"], "cwy stands for square matrices"),
        (["--problem", "digits", "--n", "10"], "n must be 64 for digits"),
        (["--problem", "trap", "--n", "4", "--p", "3"], "p must equal n for trap"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--out", str(tmp_path), *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert not (tmp_path / "summary.csv").exists()


def test_shape_options_do_not_apply_to_a_loaded_problem(tmp_path, capsys):
    path = tmp_path / "my_problems.py"
    path.write_text(textwrap.dedent(USER_PROBLEM))
    with pytest.raises(SystemExit):
        main(["compare", "--problem", f"{path}:top_two", "--n", "4", "--out", str(tmp_path)])
    assert "--n does not apply to a problem loaded from" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--steps", "0"], "must be a positive integer; got 0"),
        (["compare", "--dtype", "float8"], "invalid choice: 'float8'"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["bench", "--methods", "nope"], "methods must be among cwy, tcwy,"),
        (["bench", "--thin", "4x8"], "thin must be positive with M <= N; got '4x8'"),
        ([], "required: command"),
    ],
)
def test_bad_arguments_exit_with_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_subcommand_writes_table_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--sizes", "6", "--thin", "--batch", "--repeats", "1", "--dtype", "float64"]
    assert main([*argv, "--methods", "cwy", "torch-cayley", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "torch-cayley" in printed
    assert (out / "bench.csv").read_text().count("\n") == 1 + 3  # cwy at L = 6, 1; torch: 6
    assert (out / "bench.png").exists()


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "cwy_manifolds", "bench", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--methods" in result.stdout
