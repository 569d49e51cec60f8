r"""The functional core: products of Householder reflections in compact WY form.

Pure tensor functions, batched over leading dimensions, differentiable, on any real
floating dtype and device. No geoopt import.

For vectors :math:`v_1, \dots, v_L \in \mathbb{R}^N` (the columns of ``v``) and
:math:`H(v) = I - 2 v v^\top / \|v\|^2`,

.. math::

    H(v_1) H(v_2) \cdots H(v_L) = I - U S^{-1} U^\top, \qquad
    S = \tfrac12 I + \operatorname{striu}(U^\top U),

where :math:`U` holds the columns :math:`u_i = v_i / \|v_i\|` and ``striu`` keeps the
strictly upper triangle (Likhosherstov et al., AISTATS 2021).

Note [scaled normalisation]
~~~~~~~~~~~~~~~~~~~~~~~~~~~
The maps depend on each column only through its direction, so tiny and huge column norms
are valid input. Squaring entries of size 1e-30 underflows in float32, so each column is
first divided by its largest absolute entry (computed anyway by the value checks, Note
[value checks] in ``checks.py``) and only then by its norm. The scale is detached: for a
fixed scale, ``w / ||w||`` with ``w = v / scale`` is exactly ``v / ||v||``, so gradients
are unchanged. :func:`cwy` and :func:`tcwy` skip the division by the norm, which enters
through the diagonal of :math:`S` instead (Note [unnormalised vectors] in
``wy.py``).

Note [precision]
~~~~~~~~~~~~~~~~
Half-precision inputs (float16, bfloat16) are normalised, multiplied into the Gram matrix
:math:`U^\top U` and solved against :math:`S` in float32 (the solve is the sensitive step,
and CUDA has no half-precision triangular solve); on accelerators the large products with
:math:`U` run in the input dtype, on the CPU (which has no fast half-precision matrix
product) in float32. The result has the input dtype. The hand-derived backward pass of
:func:`cwy` and :func:`tcwy` runs in float32 for such inputs.

Note [fast path]
~~~~~~~~~~~~~~~~
:func:`cwy` and :func:`tcwy` go through one :class:`torch.autograd.Function` with a
hand-derived backward pass that reuses the factors of the forward pass, forms only half
of the symmetric products for large :math:`L` and writes :math:`I - U W` without
materialising :math:`I` (``wy.py``: Notes [hand-derived backward], [memory layout],
[double backward], [triangular inverse on accelerators]). Second derivatives,
forward-mode AD and the :mod:`torch.func` transforms (``vmap``, ``grad``, ``jvp``,
``jacfwd``, ``hessian``) are supported; the last two kinds run plain differentiable
operations instead of the hand-derived rule (Note [double backward]). The apply forms and
:func:`householder_product` use plain autograd.

For small matrices the cost is the number of torch calls (about a microsecond each on
the CPU) and of Python steps, not flops. A forward and backward pass at :math:`N = 3`
makes 9 + 12 calls besides the value checks (it made 16 + 20): the classic
:class:`torch.autograd.Function` form (the ``setup_context`` form binds the arguments
with :mod:`inspect` on every call); no dtype conversion or transpose that would do
nothing; :math:`S` and :math:`S^\top` in one buffer, so that neither solve needs a
``triu`` or a transposed copy (Note [memory layout]); one ``addmm`` (``baddbmm``) for
:math:`I - Y W` up to :math:`64^2` entries per matrix; the backward sums accumulated by
``addmm_`` into existing buffers (unbatched: ``baddbmm_`` is slow on the CPU) with
:math:`P + P^\top` formed by a mask product for batches of small matrices, where
``torch.triu`` costs several elementwise passes; autocast looked up by one call; and
value checks that read two scalars (Note [value checks]).

Note [determinant parity]
~~~~~~~~~~~~~~~~~~~~~~~~~
Each reflection has determinant -1, so ``cwy(v)`` has determinant :math:`(-1)^L` whatever
the vectors: a fixed number of reflections reaches one connected component of
:math:`O(N)` only. The other component needs one more reflection or a fixed sign flip
:math:`D = \operatorname{diag}(1, \dots, 1, -1)` applied after, :math:`Q = \mathrm{cwy}(v)
D`. The inverse maps (``inverse.py``) follow the same rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_rhs, check_vectors, column_norms, column_scale
from .precision import product_dtype, without_autocast, work_dtype
from .wy import wy_matrix

__all__ = ["cwy", "cwy_apply", "householder_product", "tcwy", "tcwy_apply"]


def _unit_columns(v: Tensor, name: str, x: Tensor | None = None) -> Tensor:
    """Columns of ``v`` scaled to unit norm, in the working dtype (Note [precision]).

    Checks ``v`` (and the finiteness of ``x``, if given) on the way (Note [value checks]).
    """
    scale = column_scale(v, name, x)
    w = v.to(work_dtype(v.dtype)) / scale.to(work_dtype(v.dtype))
    return w / column_norms(w)


def _factors(v: Tensor, name: str = "v", x: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Return ``U`` (..., N, L) and the upper triangular ``S`` (..., L, L), working dtype."""
    u = _unit_columns(v, name, x)
    n_refl = u.shape[-1]
    eye = torch.eye(n_refl, dtype=u.dtype, device=u.device)
    s = torch.triu(u.mT @ u, diagonal=1) + eye / 2
    return u, s


def _solve(s: Tensor, b: Tensor, *, transpose: bool = False) -> Tensor:
    """``S^{-1} b`` (or ``S^{-T} b``) by a triangular solve, in the dtype of ``s``."""
    if transpose:
        return torch.linalg.solve_triangular(s.mT, b.to(s.dtype), upper=False)
    return torch.linalg.solve_triangular(s, b.to(s.dtype), upper=True)


def cwy(v: Tensor) -> Tensor:
    r"""Product of Householder reflections in compact WY form.

    .. math::

        Q = H(v_1) H(v_2) \cdots H(v_L) = I - U S^{-1} U^\top, \qquad
        S = \tfrac12 I + \operatorname{striu}(U^\top U),

    where :math:`H(v) = I - 2 v v^\top / \|v\|^2`, :math:`U` holds the unit columns
    :math:`u_i = v_i / \|v_i\|` and ``striu`` keeps the strictly upper triangle. Column 1
    is the leftmost factor. :math:`S` is upper triangular with determinant
    :math:`2^{-L}`, so it is always invertible (also for :math:`L > N` or repeated
    vectors).

    Parameters
    ----------
    v : Tensor, shape ``(*, N, L)``
        Reflection vectors as columns; leading dimensions are batch dimensions. Any
        non-zero finite column is valid (the map is invariant to column scale).

    Returns
    -------
    Tensor, shape ``(*, N, N)``
        The orthogonal matrix :math:`Q`, with the dtype and device of ``v``; its
        determinant is :math:`(-1)^L` (Note [determinant parity]). ``L = 0`` gives the
        identity.

    Raises
    ------
    TypeError
        If ``v`` is not a real floating-point tensor.
    ValueError
        If ``v`` has fewer than two dimensions, a NaN/Inf entry or a zero column.

    Notes
    -----
    Cost: about :math:`2 N^2 L + 2 N L^2` flops, all in matrix products except one
    :math:`L \times L` triangular solve against :math:`N` right-hand sides; the
    sequential product :func:`householder_product` costs :math:`4 N^2 L` flops in
    :math:`L` dependent steps. For :math:`L < N`, :math:`Q` is the identity on the
    orthogonal complement of the span of the vectors. The backward pass is derived by
    hand and costs about :math:`4 N^2 L + 4 N L^2` flops (Note [fast path]).
    Half-precision inputs use float32 internals (Note [precision]); checking values
    costs one host-device synchronisation on accelerators (:class:`set_value_checks`).

    References
    ----------
    V. Likhosherstov, J. Davis, K. Choromanski, A. Weller. "CWY Parametrization: a
    Solution for Parallelized Optimization of Orthogonal and Stiefel Matrices."
    AISTATS 2021.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import cwy, householder_product
    >>> v = torch.randn(5, 3, dtype=torch.float64)
    >>> q = cwy(v)
    >>> torch.allclose(q.T @ q, torch.eye(5, dtype=torch.float64))
    True
    >>> torch.allclose(q, householder_product(v))
    True
    """
    v = check_vectors(v)
    return wy_matrix(v, v.shape[-2])


def tcwy(v: Tensor) -> Tensor:
    r"""Form a Stiefel matrix from :math:`M` reflection vectors (truncated CWY).

    .. math::

        \Omega = \begin{bmatrix} I_M \\ 0 \end{bmatrix} - U S^{-1} U_1^\top,

    with :math:`U`, :math:`S` as in :func:`cwy` and :math:`U_1` the first :math:`M` rows
    of :math:`U`. :math:`\Omega` equals the first :math:`M` columns of ``cwy(v)``, but the
    :math:`N \times N` matrix is never formed.

    Parameters
    ----------
    v : Tensor, shape ``(*, N, M)`` with ``M <= N``
        Reflection vectors as columns; leading dimensions are batch dimensions.

    Returns
    -------
    Tensor, shape ``(*, N, M)``
        A matrix with orthonormal columns (a point of the Stiefel manifold
        :math:`\mathrm{St}(N, M)`), with the dtype and device of ``v``.

    Raises
    ------
    TypeError
        If ``v`` is not a real floating-point tensor.
    ValueError
        If ``v`` has fewer than two dimensions, more columns than rows, a NaN/Inf entry
        or a zero column.

    Notes
    -----
    Cost: about :math:`3 N M^2 + \tfrac43 M^3` flops, and about :math:`6 N M^2` for the
    hand-derived backward pass (Note [fast path]). For :math:`M < N` the map is onto
    :math:`\mathrm{St}(N, M)`; for :math:`M = N` it is ``cwy(v)``, with determinant
    :math:`(-1)^N` (Note [determinant parity]).

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import cwy, tcwy
    >>> v = torch.randn(6, 2, dtype=torch.float64)
    >>> omega = tcwy(v)
    >>> torch.allclose(omega, cwy(v)[:, :2])
    True
    >>> torch.allclose(omega.T @ omega, torch.eye(2, dtype=torch.float64))
    True
    """
    v = check_vectors(v, thin=True)
    return wy_matrix(v, v.shape[-1])


@without_autocast
def cwy_apply(v: Tensor, x: Tensor, *, transpose: bool = False) -> Tensor:
    r"""Multiply by the CWY matrix without forming it.

    .. math::

        Q X = X - U \bigl(S^{-1} (U^\top X)\bigr), \qquad
        Q^\top X = X - U \bigl(S^{-\top} (U^\top X)\bigr),

    with :math:`Q` = ``cwy(v)`` and :math:`U`, :math:`S` as there.

    Parameters
    ----------
    v : Tensor, shape ``(*, N, L)``
        Reflection vectors as columns.
    x : Tensor, shape ``(*, N, k)``
        The matrix to multiply, with the dtype and device of ``v``. Batch dimensions of
        ``v`` and ``x`` broadcast as in :func:`torch.matmul`.
    transpose : bool, default False
        Multiply by :math:`Q^\top` (the reverse product of reflections) instead.

    Returns
    -------
    Tensor, shape ``(*, N, k)``
        :math:`Q X` or :math:`Q^\top X`.

    Raises
    ------
    TypeError
        If an argument is not a real floating-point tensor or their dtypes differ.
    ValueError
        For wrong ranks or row counts, different devices, NaN/Inf entries or a zero
        column of ``v``.

    Notes
    -----
    Cost: about :math:`4 N L k + 2 N L^2` flops instead of :math:`2 N^2 L` to form
    :math:`Q` plus :math:`2 N^2 k` to apply it: the cheaper choice when
    :math:`k` and :math:`L` are small against :math:`N`.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import cwy, cwy_apply
    >>> v, x = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    >>> torch.allclose(cwy_apply(v, x), cwy(v) @ x)
    True
    >>> torch.allclose(cwy_apply(v, x, transpose=True), cwy(v).T @ x)
    True
    """
    v = check_vectors(v)
    x = check_rhs(x, "x", v, v.shape[-2], "N", transpose)
    u, s = _factors(v, x=x)
    dtype = product_dtype(v)
    uh, xh = u.to(dtype), x.to(dtype)
    return (xh - uh @ _solve(s, uh.mT @ xh, transpose=transpose).to(dtype)).to(v.dtype)


@without_autocast
def tcwy_apply(v: Tensor, x: Tensor, *, transpose: bool = False) -> Tensor:
    r"""Multiply by the T-CWY matrix (or its transpose) without forming it.

    .. math::

        \Omega x = \begin{bmatrix} x \\ 0 \end{bmatrix} - U \bigl(S^{-1} (U_1^\top x)
        \bigr), \qquad
        \Omega^\top y = y_{1:M} - U_1 \bigl(S^{-\top} (U^\top y)\bigr),

    with :math:`\Omega` = ``tcwy(v)`` and :math:`U`, :math:`U_1`, :math:`S` as there.

    Parameters
    ----------
    v : Tensor, shape ``(*, N, M)`` with ``M <= N``
        Reflection vectors as columns.
    x : Tensor, shape ``(*, M, k)``, or ``(*, N, k)`` with ``transpose=True``
        The matrix to multiply, with the dtype and device of ``v``. Batch dimensions of
        ``v`` and ``x`` broadcast as in :func:`torch.matmul`.
    transpose : bool, default False
        Compute :math:`\Omega^\top x` instead of :math:`\Omega x`.

    Returns
    -------
    Tensor, shape ``(*, N, k)``, or ``(*, M, k)`` with ``transpose=True``

    Raises
    ------
    TypeError
        If an argument is not a real floating-point tensor or their dtypes differ.
    ValueError
        For wrong ranks or row counts, ``M > N``, different devices, NaN/Inf entries or
        a zero column of ``v``.

    Notes
    -----
    Cost: about :math:`4 N M k + 2 N M^2` flops.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import tcwy, tcwy_apply
    >>> v = torch.randn(6, 2, dtype=torch.float64)
    >>> x, y = torch.randn(2, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    >>> torch.allclose(tcwy_apply(v, x), tcwy(v) @ x)
    True
    >>> torch.allclose(tcwy_apply(v, y, transpose=True), tcwy(v).T @ y)
    True
    """
    v = check_vectors(v, thin=True)
    n, m = v.shape[-2:]
    x = check_rhs(x, "x", v, n if transpose else m, "N" if transpose else "M", transpose)
    u, s = _factors(v, x=x)
    dtype = product_dtype(v)
    uh, xh = u.to(dtype), x.to(dtype)
    if transpose:
        out = xh[..., :m, :] - uh[..., :m, :] @ _solve(s, uh.mT @ xh, transpose=True).to(dtype)
    else:
        out = F.pad(xh, (0, 0, 0, n - m)) - uh @ _solve(s, uh[..., :m, :].mT @ xh).to(dtype)
    return out.to(v.dtype)


@without_autocast
def householder_product(v: Tensor) -> Tensor:
    r"""Product of Householder reflections, one at a time (the reference for :func:`cwy`).

    .. math::

        Q = H(v_1) H(v_2) \cdots H(v_L), \qquad H(v) = I - 2 \frac{v v^\top}{\|v\|^2}.

    Unlike :func:`torch.linalg.householder_product`, which takes LAPACK's reflectors and
    scalars :math:`\tau` and returns the leading columns, this takes plain reflection
    vectors and returns the full :math:`N \times N` product, in the convention of
    :func:`cwy`.

    Parameters
    ----------
    v : Tensor, shape ``(*, N, L)``
        Reflection vectors as columns; column 1 is the leftmost factor.

    Returns
    -------
    Tensor, shape ``(*, N, N)``
        The product, with the dtype and device of ``v``.

    Raises
    ------
    TypeError
        If ``v`` is not a real floating-point tensor.
    ValueError
        If ``v`` has fewer than two dimensions, a NaN/Inf entry or a zero column.

    Notes
    -----
    Cost: :math:`4 N^2 L` flops in :math:`L` dependent rank-one updates
    :math:`Q \leftarrow Q - 2 (Q u_i) u_i^\top`, which do not parallelise over
    :math:`L`. Useful as a reference and for small sizes, not for speed.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import householder_product
    >>> e1 = torch.tensor([[1.0], [0.0]])
    >>> householder_product(e1)
    tensor([[-1.,  0.],
            [ 0.,  1.]])
    """
    v = check_vectors(v)
    u = _unit_columns(v, "v")
    n = v.shape[-2]
    q = torch.eye(n, dtype=u.dtype, device=u.device).expand(*v.shape[:-1], n)
    for i in range(v.shape[-1]):
        ui = u[..., i : i + 1]
        q = q - 2 * (q @ ui) @ ui.mT
    return q.to(v.dtype)
