"""A shortened scripts/long_run.py: CWY/TCWY do not drift; renormalising keeps norms."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "long_run.py"
spec = importlib.util.spec_from_file_location("long_run", SCRIPT)
long_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(long_run)


@pytest.fixture(scope="module")
def tcwy_runs():
    return {m: long_run.run(m, 1000) for m in ("tcwy", "tcwy, renormalized every 100")}


def test_checkpoints():
    assert long_run.checkpoints(1000) == [0, 10, 100, 1000]
    assert long_run.checkpoints(2500) == [0, 10, 100, 1000, 2500]


def test_no_drift_for_vectors(tcwy_runs):
    """The matrix is recomputed from V: its error stays at the rounding level of one map."""
    level = 10 * 64 * torch.finfo(torch.float32).eps
    for out in tcwy_runs.values():
        assert all(entry["error"] <= level for entry in out.values())


def test_norms_grow_under_sgd_and_renormalizing_resets_them(tcwy_runs):
    plain, renormalized = tcwy_runs["tcwy"], tcwy_runs["tcwy, renormalized every 100"]
    assert plain[0]["norm_mean"] == pytest.approx(1.0)
    assert plain[1000]["norm_mean"] > 2 * plain[10]["norm_mean"] > 2
    assert renormalized[1000]["norm_max"] == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["cayley", "exp", "cwy"])
def test_drift_run_records_the_checkpoints(method):
    """The drift table's runs (``--drift``): bounded by Note [drift] for the retractions."""
    from cwy_manifolds.manifolds.stiefel_math import drift_atol

    shape = (8, 8) if method == "cwy" else (16, 4)
    out = long_run.drift_run(method, "RiemannianAdam", 150, shape=shape)
    assert sorted(out) == [0, 10, 100, 150]
    assert max(out.values()) <= drift_atol(shape[0], torch.float32) + 8 * 2.0**-23
