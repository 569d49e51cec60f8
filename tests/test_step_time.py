"""scripts/step_time.py: the table of optimizer-step times runs and has every row."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "step_time.py"
spec = importlib.util.spec_from_file_location("step_time", SCRIPT)
step_time = importlib.util.module_from_spec(spec)
spec.loader.exec_module(step_time)


def test_table_has_a_row_per_case_and_dtype(capsys):
    step_time.main(["--sizes", "3", "1000x8x8", "--rounds", "1", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# python scripts/step_time.py --sizes 3 1000x8x8 --rounds 1 --repeats 1"
    assert "load average" in lines[1]
    rows = [line.split(" | ") for line in lines if line.startswith(("| 3 ", "| 1000x8x8 "))]
    assert [(r[0], r[1]) for r in rows] == [
        ("| 3", "float64"),
        ("| 3", "float32"),
        ("| 1000x8x8", "float64"),
        ("| 1000x8x8", "float32"),
    ]
    for row in rows:  # five times and two ratios, all positive
        assert all(float(cell.strip(" |")) > 0 for cell in row[2:])


def test_unknown_size_is_rejected():
    with pytest.raises(SystemExit):
        step_time.main(["--sizes", "5"])


def test_matrix_gradient_is_timed_on_request(capsys, monkeypatch):
    made = []
    cwy = step_time.cm.CWY
    monkeypatch.setattr(step_time.cm, "CWY", lambda **kw: made.append(kw) or cwy(**kw))
    step_time.main(["--sizes", "3", "--dtypes", "float64", "--rounds", "1", "--repeats", "1",
                    "--gradient", "matrix"])  # fmt: skip
    assert {"gradient": "matrix"} in made
    assert any(line.startswith("| 3 | float64 |") for line in capsys.readouterr().out.splitlines())
