r"""The map from free parameters to an orthogonal weight, shared by all of ``cwy_manifolds.nn``.

A weight :math:`W` of shape ``(rows, cols)`` is handled as a tall matrix: :math:`W` itself
when ``rows >= cols``, :math:`W^\top` otherwise (a wide weight with orthonormal rows is a
transposed Stiefel matrix). The tall matrix is ``manifold.matrix(point)`` for a manifold
of the package (:class:`~cwy_manifolds.CWY`, :class:`~cwy_manifolds.TCWY`, ...), so the
determinant rule, the sign flip :math:`D` and the inverse maps are those of the manifolds.

Note [value checks under torch.compile]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
The functional core checks its vectors for NaN/Inf entries and zero columns by reading
one boolean back to the host (Note [value checks] in ``cwy_manifolds/_checks.py``). Under
:func:`torch.compile` that read is a data-dependent branch: a graph break, after which
the check runs eagerly, so compiled and eager modules give the same values and the same
errors. The maps here do nothing special about it (toggling the global switch inside
traced code behaves differently depending on where else the graph breaks). For one graph
per forward pass, turn the checks off before compiling,
``cwy_manifolds.set_value_checks(False)``: dynamo guards on the setting, and invalid
vectors then give NaN weights instead of an error. :class:`~cwy_manifolds.nn.OrthogonalRNN`
checks its vectors at the first time step only (Note [recurrence without forming the
matrix] in ``rnn.py``).

Note [assignment is strict, registration projects]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
``module.weight = Q`` calls ``right_inverse(Q)``, which reads the vectors off ``Q`` with
the inverse maps and raises ``ValueError`` when ``Q`` is not of the kind the
parametrization reaches (not orthogonal within the tolerance of
:func:`~cwy_manifolds.cwy_inverse`, the other determinant, too few reflections). Only
registration (:func:`~cwy_manifolds.nn.orthogonal`) replaces an arbitrary weight, by
:func:`~cwy_manifolds.nn.orthogonalize`; call that yourself to assign an arbitrary matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core import few_reflections, flip_last_column, orthonormality_atol, work_dtype
from ..manifolds import CWY, TCWY, MatrixManifold
from ..registry import METHODS

#: Methods whose free parameters any ``torch.optim`` optimizer can train (flat geometry).
FLAT_METHODS = tuple(name for name, method in METHODS.items() if method.flat)
#: Methods a layer can hold as a geoopt ``ManifoldParameter``: the package's manifolds.
PACKAGE_METHODS = tuple(
    name for name, method in METHODS.items() if method.source == "cwy_manifolds"
)


def check_weight(weight: object, name: str) -> Tensor:
    """Check that ``weight`` is a real floating-point 2-D tensor; return it."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor; got {weight.dtype}")
    if weight.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D matrix (rows, cols) to be made orthogonal; got shape "
            f"{tuple(weight.shape)} (for a batch of matrices use the manifolds or the "
            "functional core)"
        )
    return weight


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(repr(n) for n in names)


def make_manifold(
    shape: tuple[int, int],
    name: str,
    *,
    method: str | None,
    n_reflections: int | None,
    det: int | None,
    allowed: tuple[str, ...] = FLAT_METHODS,
) -> tuple[str, MatrixManifold, bool]:
    """Resolve the options for a weight of ``shape``: ``(method, manifold, transposed)``."""
    rows, cols = shape
    if method is None:
        method = "cwy" if rows == cols else "tcwy"
    if not isinstance(method, str) or method not in allowed:
        hint = ""
        if method in METHODS:
            hint = (
                f" ({method!r} keeps the matrix itself on the manifold by retractions, which "
                "only a geoopt optimizer does: use a layer with manifold_parameter=True)"
            )
        raise ValueError(f"method must be one of {_quoted(allowed)}; got {method!r}{hint}")
    if method != "cwy":
        for option, value in (("det", det), ("n_reflections", n_reflections)):
            if value is not None:
                raise ValueError(
                    f"{option} must be None for method {method!r} (only method 'cwy', for "
                    f"square weights, has that option); got {value!r}"
                )
        return method, METHODS[method].manifold(), rows < cols
    if rows != cols:
        raise ValueError(
            f"{name} must be square for method 'cwy'; got shape {tuple(shape)} "
            "(use method='tcwy' for a tall or wide weight)"
        )
    manifold = CWY(det=1 if det is None else det, n_reflections=n_reflections)
    if n_reflections is not None and n_reflections > rows:
        raise ValueError(f"n_reflections must be at most N = {rows}; got {n_reflections}")
    return method, manifold, False


def _required_det(manifold: MatrixManifold, n: int, m: int) -> int | None:
    """Return the determinant the manifold reaches on square matrices (None: any)."""
    if n != m:
        return None
    if isinstance(manifold, CWY):
        return manifold.det
    if isinstance(manifold, TCWY):
        return (-1) ** n  # Note [determinant parity] in householder.py
    return None


def nearest(weight: Tensor, manifold: MatrixManifold, transposed: bool) -> Tensor:
    """Return the matrix of the kind ``manifold`` reaches closest to ``weight``."""
    a = (weight.mT if transposed else weight).detach()
    n, m = a.shape
    u, _, vh = torch.linalg.svd(a.to(work_dtype(a.dtype)), full_matrices=False)
    det = _required_det(manifold, n, m)
    if det is not None and n > 0:
        # Singular values come in descending order: reverse the last direction. Use the
        # sign of slogdet: det itself under- or overflows in float32 from N ~ 400 on.
        wrong = torch.linalg.slogdet(u @ vh).sign * det < 0
        u = torch.where(wrong, flip_last_column(u), u)
    q = u @ vh
    count = getattr(manifold, "n_reflections", None)
    if count is not None and count < n:
        assert isinstance(manifold, CWY)
        p = flip_last_column(q) if manifold._flips(count) else q
        v, _ = few_reflections(p, count, orthonormality_atol(n, a.dtype))
        q = manifold.matrix(v)
    q = q.to(weight.dtype)
    return q.mT if transposed else q


class Orthogonal(nn.Module):
    r"""Parametrization module: free tensor (a point of ``manifold``) to orthogonal weight.

    ``forward(x)`` is ``manifold.matrix(x)``, transposed for a wide weight;
    ``right_inverse(W)`` is ``manifold.from_matrix`` after checks that name the weight
    (Note [assignment is strict, registration projects]); see also Note [value checks
    under torch.compile].
    """

    def __init__(
        self, shape: tuple[int, int], manifold: MatrixManifold, *, method: str, name: str
    ) -> None:
        super().__init__()
        self.shape = torch.Size(shape)
        self.method = method
        self.tensor_name = name
        self.transposed = shape[0] < shape[1]
        self.manifold = manifold

    @classmethod
    def for_shape(
        cls,
        shape: tuple[int, int],
        name: str,
        *,
        method: str | None,
        n_reflections: int | None,
        det: int | None,
        allowed: tuple[str, ...] = FLAT_METHODS,
    ) -> Orthogonal:
        """Build the parametrization of a weight of ``shape`` from user options."""
        method, manifold, _ = make_manifold(
            shape, name, method=method, n_reflections=n_reflections, det=det, allowed=allowed
        )
        return cls(shape, manifold, method=method, name=name)

    def extra_repr(self) -> str:
        """Describe the weight and the method in the repr."""
        return f"shape={tuple(self.shape)}, method={self.method!r}"

    @property
    def tall_shape(self) -> tuple[int, int]:
        """``(N, M)``, the shape of the tall matrix (``M <= N``)."""
        rows, cols = self.shape
        return (cols, rows) if self.transposed else (rows, cols)

    @property
    def point_shape(self) -> tuple[int, int]:
        """``(N, L)``, the shape of the free tensor."""
        n, m = self.tall_shape
        count = getattr(self.manifold, "n_reflections", None)
        return (n, m if count is None else count)

    def forward(self, x: Tensor) -> Tensor:
        """Return the weight that the free tensor ``x`` stands for."""
        q = self.manifold.matrix(x)
        return q.mT if self.transposed else q

    def random_point(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Return a random free tensor: a Haar weight (Gaussian vectors for ``L < N``).

        The nearest matrix of the kind reached to a Gaussian matrix :math:`G` is
        Haar-distributed on that kind: the nearest-point map commutes with rotations,
        :math:`f(U G) = U f(G)`, and the law of :math:`G` is invariant under them.
        """
        n, m = self.tall_shape
        if self.point_shape[1] < m:  # CWY with L < N
            return self.manifold.random(n, m, device=device, dtype=dtype).as_subclass(Tensor)
        g = torch.randn(n, m, device=device, dtype=dtype)
        return self.manifold.from_matrix(nearest(g, self.manifold, False)).as_subclass(Tensor)

    @torch.no_grad()
    def right_inverse(self, value: Tensor) -> Tensor:
        """Return a free tensor that stands for the weight ``value`` (strict; see Note)."""
        name = self.tensor_name
        value = check_weight(value, name)
        if value.shape != self.shape:
            raise ValueError(
                f"{name} must have shape {tuple(self.shape)}; got {tuple(value.shape)}"
            )
        a = value.mT if self.transposed else value
        n, m = a.shape
        if not bool(torch.isfinite(a).all()):
            raise ValueError(f"{name} must have finite entries; got NaN/Inf in {tuple(a.shape)}")
        aw = a.to(work_dtype(a.dtype))
        eye = torch.eye(m, dtype=aw.dtype, device=aw.device)
        resid = float((aw.mT @ aw - eye).abs().amax()) if a.numel() else 0.0
        atol = orthonormality_atol(n, a.dtype)
        if not resid <= atol:
            lines = "rows" if self.transposed else "columns"
            raise ValueError(
                f"{name} must have orthonormal {lines}; got max deviation {resid:.2e} from "
                f"the identity > atol = {atol:.2e}. Assign cwy_manifolds.nn.orthogonalize("
                f"{name}) to use the nearest matrix the parametrization reaches"
            )
        det = _required_det(self.manifold, n, m)
        if det is not None and n > 0 and float(torch.linalg.slogdet(aw).sign) * det < 0:
            raise ValueError(
                f"{name} must have determinant {det:+d} (the component of O({n}) that "
                f"{self.method!r} reaches here); got determinant {-det:+d}. Flip the sign of "
                f"one column, or use a parametrization with det={-det:+d} (method 'cwy')"
            )
        try:
            point = self.manifold.from_matrix(a)
        except ValueError as err:  # only n_reflections < N is left: too few reflections
            raise ValueError(f"{name} cannot be reached by the parametrization: {err}") from err
        return point.as_subclass(Tensor).to(value.dtype).contiguous()
