"""The command line, called in-process through main(argv)."""

import subprocess
import sys

import pytest

from cwy_manifolds.cli import main


def test_demo_is_the_comparison(tmp_path, capsys):
    argv = ["--n", "6", "--p", "2", "--steps", "20", "--lr", "0.3", "--methods", "tcwy", "qr"]
    argv += ["--optimizers", "rsgd", "--references", "--no-plots"]
    assert main(["demo", *argv, "--out", str(tmp_path / "demo")]) == 0
    demo = capsys.readouterr().out
    assert main(["compare", *argv, "--out", str(tmp_path / "compare")]) == 0
    compare = capsys.readouterr().out
    rows = [[line.split()[:4] for line in text.splitlines() if line.startswith(("tcwy ", "qr "))]
            for text in (demo, compare)]  # fmt: skip
    assert rows[0] == rows[1]
    assert len(rows[0]) == 2


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
