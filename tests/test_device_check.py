"""scripts/device_check.py: the accelerator checks run (here on the CPU) and pass."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_check.py"
spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
device_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_check)


def test_every_check_passes_on_the_cpu(capsys):
    assert device_check.main(["--device", "cpu", "--sizes", "8", "40"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| check | dtype | error | tolerance | ok |"
    assert len(rows) == 1 + 2 * (4 * 3 + 1) + 4  # header, two sizes, four single checks
    assert all(row.endswith("| yes |") for row in rows[1:])
    assert out.rstrip().endswith("all checks passed")


def test_a_result_that_depends_on_the_dtype_fails_the_run(monkeypatch, capsys):
    """The checks compare with float64 on the CPU: a float32-only error must show."""
    tcwy = device_check.cm.tcwy
    monkeypatch.setattr(
        device_check.cm, "tcwy", lambda v: tcwy(v) + 1e-2 * (v.dtype == device_check.torch.float32)
    )
    assert device_check.main(["--device", "cpu", "--sizes", "8"]) == 1
    assert "| NO |" in capsys.readouterr().out
