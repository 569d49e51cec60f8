"""The speed benchmark runs end to end on tiny sizes. No timing is asserted anywhere."""

import argparse
import csv
import dataclasses
import math
from pathlib import Path

import pytest
import torch

from cwy_manifolds.cli.bench import add_arguments, run
from cwy_manifolds.tools import bench
from cwy_manifolds.tools.bench import METHODS, benchmark
from cwy_manifolds.tools.bench.report import METRICS

TINY = {"quick": True, "sizes": [8], "thin": ["12x3"], "batch": ["3x4"], "repeats": 1}
KEYS = {
    "kind", "n", "m", "reflections", "batch", "dtype", "device", "method", "family", "note",
    "matmul_ms", "orthogonality_error",
    *(f"{metric}_{what}" for metric in METRICS for what in ("ms", "mm", "vs_peer")),
}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny sizes gain nothing from threads; one thread keeps the runs short on a busy host."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def rows():
    return benchmark(**TINY, dtypes=["float32", "float64"])


def test_rows_have_the_columns_and_cover_every_group(rows):
    assert all(set(r) == KEYS for r in rows)
    groups = {(r["kind"], r["n"], r["m"], r["reflections"], r["batch"], r["dtype"]) for r in rows}
    expected = {("square", 8, 8, refl, 1) for refl in (8, 2, 1)}
    expected |= {("thin", 12, 3, 3, 1), ("batch", 4, 4, 4, 3)}
    assert groups == {(*g, d) for g in expected for d in ("float32", "float64")}
    assert {r["method"] for r in rows if r["kind"] == "thin"} >= {"tcwy", "geoopt-euclidean"}
    assert {r["method"] for r in rows if r["reflections"] == 2} == {
        "cwy", "householder-product", "linalg-householder-product"
    }  # fmt: skip


def test_ratios_positive_and_matrices_orthogonal(rows):
    for r in rows:
        if r["note"]:  # only an unavailable optional peer may be left out here
            assert r["note"].startswith("unavailable")
            continue
        assert r["matmul_ms"] > 0
        timed = [m for m in METRICS if not math.isnan(r[f"{m}_mm"])]
        assert "step" in timed
        for metric in timed:
            assert min(r[f"{metric}_ms"], r[f"{metric}_mm"], r[f"{metric}_vs_peer"]) > 0
        # retractions drift a little over the (up to thousands of) timed steps
        eps = torch.finfo(getattr(torch, r["dtype"])).eps
        assert r["orthogonality_error"] <= eps**0.5, (r["method"], r["orthogonality_error"])


def test_best_peer_has_ratio_one(rows):
    group = [r for r in rows if r["kind"] == "batch" and r["dtype"] == "float64"]
    peers = [r["step_vs_peer"] for r in group if r["family"] == "peer" and not r["note"]]
    assert min(peers) == 1


def test_quick_mode_skips_slow_peers_and_says_why():
    rows = benchmark(
        quick=True, sizes=[], thin=["2048x2"], batch=[], repeats=1,
        methods=["tcwy", "torch-cayley"],
    )  # fmt: skip
    notes = {r["method"]: r["note"] for r in rows}
    assert notes["tcwy"] == ""
    assert notes["torch-cayley"].startswith("skipped in quick mode")
    assert math.isnan(rows[1]["step_mm"])
    assert "skipped in quick mode" in bench.format_table(rows)


def test_unavailable_peer_is_reported(monkeypatch):
    missing = dataclasses.replace(METHODS["geotorch"], requires="no_such_package_for_tests")
    monkeypatch.setitem(METHODS, "geotorch", missing)
    rows = benchmark(sizes=[], thin=[], batch=["2x3"], repeats=1, methods=["cwy", "geotorch"])
    assert rows[1]["note"].startswith("unavailable: no_such_package_for_tests is not installed")


def _args(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_run_writes_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["--sizes", "6", "--thin", "10x2", "--batch", "2x3", "--repeats", "1"]
    args = _args(*argv, "--dtype", "float64", "--methods", "cwy", "tcwy", "torch-cayley",
                 "qr", "--out", str(out))  # fmt: skip
    assert run(args) == 0
    printed = capsys.readouterr().out
    for expected in (f"wrote {out / 'bench.csv'}", f"wrote {out / 'bench.png'}", "torch-cayley"):
        assert expected in printed
    with open(out / "bench.csv") as f:
        table = list(csv.DictReader(f))
    assert set(table[0]) == KEYS
    assert {r["method"] for r in table} == {"cwy", "tcwy", "torch-cayley", "qr"}
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"


BAD = {
    "methods": ({"methods": ["cwy", "nope"]}, "methods must be among .*got 'nope'"),
    "sizes": ({"sizes": [8, 0]}, r"sizes must be positive integers; got \[8, 0\]"),
    "thin-wide": ({"thin": ["4x8"]}, "thin must be positive with M <= N; got '4x8'"),
    "thin-text": ({"thin": ["4by8"]}, "thin must be pairs like 1024x64; got '4by8'"),
    "batch": ({"batch": [(0, 4)]}, "batch must be positive"),
    "dtype": ({"dtypes": ["float16"]}, "dtypes must be among float32, float64; got 'float16'"),
    "repeats": ({"repeats": 0}, "repeats must be positive integers"),
    "device": ({"device": "abacus"}, "device must be 'cpu' or 'cuda"),
    "device-meta": ({"device": "meta"}, "device must be 'cpu' or 'cuda"),
}


@pytest.mark.parametrize("bad", BAD)
def test_bad_arguments_raise_value_error_naming_them(bad):
    kwargs, match = BAD[bad]
    with pytest.raises(ValueError, match=match):
        benchmark(**{**TINY, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda_is_a_value_error():
    with pytest.raises(ValueError, match="device must be available; got 'cuda'"):
        benchmark(**TINY, device="cuda")
    with pytest.raises(ValueError, match="device must be available; got 'cuda:7'"):
        benchmark(**TINY, device="cuda:7")


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_unwritable_out_folder(tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = blocker if where == "file" else blocker / "sub"
    with pytest.raises(ValueError, match="out must be a writable folder"):
        run(_args("--sizes", "4", "--out", str(out)))


def test_bad_arguments_fail_before_creating_anything(tmp_path):
    out = tmp_path / "results"
    with pytest.raises(ValueError, match="methods must be among"):
        run(_args("--methods", "nope", "--out", str(out)))
    assert not out.exists()


def test_huge_sizes_are_refused_before_timing():
    with pytest.raises(ValueError, match="sizes must fit in memory; the largest shape needs"):
        benchmark(sizes=[100_000_000], thin=[], batch=[], repeats=1, methods=["cwy"])


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_pseudo_file_system_out_is_refused_up_front():
    with pytest.raises(ValueError, match="out must be a writable folder; got '/proc/x'"):
        run(_args("--sizes", "4", "--out", "/proc/x"))


def test_folder_in_place_of_an_output_file_is_refused_up_front(tmp_path):
    (tmp_path / "bench.png").mkdir()
    with pytest.raises(ValueError, match="--out must not hold a non-file at an output name"):
        run(_args("--sizes", "4", "--out", str(tmp_path)))
    assert not (tmp_path / "bench.csv").exists()


def test_ctrl_c_writes_the_finished_groups(tmp_path, monkeypatch, capsys):
    from cwy_manifolds.tools.bench import run as engine

    real, calls = engine._group, []

    def interrupt_second_group(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_group", interrupt_second_group)
    out = tmp_path / "results"
    argv = ["--sizes", "4", "8", "--thin", "--batch", "--repeats", "1", "--methods", "cwy"]
    assert run(_args(*argv, "--dtype", "float64", "--out", str(out))) == 130
    assert "interrupted: wrote the 1 rows finished so far" in capsys.readouterr().out
    with open(out / "bench.csv") as f:
        assert [(r["n"], r["method"]) for r in csv.DictReader(f)] == [("4", "cwy")]
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "bench.csv",
        "bench.png",
    ]
