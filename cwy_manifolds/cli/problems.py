"""The problems a command line asks for: a registered name, a suite, or a user's problem.

``--problem`` takes a name of :data:`~cwy_manifolds.problems.PROBLEMS`, or
``module:attribute`` (an importable module) or ``path/to/file.py:attribute``, where the
attribute is a :class:`~cwy_manifolds.problems.Problem` or a callable returning one
(called without arguments).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from ..problems import PROBLEMS, Problem, make_problem, make_suite

__all__ = ["load_problem", "problems_from_args"]


def _module(target: str) -> object:
    path = Path(target)
    if target.endswith(".py") or "/" in target or "\\" in target:
        if not path.is_file():
            raise ValueError(f"--problem must name an existing file; got {target!r}")
        name = "cwy_user_problem_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"--problem must name a Python file; got {target!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def load_problem(spec: str) -> Problem:
    """Load ``module:attribute`` or ``file.py:attribute`` (a Problem or a callable making one).

    Raises
    ------
    ValueError
        With one line naming ``--problem`` for every way this can fail (the user's code
        raising included).
    """
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise ValueError(f"--problem must be a name or module:attribute; got {spec!r}")
    try:
        module = _module(target)
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(
            f"--problem could not load {target!r}: {type(error).__name__}: {error}"
        ) from None
    obj: object = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--problem: {target!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, Problem) and callable(obj):
        try:
            obj = obj()
        except Exception as error:
            raise ValueError(
                f"--problem: calling {spec!r} raised {type(error).__name__}: {error}"
            ) from None
    if not isinstance(obj, Problem):
        raise ValueError(
            f"--problem must name a Problem or a zero-argument callable returning one; "
            f"{spec!r} is a {type(obj).__name__}"
        )
    return obj


def problems_from_args(args: argparse.Namespace) -> tuple[str | None, list[Problem]]:
    """Return the suite name (or None) and the problems that the arguments ask for.

    Raises
    ------
    ValueError
        One line naming the option at fault.
    """
    if args.suite is not None:
        for flag, value in (
            ("--problem", args.problem),
            ("--n", args.n),
            ("--p", args.p),
            ("--group", args.group),
        ):
            if value is not None:
                raise ValueError(f"{flag} does not apply to --suite (its problems are fixed)")
        return args.suite, make_suite(args.suite, args.seed)
    name = args.problem or "pca"
    if name in PROBLEMS:
        return None, [make_problem(name, args.n, args.p, group=args.group, seed=args.seed)]
    if ":" not in name:
        raise ValueError(
            f"--problem must be one of {', '.join(PROBLEMS)}, or module:attribute or "
            f"file.py:attribute; got {name!r}"
        )
    for flag, value in (("--n", args.n), ("--p", args.p), ("--group", args.group)):
        if value is not None:
            raise ValueError(
                f"{flag} does not apply to a problem loaded from {name!r} (its shape is fixed)"
            )
    return None, [load_problem(name)]
