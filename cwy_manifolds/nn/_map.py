r"""The parametrization module shared by all of ``cwy_manifolds.nn``: free tensor to weight.

A weight of shape ``(*, rows, cols)`` is a batch of matrices (the last two dimensions, as
in :func:`torch.nn.utils.parametrizations.orthogonal` and geotorch); with ``flatten`` a
weight ``(rows, *rest)``, such as a convolution kernel, is one ``rows x prod(rest)``
matrix. Each matrix is handled as a tall one: itself when ``rows >= cols``, its transpose
otherwise. The tall matrix is ``manifold.matrix(point)`` for a manifold of the package, and
nn asks the manifold everything else too, so that it refuses and accepts exactly what the
manifold does: the shape of a point (``point_shape``), the determinant of a square weight
(``det``, ``det_of``), the sign flip :math:`D` (``CWY.flips``), the nearest matrix it
reaches (``nearest``) and the inverse maps (``from_matrix``); the core checks the
vectors (``column_scale``) when it forms the matrix.

Note [free tensor layout]
~~~~~~~~~~~~~~~~~~~~~~~~~
The free tensor (``parametrizations.<name>.original``) has the *shape of the weight*
(layout ``"weight"``): the reflection vectors of the tall matrix as columns, transposed
back for a wide weight (the vectors are then its rows), and for ``n_reflections = L < N``
in the first :math:`L` columns of an :math:`N \times N` tensor whose other columns are
unused (zero gradient). So ``remove_parametrizations(..., leave_parametrized=False)``
leaves a tensor of the shape the module needs, ``register_parametrization`` can stack
another parametrization below or above ours, and ``transfer_parametrizations_and_params``
works unchanged. The one exception is a free tensor that is a geoopt
``ManifoldParameter`` (the layers with ``manifold_parameter=True``): geoopt's optimizers
need the manifold's point, so it is the point itself (layout ``"point"``, shape
``(*, N, L)``). State dicts convert between the layouts on load (``_protocol.py``).

Note [assignment is strict, registration projects]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
PyTorch calls ``right_inverse`` in two situations: while building a
``ParametrizationList`` (``register_parametrization``, and
``transfer_parametrizations_and_params``, which registers on the destination and then
replaces its free tensor by the source's), with the module's current tensor; and on
assignment, ``module.weight = Q``. In the first, the tensor is a module's arbitrary
initial weight: it is projected on the matrices the parametrization reaches, as
:func:`~cwy_manifolds.nn.orthogonal` does and as PyTorch's ``orthogonal`` does. In the
second (default ``assign="strict"``), ``Q`` must already be of that kind, as decided by
``manifold.from_matrix`` (its tolerance, its determinant rule), else ``ValueError``;
``assign="project"`` projects there too. The caller is recognised by its code object
(``ParametrizationList.__init__``), a few frames up; ``tests/test_nn_protocol.py``
checks it against the installed torch.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..core import check_tensor, column_scale
from ..manifolds import CWY, MatrixManifold
from ..registry import METHODS

#: Methods whose free parameters any ``torch.optim`` optimizer can train (flat geometry).
FLAT_METHODS = tuple(name for name, method in METHODS.items() if method.flat)
#: Methods a layer can hold as a geoopt ``ManifoldParameter``: the package's manifolds.
PACKAGE_METHODS = tuple(
    name for name, method in METHODS.items() if method.source == "cwy_manifolds"
)
LAYOUTS = ("weight", "point")
ASSIGN = ("strict", "project")
#: Version of the configuration stored in state dicts (``get_extra_state``). Format 1
#: recorded ``det=None`` for square ``"tcwy"`` weights, which then had determinant
#: :math:`(-1)^N`; format 2 records the determinant (:func:`upgrade_configuration`).
FORMAT = 2

_REGISTRATION = parametrize.ParametrizationList.__init__.__code__


def registering() -> bool:
    """Whether the caller's caller runs inside ``ParametrizationList.__init__``."""
    frame = sys._getframe(1)
    for _ in range(5):
        frame = frame.f_back
        if frame is None:
            return False
        if frame.f_code is _REGISTRATION:
            return True
    return False


def quoted(names: tuple[str, ...]) -> str:
    """Return ``'a', 'b'``, a list of names for error messages."""
    return ", ".join(repr(n) for n in names)


def matrix_view(
    shape: tuple[int, ...], flatten: bool, name: str
) -> tuple[tuple[int, ...], int, int]:
    """``(batch, rows, cols)`` of a weight of ``shape`` (see the module doc)."""
    if len(shape) < 2:
        raise ValueError(
            f"{name} must have at least 2 dimensions (*, rows, cols) to be made orthogonal; "
            f"got shape {tuple(shape)}"
        )
    if flatten:
        return (), shape[0], math.prod(shape[1:])
    return tuple(shape[:-2]), shape[-2], shape[-1]


def make_manifold(
    shape: tuple[int, ...],
    name: str,
    *,
    method: str | None,
    n_reflections: int | None,
    det: int | None,
    flatten: bool = False,
    allowed: tuple[str, ...] = FLAT_METHODS,
) -> tuple[str, MatrixManifold]:
    """Resolve the options for a weight of ``shape``: ``(method, manifold)``.

    ``det`` goes to the manifold for square weights (its default when None: +1 for
    ``"cwy"`` and ``"tcwy"``, both components for the retraction methods); a
    non-square weight has no determinant. ``n_reflections`` is an option of ``"cwy"``.
    """
    _, rows, cols = matrix_view(shape, flatten, name)
    if method is None:
        method = "cwy" if rows == cols else "tcwy"
    if not isinstance(method, str) or method not in allowed:
        hint = ""
        if method in METHODS:
            hint = (
                f" ({method!r} keeps the matrix itself on the manifold by retractions, which "
                "only a geoopt optimizer does: use a layer with manifold_parameter=True)"
            )
        raise ValueError(f"method must be one of {quoted(allowed)}; got {method!r}{hint}")
    if method != "cwy" and n_reflections is not None:
        raise ValueError(
            f"n_reflections must be None for method {method!r} (only method 'cwy', for "
            f"square weights, has that option); got {n_reflections!r}"
        )
    why = METHODS[method].why_not(rows, cols)
    if why is not None:
        raise ValueError(
            f"{name} must be square for method {method!r}; got shape {tuple(shape)} ({why}; "
            "use method='tcwy' for a tall or wide weight)"
        )
    if det is not None and rows != cols:
        raise ValueError(
            f"det must be None for a {rows} x {cols} weight (a non-square matrix has no "
            f"determinant, and St(N, M) with M < N is connected); got {det!r}"
        )
    options: dict[str, object] = {} if det is None else {"det": det}
    if method == "cwy":
        options["n_reflections"] = n_reflections
    return method, METHODS[method].manifold(**options)


def upgrade_configuration(saved: Mapping[str, object]) -> dict[str, object]:
    """Return a saved configuration in the current format (see :data:`FORMAT`)."""
    saved, shape = dict(saved), saved.get("shape")
    old = saved.get("format", 1) == 1 and saved.get("method") == "tcwy"
    if old and saved.get("det") is None and isinstance(shape, list | tuple) and len(shape) > 1:
        _, rows, cols = matrix_view(tuple(int(d) for d in shape), bool(saved.get("flatten")), "")
        if rows == cols and rows > 0:
            saved["det"] = (-1) ** rows  # Note [determinant parity]: format 1's rule
    return saved


def describe(config: Mapping[str, object]) -> str:
    """One line for a configuration, as error messages show it."""
    det = config.get("det")
    return (
        f"method={config.get('method')!r}, shape={tuple(config.get('shape', ()))}, "
        f"det={'None' if det is None else format(det, '+d')}, "
        f"n_reflections={config.get('n_reflections')}, flatten={config.get('flatten')}"
    )


class Orthogonal(nn.Module):
    r"""Parametrization module: a free tensor to an orthogonal weight (see the module doc).

    ``forward(x)`` is ``manifold.matrix`` of the vectors held by ``x``, transposed for a
    wide weight; ``right_inverse(W)`` is ``manifold.from_matrix`` (Note [assignment is
    strict, registration projects]). The configuration travels in state dicts as extra
    state and is checked on load (``_protocol.py``).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        manifold: MatrixManifold,
        *,
        method: str,
        name: str,
        flatten: bool = False,
        layout: str = "weight",
        assign: str = "strict",
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {quoted(LAYOUTS)}; got {layout!r}")
        if assign not in ASSIGN:
            raise ValueError(f"assign must be one of {quoted(ASSIGN)}; got {assign!r}")
        self.shape = torch.Size(shape)
        self.method = method
        self.tensor_name = name
        self.flatten = bool(flatten)
        self.layout = layout
        self.assign = assign
        self.manifold = manifold
        self.batch, rows, cols = matrix_view(self.shape, self.flatten, name)
        self.transposed = rows < cols
        self.tall_shape = (cols, rows) if self.transposed else (rows, cols)
        self.point_shape = manifold.point_shape(*self.batch, *self.tall_shape)
        self.count = self.point_shape[-1]
        self.det = getattr(manifold, "det", None) if rows == cols else None

    @classmethod
    def for_shape(
        cls,
        shape: tuple[int, ...],
        name: str,
        *,
        method: str | None,
        n_reflections: int | None,
        det: int | None,
        flatten: bool = False,
        allowed: tuple[str, ...] = FLAT_METHODS,
        layout: str = "weight",
        assign: str = "strict",
    ) -> Orthogonal:
        """Build the parametrization of a weight of ``shape`` from user options."""
        method, manifold = make_manifold(
            shape,
            name,
            method=method,
            n_reflections=n_reflections,
            det=det,
            flatten=flatten,
            allowed=allowed,
        )
        return cls(
            shape, manifold, method=method, name=name, flatten=flatten, layout=layout, assign=assign
        )

    def extra_repr(self) -> str:
        """Describe the weight and the method in the repr."""
        text = f"shape={tuple(self.shape)}, method={self.method!r}"
        if self.det is not None:
            text += f", det={self.det:+d}"
        if isinstance(self.manifold, CWY):
            text += f", n_reflections={self.count}"
        return text + (", flatten=True" if self.flatten else "")

    # -- layouts (Note [free tensor layout]) ------------------------------------------------

    @property
    def original_shape(self) -> tuple[int, ...]:
        """Shape of the free tensor."""
        return tuple(self.shape) if self.layout == "weight" else self.point_shape

    def tall(self, w: Tensor) -> Tensor:
        """Return the tall matrices ``(*, N, M)`` of a weight-shaped tensor (a view)."""
        if self.flatten:
            w = w.reshape(self.shape[0], -1)
        return w.mT if self.transposed else w

    def untall(self, q: Tensor) -> Tensor:
        """Return the weight-shaped tensor of tall matrices ``q`` (inverse of :meth:`tall`)."""
        w = q.mT if self.transposed else q
        return w.reshape(self.shape) if self.flatten else w

    def vectors(self, x: Tensor, layout: str | None = None) -> Tensor:
        """Return the manifold point ``(*, N, L)`` held by a free tensor of ``layout``."""
        if (layout or self.layout) == "point":
            return x
        v = self.tall(x)
        return v[..., : self.count] if self.count < v.shape[-1] else v

    def to_original(self, v: Tensor, layout: str | None = None) -> Tensor:
        """Return the free tensor of ``layout`` holding the point ``v`` (unused columns 0)."""
        if (layout or self.layout) == "point":
            return v
        missing = self.tall_shape[1] - v.shape[-1]
        if missing:
            v = torch.cat([v, v.new_zeros(*v.shape[:-1], missing)], dim=-1)
        return self.untall(v)

    def convert(self, x: Tensor, layout: str) -> Tensor:
        """Return a free tensor of ``layout`` in this module's layout."""
        return self.to_original(self.vectors(x, layout)).contiguous()

    # -- the maps ---------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """Return the weight that the free tensor ``x`` stands for."""
        v = self.vectors(x)
        name = self.tensor_name
        # the core forms the matrix with autocast off (Note [autocast])
        if torch.compiler.is_compiling():  # no try block around the checks (Note [value checks])
            if v.device.type == "cpu" and self.method in FLAT_METHODS:  # an assertion naming
                column_scale(v, f"{name}'s reflection vectors (parametrizations.{name}.original)")
            return self.untall(self.manifold.matrix(v))
        try:
            q = self.manifold.matrix(v)
        except ValueError as err:
            raise ValueError(
                f"{name}'s reflection vectors (parametrizations.{name}.original) must be a "
                f"point of {self.manifold!r}; got: {err}"
            ) from err
        return self.untall(q)

    def right_inverse(self, value: Tensor) -> Tensor:
        """Return a free tensor that stands for the weight ``value`` (see the Notes)."""
        name = self.tensor_name
        check_tensor(value, name, min_ndim=0)
        if value.shape != self.shape:
            raise ValueError(
                f"{name} must have shape {tuple(self.shape)}; got {tuple(value.shape)}"
            )
        project = self.assign == "project" or registering()
        with torch.no_grad():
            if value.is_meta:  # no values: nothing to check or project (Note [meta tensors])
                return value.new_empty(self.original_shape)
            a = self.tall(value)
            if project:
                a = self.manifold.nearest(a, name=name)
            return self.to_original(self._from_matrix(a).to(value.dtype)).contiguous()

    def _from_matrix(self, a: Tensor) -> Tensor:
        """``manifold.from_matrix(a)`` as a plain tensor; errors name the weight."""
        try:
            return self.manifold.from_matrix(a).as_subclass(Tensor)
        except ValueError as err:
            name = self.tensor_name
            lines, m = ("rows", f"{name}.mT") if self.transposed else ("columns", name)
            raise ValueError(
                f"{name} cannot be assigned: it must have orthonormal {lines} and be of the "
                f"kind {self.manifold!r} reaches; from_matrix(m = {m}) refused it: {err}. "
                f"Assign cwy_manifolds.nn.orthogonalize({name}, ...) instead, or register "
                "with assign='project' to take the nearest such matrix"
            ) from err

    def random_original(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Return a random free tensor: the manifold's ``random`` point (Haar; L < N: Gaussian)."""
        point = self.manifold.random(*self.batch, *self.tall_shape, device=device, dtype=dtype)
        return self.to_original(point.as_subclass(Tensor)).contiguous()

    def flips(self) -> bool:
        """Whether the matrix is the product of reflections times :math:`D` (CWY only)."""
        return isinstance(self.manifold, CWY) and self.manifold.flips(self.count)

    # -- configuration in state dicts -------------------------------------------------------

    def configuration(self) -> dict[str, object]:
        """Return what a state dict's free tensor means: plain data, saved as extra state."""
        return {
            "format": FORMAT,
            "method": self.method,
            "shape": list(self.shape),
            "flatten": self.flatten,
            "det": self.det,
            "n_reflections": self.count if isinstance(self.manifold, CWY) else None,
            "layout": self.layout,
        }

    def get_extra_state(self) -> dict[str, object]:
        """Return the configuration (:meth:`configuration`), saved by ``state_dict``."""
        return self.configuration()

    def check_configuration(self, saved: object, where: str = "") -> None:
        """Raise ValueError if the saved configuration means something else than this one."""
        ours = self.configuration()
        if not isinstance(saved, Mapping):
            raise ValueError(f"{where}_extra_state must be a dict; got {type(saved).__name__}")
        saved = upgrade_configuration(saved)
        shape = saved.get("shape")
        saved_shape = None if shape is None else [int(d) for d in shape]  # type: ignore[union-attr]
        keys = ("method", "flatten", "det", "n_reflections")
        if saved_shape != ours["shape"] or any(saved.get(k) != ours[k] for k in keys):
            raise ValueError(
                f"{where or 'the '}state_dict cannot be loaded into this parametrization: it was "
                f"saved with ({describe(saved)}), this module has ({describe(ours)}); "
                "the same vectors would stand for another matrix. Build the module with the "
                "saved options"
            )

    def set_extra_state(self, state: object) -> None:
        """Check a loaded configuration (the load hook has converted the layout)."""
        self.check_configuration(state)
        layout = state.get("layout", self.layout)  # type: ignore[union-attr]
        if layout != self.layout:
            raise ValueError(
                f"state_dict holds the free tensor in layout {layout!r}, this module in "
                f"{self.layout!r}; load it into a module built by cwy_manifolds.nn, which "
                "converts it"
            )
