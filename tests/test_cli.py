"""The command line, called in-process through main(argv)."""

import subprocess
import sys

import pytest

from cwy_manifolds.cli import main


def test_demo_prints_table(capsys):
    assert main(["demo", "--sizes", "8", "16", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("cwy ", "tcwy "))]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("cwy", "8", "8"),
        ("tcwy", "8", "1"),
        ("cwy", "16", "16"),
        ("tcwy", "16", "2"),
    ]
    errors = [float(r[3]) for r in rows]
    assert all(0 <= e < 1e-5 for e in errors)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--sizes", "0"], "must be a positive integer; got 0"),
        (["demo", "--dtype", "float8"], "invalid choice: 'float8'"),
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
    assert main([*argv, "--methods", "cwy", "torch_cayley", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "torch_cayley" in printed
    assert (out / "bench.csv").read_text().count("\n") == 1 + 3  # cwy at L = 6, 1; torch: 6
    assert (out / "bench.png").exists()


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "cwy_manifolds", "demo", "--sizes", "4", "--repeats", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "tcwy" in result.stdout
