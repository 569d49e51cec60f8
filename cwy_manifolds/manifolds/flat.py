r"""Flat geometry on reflection vectors, shared by CWY and T-CWY.

A point is the matrix :math:`V` of reflection vectors; the orthogonal or Stiefel matrix
it stands for is ``matrix(V)``. The vectors are unconstrained, so the geometry is the
Euclidean one of :math:`\mathbb{R}^{N \times L}`: identity ``egrad2rgrad``, ``proju``
and transport, the Frobenius inner product, an elementwise ``component_inner``, and a
step :math:`V + U` that, by default, is scaled and keeps the column norms at one (Notes
[gauge] and [step scale]). No retraction, projection or re-orthogonalisation of the
matrix is needed: the matrix is recomputed from :math:`V` and cannot drift off the
manifold.

Note [scale invariance]
~~~~~~~~~~~~~~~~~~~~~~~
The matrix depends on each column of :math:`V` only through its direction, so the
Euclidean gradient is orthogonal to each column. A plain step :math:`V + U` along it
therefore never shrinks a column and grows it by Pythagoras, the effective step on a
direction is about :math:`\mathrm{lr} / \|v_i\|^2` (:math:`\mathrm{lr} / \|v_i\|` for
Adam, whose steps do not scale with the gradient), and weight decay on :math:`V` only
shrinks the norms (which raises the effective step): keep weight decay off for these
parameters. Points made by ``random``, ``origin`` and ``from_matrix`` have unit columns.

Note [gauge]
~~~~~~~~~~~~
Rescaling a column changes no matrix, so a step may set the norms freely: that choice
is the gauge.

``gauge="unit"``: ``retr(x, u)`` steps to :math:`V + U / c` and divides each column by
its norm. The matrix is exactly that of :math:`V + U / c` (still no retraction of the
matrix), and every step starts from unit columns, so the effective step is the same at
step 1 and at step :math:`10^5`; :math:`c` makes one learning rate move the matrix as
much as on the Stiefel manifolds (Note [step scale]). The optimizer state needs no
rescaling: every gradient is taken at unit columns, so momentum stays in the same units,
and transport is the identity (projecting the momentum onto the tangent spaces of the
columns' spheres measured slower).

``gauge="free"``: the plain step :math:`V + U`, the geometry of earlier releases, bit for
bit; the norms grow (Note [scale invariance]).

``gauge="auto"``, the default: ``"free"`` for the points of optimizers that measure
their steps with the metric (Adam-type optimizers and line searches), ``"unit"`` for all
others (SGD, with or without momentum). Adam's steps do not scale with the gradient, so
there the growing norms act as a learning-rate decay, which reached tight tolerances as
fast or faster on the benchmark suite (``scripts/steps_bench.py``, figures in the user
guide); for SGD they only shrink the step. A line search predicts the loss along
``retr(x, t u)`` from the slope ``inner(x, grad, u)``, which holds for the plain step
only (the unit gauge moves by :math:`U / c`). A point counts as such once
``component_inner`` or ``inner`` has been asked for it (geoopt's ``RiemannianAdam`` asks
for its second moment before its first step, ``RiemannianLineSearch`` for the slope
before its first step, ``RiemannianSGD`` never asks for either): the manifold remembers
such points by weak reference, so that the decision takes no optimizer hook and is right
from the first step. Every gauge has the same gradient, inner product and
``component_inner``, so geoopt's ``RiemannianAdam`` takes exactly the steps of
``torch.optim.Adam`` in the default gauge. (Asking for ``inner`` of a point of an SGD
run, say for logging, switches it to free steps too; choose ``gauge="unit"`` or
``"free"`` explicitly to rule that out.)

Note [step scale]
~~~~~~~~~~~~~~~~~
The map :math:`V \mapsto` matrix scales steps: a step :math:`U` orthogonal to unit
columns moves a CWY matrix by :math:`2\sqrt{2}\,\|U\|_F` on average, and SGD moves the
matrix by :math:`J J^\top` times the matrix gradient, :math:`J` the Jacobian. So that
one learning rate moves the matrix about as much as on the Stiefel manifolds (whose
retractions are first-order: gain 1), the unit gauge divides the step by :math:`c`, the
mean squared singular value of :math:`J` at Haar points with unit columns,
:math:`\|J\|_F^2 / \operatorname{rank} J`:

.. math::

    c_{\mathrm{CWY}} = \frac{16 (N - 1)}{2N - 1 - L}, \qquad
    c_{\mathrm{T\text{-}CWY}} = \frac{4 \bigl((N - 2)(N + M) + 2 N M\bigr)}{N (2N - M - 1)}.

That is 16 for square matrices, tending to 2 for thin T-CWY frames: a vector moves the
matrix by :math:`4 ((N - 2) a_i + M) / (N - 1)` per unit step, squared, with
:math:`a_i = \|Y_i^\top u_i\|^2` (:math:`Y_i` the first :math:`M` columns of the
reflections after it) equal to 1 for CWY and about :math:`(1 + M/N)/2` for T-CWY, over
a set of dimension :math:`\operatorname{rank} J`. (Equivalently: SGD with the metric
:math:`c \langle U, W \rangle`.) ``step_scale(x)`` returns :math:`c`; the free gauge
takes the step :math:`U` as it is.

Note [singular at the identity]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
The map :math:`V \mapsto Q` loses rank where :math:`Q` is the identity (for CWY) or
:math:`[I; 0]` (for T-CWY): vectors whose reflections multiply to the identity span at
most half the space, and the derivative then reaches only part of the tangent space
(rank :math:`N - 1` instead of :math:`N (N - 1) / 2` for the vectors ``origin`` uses).
``origin`` is such a point. Start an optimization from ``random`` or from
``from_matrix`` of a generic matrix instead, where the map has full rank.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from ..core import all_true, column_norms, has_values
from ._base import Device, MatrixManifold, Shape, check_det

__all__ = ["GAUGES"]

#: Values of the ``gauge`` option (Note [gauge]).
GAUGES = ("auto", "unit", "free")


class _FlatVectors(MatrixManifold):
    """Flat geometry on reflection vectors ``V`` (Notes [gauge] and [step scale])."""

    def __init__(self, *, det: int, gauge: str) -> None:
        super().__init__()
        self.det = check_det(det, type(self).__name__, allow_none=False)
        if gauge not in GAUGES:
            raise ValueError(f"gauge must be one of {', '.join(map(repr, GAUGES))}; got {gauge!r}")
        self.gauge = gauge
        self.reversible = gauge == "free"  # normalising is not undone by -u
        # points seen by component_inner or inner, by id: they take free steps in "auto"
        self._metered: weakref.WeakValueDictionary[int, Tensor] = weakref.WeakValueDictionary()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_metered"] = None  # weak references neither pickle nor copy
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._metered = weakref.WeakValueDictionary()

    @staticmethod
    def _gain(n: int, count: int) -> float:
        """:math:`c` of Note [step scale] for ``count`` vectors of length ``n``."""
        raise NotImplementedError

    def step_scale(self, x: Tensor) -> float:
        """:math:`c` of Note [step scale] for points shaped like ``x`` (1 if ``N <= 1``)."""
        return self._gain(x.shape[-2], x.shape[-1])

    def _meter(self, x: Tensor) -> None:
        """Remember ``x`` as a point whose optimizer uses the metric (Note [gauge])."""
        if self.gauge == "auto":
            self._metered[id(x)] = x

    def _free(self, x: Tensor) -> bool:
        """Whether ``x`` takes free steps (Note [gauge])."""
        return self.gauge == "free" or (self.gauge == "auto" and self._metered.get(id(x)) is x)

    def _check_point_on_manifold(
        self, x: Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
    ) -> tuple[bool, str | None]:
        if not has_values(x):
            return True, None
        if x.shape[-2] == 0:  # vectors in R^0 are zero vectors
            zero = x.shape[:-2].numel() * x.shape[-1]
        else:
            scale = x.detach().abs().amax(dim=-2)  # NaN propagates
            if all_true((scale > 0) & torch.isfinite(scale)):  # one host read
                return True, None
            if not all_true(torch.isfinite(x)):
                return False, "V has NaN/Inf entries"
            zero = int((scale == 0).sum())
        if not zero:
            return True, None
        return False, f"V has {zero} zero column(s): a zero vector defines no reflection"

    def _check_vector_on_tangent(
        self, x: Tensor, u: Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
    ) -> tuple[bool, str | None]:
        if has_values(u) and not all_true(torch.isfinite(u)):
            return False, "u has NaN/Inf entries"
        return True, None

    def retr(self, x: Tensor, u: Tensor) -> Tensor:
        """Step to ``x + u`` (free gauge) or to ``x + u / c`` with unit columns (Note [gauge]).

        The matrix is that of the step in every gauge: no retraction of the matrix.
        """
        if self._free(x):
            return x + u
        y = x + u / self.step_scale(x)
        return y.div_(column_norms(y))  # y is new: in place

    def retr_transp(self, x: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(retr(x, u), v)``: transport is the identity (Note [gauge])."""
        return self.retr(x, u), v

    def transp_follow_retr(self, x: Tensor, u: Tensor, v: Tensor) -> Tensor:
        """Return ``v``: transport is the identity."""
        return v

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        """Return ``x + u``, the exponential map of the flat metric on the vectors."""
        return x + u

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        """Return ``y - x``, in parameter space (not a logarithm on the matrix manifold)."""
        return y - x

    def dist(self, x: Tensor, y: Tensor, *, keepdim: bool = False) -> Tensor:
        """Frobenius distance of the vectors, in parameter space (not between matrices)."""
        return torch.linalg.matrix_norm(x - y, keepdim=keepdim)

    def inner(
        self, x: Tensor, u: Tensor, v: Tensor | None = None, *, keepdim: bool = False
    ) -> Tensor:
        """Frobenius inner product of ``u`` and ``v`` (``v = u`` when omitted).

        In the ``"auto"`` gauge it also marks ``x`` as a point of an optimizer that uses
        the metric, such as a line search, whose steps stay free (Note [gauge]).
        """
        self._meter(x)
        v = u if v is None else v
        return (u * v).sum(dim=(-2, -1), keepdim=keepdim)

    def component_inner(self, x: Tensor, u: Tensor, v: Tensor | None = None) -> Tensor:
        """Elementwise ``u * v``, so ``RiemannianAdam`` equals ``torch.optim.Adam`` here.

        In the ``"auto"`` gauge it also marks ``x`` as a point of an Adam-type optimizer,
        whose steps stay free (Note [gauge]).
        """
        self._meter(x)
        v = u if v is None else v
        return (u * v).expand(torch.broadcast_shapes(x.shape, u.shape, v.shape))

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        """Return ``u``: every vector is tangent."""
        return u

    def egrad2rgrad(self, x: Tensor, u: Tensor) -> Tensor:
        """Return ``u``: the Riemannian gradient is the Euclidean gradient."""
        return u

    def projx(self, x: Tensor) -> Tensor:
        """Return ``x``: every point with non-zero columns is valid (and keeps its matrix)."""
        return x

    def transp(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """Return ``v``: transport is the identity in a flat space."""
        return v

    def _origin(self, shape: Shape, dtype: torch.dtype, device: Device) -> Tensor:
        """Vectors all equal to :math:`e_N`: the identity, or :math:`D` after the flip."""
        v = torch.zeros(shape, dtype=dtype, device=device)
        if shape[-2]:
            v[..., -1, :] = 1
        return v
