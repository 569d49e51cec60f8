"""Suites, performance profiles (Dolan-More) and time-to-tolerance tables."""

import json
import math

import numpy as np
import pytest
from _harness import one_thread  # noqa: F401

from cwy_manifolds.problems import PCA, Brockett, Procrustes
from cwy_manifolds.tools import suite as suite_module
from cwy_manifolds.tools.profiles import performance_profile, profile_summary, ratios
from cwy_manifolds.tools.results import ConfigError
from cwy_manifolds.tools.suite import compare_suite

INF = math.inf
FAST = {"references": [], "threads": 1, "optimizers": "radam", "lr_grid": (0.3, 1.0)}

# costs[solver][problem]; "c" did not run on "q"; nobody solved "r".
COSTS = {
    "a": {"p": 10.0, "q": 4.0, "r": INF},
    "b": {"p": 20.0, "q": 2.0, "r": INF},
    "c": {"p": 5.0, "r": INF},
}


def test_ratios_by_hand():
    assert ratios(COSTS) == {
        "a": {"p": 2.0, "q": 2.0, "r": INF},
        "b": {"p": 4.0, "q": 1.0, "r": INF},
        "c": {"p": 1.0, "r": INF},
    }


def test_profiles_by_hand():
    taus, rho = performance_profile(COSTS, taus=[1.0, 2.0, 4.0, 100.0])
    np.testing.assert_allclose(rho["a"], [0, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho["b"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho["c"], [1 / 2, 1 / 2, 1 / 2, 1 / 2])  # of the 2 it ran on
    taus, _ = performance_profile(COSTS)
    assert taus.tolist() == [1.0, 2.0, 4.0]


def test_profile_summary_by_hand():
    rows = {row["solver"]: row for row in profile_summary(COSTS)}
    assert rows["b"] == {
        "solver": "b",
        "problems": 3,
        "solved": 2 / 3,
        "fastest": 1 / 3,
        "within_2x": 1 / 3,
    }
    assert rows["c"]["problems"] == 2
    assert rows["c"]["fastest"] == 0.5


@pytest.fixture(scope="module")
def small_suite():
    problems = [
        PCA.random(6, 2, seed=0),
        Brockett.random(5, 2, seed=0),
        Procrustes.determinant_trap(4).over("o"),
    ]
    problems[2].name = "trap-o4"
    return compare_suite(problems, methods=["cwy", "tcwy", "qr"], **FAST)


def test_suite_runs_each_problem_with_the_methods_that_apply(small_suite):
    names = [r.problem.name for r in small_suite.comparisons]
    assert names == ["pca", "brockett", "trap-o4"]
    assert small_suite.comparisons[0].pairs() == [("tcwy", "radam"), ("qr", "radam")]
    assert ("cwy", "radam") in small_suite.comparisons[2].pairs()
    steps = small_suite.costs("steps")
    assert set(steps) == {"tcwy/radam", "qr/radam", "cwy/radam"}
    assert set(steps["cwy/radam"]) == {"trap-o4"}


def test_suite_profiles_and_tables(small_suite):
    for measure in ("steps", "cpu"):
        taus, rho = small_suite.profile(measure)
        assert taus[0] == 1.0
        for values in rho.values():
            assert np.all(np.diff(values) >= 0)
            assert 0 <= values[-1] <= 1
    text = small_suite.format()
    assert "CPU seconds (steps) to tolerance" in text
    assert "performance profiles" in text
    assert "fastest (steps)" in text


def test_suite_json(small_suite, tmp_path):
    data = json.loads(small_suite.to_json(tmp_path / "r.json").read_text())
    assert [c["settings"]["problem"] for c in data["comparisons"]] == ["pca", "brockett", "trap-o4"]
    assert set(data["profile_steps"]["profiles"]) == {"tcwy/radam", "qr/radam", "cwy/radam"}


def test_bad_settings_fail_before_the_first_run(monkeypatch):
    ran = []
    monkeypatch.setattr(suite_module, "compare", lambda *a, **k: ran.append(1))
    with pytest.raises(ConfigError, match="optimizer 'adam' cannot run on method 'qr'"):
        compare_suite(
            [PCA.random(4, 2), Procrustes.random(4, group="o")],
            methods=["qr"],
            optimizers="adam",
            references=[],
        )
    assert not ran


def test_unknown_suite():
    with pytest.raises(ConfigError, match="suite must be one of demo, small, full; got 'huge'"):
        compare_suite("huge")


def test_problems_without_any_method_are_skipped_with_a_note():
    result = compare_suite(
        [PCA.random(4, 2), Procrustes.random(4, group="so")],
        methods=["cwy"],
        lr=0.3,
        steps=3,
        **FAST,
    )
    assert [c.problem.name for c in result.comparisons] == ["procrustes"]
    assert result.notes == ["skipped pca: none of the methods applies to it."]


def test_ctrl_c_stops_the_suite_with_what_finished(monkeypatch):
    calls = []
    original = suite_module.compare

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(suite_module, "compare", interrupt_second)
    second = PCA.random(5, 2)
    second.name = "pca-5"
    result = compare_suite([PCA.random(4, 2), second], methods="qr", lr=0.3, **FAST)
    assert result.interrupted
    assert len(result.comparisons) == 1
    assert "interrupted" in result.format()


def test_long_labels_are_not_cut_in_the_suite_tables():
    label = "tcwy(gauge=unit,det=1)-with-a-long-label"
    result = compare_suite([PCA.random(4, 2)], methods={label: "tcwy(gauge=unit,det=1)"}, **FAST)
    rows = [line for line in result.format_profiles().splitlines() if line.startswith(label)]
    assert len(rows) == 2  # the time-to-tolerance table and the profile summary
    assert all(line.split()[0] == f"{label}/radam" for line in rows)
