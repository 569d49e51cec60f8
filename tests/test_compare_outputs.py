"""Output files written together, plots, and Ctrl-C leaving consistent files."""

import csv
import json

import pytest
from _harness import one_thread  # noqa: F401

from cwy_manifolds import compare
from cwy_manifolds.cli import main
from cwy_manifolds.problems import PCA, Procrustes
from cwy_manifolds.tools import execute
from cwy_manifolds.tools.output import MANIFEST, check_folder, write_files
from cwy_manifolds.tools.plots import comparison_figures, suite_figures
from cwy_manifolds.tools.results import ConfigError
from cwy_manifolds.tools.suite import compare_suite

SMALL = ["compare", "--n", "6", "--p", "2", "--lr", "0.3", "--references", "--threads", "1"]


def test_write_files_replaces_the_previous_set_together(tmp_path):
    write_files(
        tmp_path, {"a.txt": lambda p: p.write_text("old"), "b.png": lambda p: p.write_text("old")}
    )
    (tmp_path / "notes.txt").write_text("not ours")
    paths = write_files(tmp_path, {"a.txt": lambda p: p.write_text("new")})
    assert paths == [tmp_path / "a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "a.txt", "notes.txt"]
    assert (tmp_path / "a.txt").read_text() == "new"
    assert json.loads((tmp_path / MANIFEST).read_text()) == ["a.txt"]


def test_a_failing_writer_leaves_the_previous_files(tmp_path):
    write_files(tmp_path, {"a.txt": lambda p: p.write_text("old")})

    def fail(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_files(tmp_path, {"a.txt": lambda p: p.write_text("new"), "b.txt": fail})
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old"


def test_known_names_from_older_runs_are_removed(tmp_path):
    (tmp_path / "gap_vs_step.png").write_text("stale")
    write_files(tmp_path, {"summary.csv": lambda p: p.write_text("x")}, known=["gap_vs_step.png"])
    assert not (tmp_path / "gap_vs_step.png").exists()


def test_check_folder_refuses_a_directory_at_an_output_name(tmp_path):
    (tmp_path / "results.json").mkdir()
    with pytest.raises(ConfigError, match="--out must not hold a non-file at an output name"):
        check_folder(tmp_path, ["summary.csv", "results.json"])


def test_check_folder_refuses_an_unwritable_place(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--out must be a writable folder"):
        check_folder(tmp_path / "file" / "sub", ["summary.csv"])


# -- plots ---------------------------------------------------------------------------------


def _styles(ax):
    return [(line.get_color(), line.get_marker(), line.get_linestyle()) for line in ax.get_lines()]


def test_comparison_plots_have_distinct_lines_log_time_and_outside_legends():
    pytest.importorskip("pymanopt")
    result = compare(
        PCA.random(6, 2), methods=["tcwy", "qr"], optimizers=["rsgd", "radam"], lr=0.3, threads=1
    )
    figures = comparison_figures(result)
    assert list(figures) == ["gap_vs_step.png", "gap_vs_time.png", "feasibility_vs_step.png"]
    for name, fig in figures.items():
        (ax,) = fig.axes
        styles = _styles(ax)
        assert len(styles) == len(result.pairs()) == 10  # 4 + pymanopt on 2 manifolds x 3
        assert len(set(styles)) == len(styles), name
        assert ax.get_legend() is None
        assert len(fig.legends) == 1
        assert ax.get_yscale() == "log"
    assert figures["gap_vs_time.png"].axes[0].get_xscale() == "log"


def test_profile_plot():
    suite = compare_suite(
        [PCA.random(6, 2), Procrustes.random(4, group="so")],
        methods=["tcwy", "qr"],
        optimizers="radam",
        lr=0.3,
        references=[],
        threads=1,
    )
    figures = suite_figures(suite)
    assert list(figures) == ["profile.png", "pca.png", "procrustes.png"]
    steps_ax, time_ax = figures["profile.png"].axes
    assert steps_ax.get_xscale() == time_ax.get_xscale() == "log"
    assert len(set(_styles(steps_ax))) == 2
    assert steps_ax.get_legend() is None


# -- the command: Ctrl-C, refused pairs, folders ---------------------------------------------


def _interrupt_after(monkeypatch, count):
    original = execute.PairRunner.pair
    done = []

    def pair(self, pair):
        if len(done) == count:
            raise KeyboardInterrupt
        done.append(1)
        return original(self, pair)

    monkeypatch.setattr(execute.PairRunner, "pair", pair)


def test_ctrl_c_writes_the_finished_runs_and_nothing_stale(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main([*SMALL, "--out", str(out)]) == 0  # a previous, complete run with plots
    capsys.readouterr()
    _interrupt_after(monkeypatch, 3)
    assert main([*SMALL, "--out", str(out), "--no-plots"]) == 130
    printed = capsys.readouterr()
    assert "interrupted: writing the runs that finished" in printed.out
    assert "Traceback" not in printed.err
    names = sorted(p.name for p in out.iterdir())
    assert names == [MANIFEST, "report.txt", "results.json", "summary.csv"]  # old PNGs gone
    with open(out / "summary.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    data = json.loads((out / "results.json").read_text())
    assert data["interrupted"] is True
    assert len(data["summary"]) == 3


def test_refused_pair_exits_2_in_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main([*SMALL, "--methods", "qr", "--optimizers", "adam", "--out", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "optimizer 'adam' cannot run on method 'qr'" in err
    assert "--skip-invalid" in err
    assert err.count("\n") == 1
    assert not (out / "summary.csv").exists()


def test_skip_invalid_runs_the_rest_with_a_note(tmp_path, capsys):
    argv = [*SMALL, "--methods", "qr", "tcwy", "--optimizers", "adam", "--skip-invalid"]
    assert main([*argv, "--no-plots", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "note: skipped: optimizer 'adam' cannot run on method 'qr'" in out


@pytest.mark.parametrize("name", ["results.json", "gap_vs_time.png"])
def test_a_directory_in_the_way_fails_up_front(name, tmp_path, capsys):
    (tmp_path / name).mkdir()
    with pytest.raises(SystemExit) as info:
        main([*SMALL, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "--out must not hold a non-file at an output name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_ctrl_c_before_any_run_is_one_line(tmp_path, capsys, monkeypatch):
    from cwy_manifolds.cli import compare as command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "problems_from_args", interrupted)
    assert main([*SMALL, "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err == "interrupted: nothing new was written\n"
    assert list(tmp_path.iterdir()) == []
