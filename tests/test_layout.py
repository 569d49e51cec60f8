"""The layout rules: dependencies point inward, one registry, no shadowing, small modules."""

import argparse
import ast
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cwy_manifolds
from cwy_manifolds.cli import _parser
from cwy_manifolds.nn._map import FLAT_METHODS, PACKAGE_METHODS
from cwy_manifolds.registry import METHODS, OPTIMIZERS
from cwy_manifolds.tools import bench

ROOT = Path(cwy_manifolds.__file__).parent
MODULES = sorted(p for p in ROOT.rglob("*.py"))
#: Which top-level parts of the package each part may import (itself included).
ALLOWED = {
    "core": {"core"},
    "manifolds": {"core", "manifolds"},
    "registry": {"manifolds", "registry"},
    "nn": {"core", "manifolds", "registry", "nn"},
    "problems": {"core", "problems"},
    "tools": {"core", "manifolds", "registry", "problems", "tools"},
}
THIRD_PARTY_IN_CORE = ("geoopt", "numpy", "scipy", "matplotlib", "pymanopt", "sklearn")


def _part(path: Path) -> str:
    """The top-level part of the package a file belongs to (``core``, ``nn``, ...)."""
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path):
    """Yield ``(absolute module, imported names)`` for every import in ``path``."""
    package = ".".join(("cwy_manifolds", *path.relative_to(ROOT).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module
            yield module, [alias.name for alias in node.names]


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_dependencies_point_inward(path):
    part = _part(path)
    allowed = ALLOWED.get(part)
    if allowed is None:  # the package root, the CLI, deprecated shims: anything
        return
    for module, names in _imports(path):
        if part == "core":
            assert not module.startswith(THIRD_PARTY_IN_CORE), f"core imports {module}"
        if not module.startswith("cwy_manifolds."):
            continue
        target = module.split(".")[1]
        if target == "cwy_manifolds" or module == "cwy_manifolds":
            continue
        assert target in allowed, f"{part} imports {module}"
        if target != part:  # crossing a boundary: public names only
            private = [n for n in names if n.startswith("_")]
            private += [s for s in module.split(".")[2:] if s.startswith("_")]
            assert not private, f"{part} imports private {private} from {module}"


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= 420


def _packages():
    yield cwy_manifolds
    for info in pkgutil.walk_packages(cwy_manifolds.__path__, "cwy_manifolds."):
        if info.ispkg:
            yield importlib.import_module(info.name)


@pytest.mark.parametrize("package", list(_packages()), ids=lambda p: p.__name__)
def test_no_attribute_shadows_a_submodule(package):
    for info in pkgutil.iter_modules(package.__path__):
        value = getattr(package, info.name, None)
        if value is not None and info.name not in ("bench", "plots"):
            assert value is importlib.import_module(f"{package.__name__}.{info.name}"), (
                f"{package.__name__}.{info.name} is a {type(value).__name__}, not the submodule"
            )


def test_compare_is_the_function_and_the_tools_are_lazy():
    code = "import sys, cwy_manifolds; print('cwy_manifolds.tools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert callable(cwy_manifolds.compare)


def _choices(command: str, option: str) -> list[str]:
    parser = _parser()[1][command]
    (action,) = [a for a in parser._actions if option in a.option_strings]
    return list(action.choices)


def _method_names(command: str) -> list[str]:
    """The names the ``--methods`` type of ``command`` accepts, among names it might."""
    parser = _parser()[1][command]
    (action,) = [a for a in parser._actions if "--methods" in a.option_strings]
    accepted = []
    for name in [*METHODS, *OPTIMIZERS, "cwz", "cwy-manifolds"]:
        try:
            action.type(name)
        except argparse.ArgumentTypeError:
            continue
        accepted.append(name)
    return accepted


def test_one_registry_drives_cli_bench_and_nn():
    assert _method_names("compare") == list(METHODS)
    assert _choices("compare", "--optimizers") == list(OPTIMIZERS)
    assert tuple(name for name, m in METHODS.items() if m.flat) == FLAT_METHODS
    assert set(PACKAGE_METHODS) == {n for n, m in METHODS.items() if m.source == "cwy_manifolds"}
    timed = set(bench.METHODS)
    assert set(METHODS) <= timed  # every registered method under its registered name
    for name, method in bench.METHODS.items():
        if name in METHODS:
            assert method.family == ("ours" if METHODS[name].source == "cwy_manifolds" else "peer")


def test_one_spelling_per_method():
    pattern = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
    for name in [*METHODS, *OPTIMIZERS, *bench.METHODS]:
        assert pattern.match(name), name


@pytest.mark.parametrize("name", ["bench", "plots"])
def test_old_module_paths_still_work_with_a_warning(name):
    with pytest.warns(DeprecationWarning, match=f"cwy_manifolds.{name} is deprecated"):
        module = importlib.reload(importlib.import_module(f"cwy_manifolds.{name}"))
    assert module.__all__


@pytest.mark.parametrize(
    ("owner", "name"),
    [("cwy_manifolds", "MANIFOLDS"), ("cwy_manifolds.manifolds", "MANIFOLDS"),
     ("cwy_manifolds.manifolds", "get_manifold")],
)  # fmt: skip
def test_moved_names_warn_at_the_caller_and_still_work(owner, name):
    module = importlib.import_module(owner)
    with pytest.warns(DeprecationWarning, match=rf"^{owner}\.{name} is deprecated") as record:
        value = getattr(module, name)
    assert record[0].filename == __file__  # the user's line, shown by the default filters
    if name == "get_manifold":
        assert value is cwy_manifolds.registry.get_manifold
    else:
        assert set(value) == {
            k for k, m in cwy_manifolds.registry.METHODS.items() if m.source == "cwy_manifolds"
        }
        assert isinstance(value["cwy"](), cwy_manifolds.CWY)
