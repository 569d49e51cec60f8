r"""What :func:`~cwy_manifolds.compare` runs: methods, optimizers, pairs, starts.

Methods are registry names, with or without constructor options
(``"cwy(gradient=matrix)"``, :func:`parse_method`), or geoopt manifold instances (labelled
or not); optimizers are registry names or factories ``(params, lr) ->
torch.optim.Optimizer``. Everything is checked here, before any run, so that bad settings
fail in one line.

Note [components of O(n)]
~~~~~~~~~~~~~~~~~~~~~~~~~
:math:`O(n)` has two connected components, :math:`\det = \pm 1`, and no continuous
optimization crosses from one to the other: a method reaches the optimum only from a
start in the optimum's component. For a square problem the target component is the
determinant of the reference solution (:attr:`~cwy_manifolds.problems.Problem.component`;
+1 on :math:`SO(n)`). Each method starts from a Haar-random matrix of that component:
every registered manifold of the package (registry ``takes_det``: CWY, T-CWY and the
retraction-based Stiefel manifolds alike) is built with ``det`` set to that sign (Note
[components]), so every one of them reaches the optimum; geoopt's Stiefel manifolds,
which take no ``det``, start from the matrix itself and stay in its component by
continuity. A manifold given as an instance is used as it is: one that cannot stand for
the target component (``CWY(det=+1)`` on a problem whose optimum has determinant -1) runs
in the component it can reach, with a warning (a default would be skipped with a note).
Without a reference solution on :math:`O(n)`, every pair runs from both components and
the better run is reported.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import geoopt
import numpy as np
import torch
from geoopt.manifolds.base import Manifold
from torch import Tensor

from ..core import haar
from ..manifolds import from_matrix
from ..problems import Problem
from ..registry import METHODS, OPTIMIZERS, Method
from ..registry import Optimizer as RegisteredOptimizer
from .results import ConfigError

__all__ = [
    "MethodChoice",
    "OptimizerChoice",
    "check_device",
    "check_real",
    "parse_method",
    "resolve_methods",
    "resolve_optimizers",
    "start_matrix",
]

OptimizerFactory = Callable[[list, "float | None"], torch.optim.Optimizer]


@dataclass(frozen=True)
class MethodChoice:
    """A method to compare: a label and how to build its manifold for a component.

    ``takes_det``: registered methods whose factory takes ``det`` (registry); instances
    are used as given.
    """

    label: str
    build: Callable[[int | None], Manifold]
    flat: bool
    registered: Method | None = None
    takes_det: bool = False
    explicit: bool = True

    def manifold(self, det: int | None = None) -> Manifold:
        """Build the manifold, for determinant ``det`` when its factory takes ``det``."""
        return self.build(det if self.takes_det else None)


@dataclass(frozen=True)
class OptimizerChoice:
    """An optimizer to compare: label, factory, whether it is Riemannian, takes a rate."""

    label: str
    factory: OptimizerFactory
    riemannian: bool | None
    uses_lr: bool = True


_OPTIONS = re.compile(r"([\w-]+)\((.*)\)", re.DOTALL)


def parse_method(text: str) -> tuple[str, dict[str, object]]:
    """Split ``"name(key=value, ...)"`` into a method name and its constructor options.

    Values are Python literals without commas (``det=-1``, ``n_reflections=None``) or
    else bare words, taken as strings (``gradient=matrix``). A text without parentheses is
    a name alone.

    Raises
    ------
    ConfigError
        Options that are not ``key=value`` pairs, or a key given twice.

    Examples
    --------
    >>> parse_method("cwy(gradient=matrix, det=-1)")
    ('cwy', {'gradient': 'matrix', 'det': -1})
    """
    match = _OPTIONS.fullmatch(text.strip())
    if match is None:
        return text, {}
    name, body = match.groups()
    options: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, equals, value = (x.strip() for x in part.partition("="))
        if not equals or not key.isidentifier() or not value:
            raise ConfigError(f"method options must be key=value pairs; got {part!r} in {text!r}")
        if key in options:
            raise ConfigError(
                f"method options must not repeat a key; got {key!r} twice in {text!r}"
            )
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return name, options


def _registered(name: str, options: dict[str, object] | None = None) -> MethodChoice:
    """Return the registry method ``name`` built with ``options`` (``det`` among them or not)."""
    method, options = METHODS[name], options or {}
    takes_det = method.takes_det and "det" not in options

    def build(det: int | None) -> Manifold:
        return method.manifold(**options, **({} if det is None else {"det": det}))

    return MethodChoice(name, build, method.flat, method, takes_det)


def _instance(label: str | None, manifold: object) -> MethodChoice:
    if not isinstance(manifold, Manifold):
        raise ConfigError(
            f"methods must be registry names or geoopt manifolds; got {type(manifold).__name__}"
        )
    base = manifold.base if isinstance(manifold, geoopt.Scaled) else manifold
    method = next((m for m in METHODS.values() if m.factory is type(base)), None)
    if label is None:
        options = base.extra_repr() if hasattr(base, "extra_repr") else ""
        label = f"{type(base).__name__}({options})" if options else type(base).__name__
    return MethodChoice(label, lambda det: manifold, bool(method and method.flat), method)


def _items(spec: object, what: str) -> list[tuple[str | None, object]]:
    if isinstance(spec, str) or not isinstance(spec, Iterable | Mapping):
        spec = [spec]
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        items = []
        for item in spec:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                items.append(item)
            else:
                items.append((None, item))
    if not items:
        raise ConfigError(f"{what} must name at least one")
    return items


def _unique(labels: list[str], what: str) -> None:
    seen = [label for label in labels if labels.count(label) > 1]
    if seen:
        raise ConfigError(f"{what} labels must be unique; got {seen[0]!r} twice (label them)")


def resolve_methods(spec: object, problem: Problem, *, lenient: bool = False) -> list[MethodChoice]:
    """Check a ``methods`` argument of :func:`~cwy_manifolds.compare`; default: the registry's.

    With ``lenient``, methods that cannot stand for the problem's matrices are kept as
    non-explicit choices, to be skipped with a note (as defaults are) instead of refused.

    Raises
    ------
    ConfigError
        Unknown names (listing the valid ones), non-manifolds, duplicate labels, or
        methods that cannot stand for ``n x p`` matrices.
    """
    if spec is None:
        names = [m for m, method in METHODS.items() if method.default]
        choices = [
            _registered(m) for m in names if METHODS[m].why_not(problem.n, problem.p) is None
        ]
        return [replace(c, explicit=False) for c in choices]
    choices = []
    for label, item in _items(spec, "methods"):
        if isinstance(item, str):
            name, options = parse_method(item)
            if name not in METHODS:
                raise ConfigError(f"methods must be among {', '.join(METHODS)}; got {item!r}")
            why = METHODS[name].why_not(problem.n, problem.p)
            if why is not None and not lenient:
                raise ConfigError(f"methods must apply to the problem: {why}")
            choice = _registered(name, options)
            if options:
                try:
                    choice.manifold()  # unknown keys and bad values fail here, in one line
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"method {item!r} could not be built: {exc}") from None
            choices.append(replace(choice, label=label or item))
        else:
            choices.append(_instance(label, item))
    _unique([c.label for c in choices], "methods")
    if lenient:
        return [replace(c, explicit=False) for c in choices]
    return choices


def resolve_optimizers(spec: object) -> list[OptimizerChoice]:
    """Check an ``optimizers`` argument: registry names, factories, labelled factories."""
    choices = []
    for label, item in _items(spec, "optimizers"):
        if isinstance(item, str):
            if item not in OPTIMIZERS:
                raise ConfigError(f"optimizers must be among {', '.join(OPTIMIZERS)}; got {item!r}")
            item = OPTIMIZERS[item]
        if isinstance(item, RegisteredOptimizer):
            choices.append(
                OptimizerChoice(
                    label or item.name, item.factory, item.riemannian, item.learning_rate
                )
            )
        elif callable(item):
            name = label or getattr(item, "__name__", type(item).__name__)
            choices.append(OptimizerChoice(name, item, None))
        else:
            raise ConfigError(
                "optimizers must be registry names or factories (params, lr) -> optimizer; "
                f"got {type(item).__name__}"
            )
    _unique([c.label for c in choices], "optimizers")
    return choices


def invalid_reason(method: MethodChoice, optimizer: OptimizerChoice) -> str | None:
    """Why ``optimizer`` cannot run on ``method`` (registry ``accepts``), or None."""
    if optimizer.riemannian is None or optimizer.riemannian or method.flat:
        return None
    flat = ", ".join(m for m, meth in METHODS.items() if meth.flat)
    return (
        f"optimizer {optimizer.label!r} cannot run on method {method.label!r}: it is not "
        f"Riemannian and would move the matrix off the manifold (only {flat} take any "
        "optimizer)"
    )


def check_real(value: object, name: str) -> float:
    """Check a positive finite real number: int, float, NumPy scalar, 0-d tensor; not bool."""
    if isinstance(value, Tensor) and value.ndim == 0 and value.dtype != torch.bool:
        if value.is_complex():
            raise ConfigError(f"{name} must be a real number; got a complex tensor")
        value = value.item()
    real = isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, (bool, np.bool_)) or not real:
        raise ConfigError(f"{name} must be a positive number; got {value!r}")
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive finite number; got {value!r}")
    return value


def check_device(device: object) -> torch.device:
    """Check a torch device that exists here: ``cpu`` or an available ``cuda[:k]``."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"device must be 'cpu' or 'cuda[:k]'; got {device!r} ({error})") from None
    if device.type == "cuda":
        index = device.index or 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ConfigError(f"device must be available; got {str(device)!r} but it is not")
    elif device.type != "cpu":
        raise ConfigError(f"device must be 'cpu' or 'cuda[:k]'; got {str(device)!r}")
    return device


def start_matrix(problem: Problem, seed: int, det: int | None) -> Tensor:
    """Haar-random start on St(n, p) (float64); square problems in the component ``det``."""
    gen = torch.Generator().manual_seed(seed)
    square = problem.p == problem.n
    return haar(
        (problem.n, problem.p), det=det if square else None, dtype=torch.float64, generator=gen
    )


def reachable(method: MethodChoice, start: Tensor, det: int | None) -> str | None:
    """Why ``method`` cannot start from ``start`` (of determinant ``det``), or None."""
    try:
        from_matrix(method.manifold(det), start)
    except TypeError as error:
        raise ConfigError(f"methods must stand for matrices: {method.label}: {error}") from None
    except ValueError as error:
        return str(error).split(". ")[0]
    return None
