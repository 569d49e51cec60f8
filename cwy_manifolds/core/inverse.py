r"""Inverse maps: reflection vectors for a given orthogonal or Stiefel matrix.

Both maps run a Householder QR of the target :math:`A` (:math:`N \times M`) in which
step :math:`i` picks the reflection that sends the active column :math:`x` (rows
:math:`i..N` of column :math:`i`) to :math:`+\|x\| e_i`. After :math:`M` steps
:math:`H(v_M) \cdots H(v_1) A = [I; 0]`, so :math:`A` is the first :math:`M` columns of
:math:`H(v_1) \cdots H(v_M)`.

Note [exact edge cases]
~~~~~~~~~~~~~~~~~~~~~~~
The textbook vector :math:`v = x - \|x\| e_i` loses all accuracy when :math:`x` is close
to :math:`+\|x\| e_i`; its first entry is computed as
:math:`-\|x_{\mathrm{rest}}\|^2 / (x_1 + \|x\|)` instead. When :math:`x` equals
:math:`+\|x\| e_i` exactly, :math:`v = 0` defines no reflection, yet a reflection is
still needed to keep the count at :math:`M`: for :math:`i < N` the map uses
:math:`v = e_N`, which only negates row :math:`N` of the columns not yet finished
(finished columns are zero there). For a square target the last step has no such
freedom: the last entry is :math:`\pm 1` and only :math:`-1` can be sent to :math:`+1`
by a reflection. That is the determinant rule (Note [determinant parity] in
``householder.py``).

Note [blocked inverse]
~~~~~~~~~~~~~~~~~~~~~~
Each step depends on the previous one, so the :math:`M` steps run one after the other.
They work on a panel of ``_PANEL`` columns only; the rest of the matrix is updated once
per panel, by the compact WY form of the panel's reflections,
:math:`X \leftarrow X - U (S^{-\top} (U^\top X))` (module doc of ``householder.py``):
matrix products instead of one rank-one update per step. LAPACK's Householder QR
(:func:`torch.geqrf`) cannot stand in for the loop: it sends :math:`x` to
:math:`-\operatorname{sign}(x_1) \|x\| e_i`, and where that differs from
:math:`+\|x\| e_i` the two reflections differ by a reflection of the remaining rows
(:math:`H(x - \|x\| e_i) = H(x_{\mathrm{rest}}) H(x + \|x\| e_i)` on the columns still
to come), which changes every later vector; so LAPACK's vectors are those of :math:`A D`
for the signs :math:`D` of the diagonal of :math:`R`, not of :math:`A`, and no local
conversion exists.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import all_true, check_tensor, has_values, host_view
from .precision import orthonormality_atol, without_autocast, work_dtype

__all__ = ["cwy_inverse", "tcwy_inverse"]

#: Columns per panel of reflection_vectors (Note [blocked inverse]).
_PANEL = 32


def check_orthonormal(a: Tensor, name: str, atol: float | None) -> Tensor:
    r"""Validate ``a`` as a matrix with orthonormal columns; return it.

    One host read for finiteness and orthonormality together (a NaN or Inf entry makes
    the residual NaN or Inf); skipped for tensors without values (Note [value checks]).

    Parameters
    ----------
    a : Tensor, shape ``(*, N, M)``
        The matrix to check.
    name : str
        Its name in the messages.
    atol : float or None
        Tolerance on :math:`\max |a^\top a - I|`; None: :func:`orthonormality_atol`.

    Returns
    -------
    torch.Tensor
        ``a``, unchanged.

    Raises
    ------
    TypeError
        If ``a`` is not a real floating-point tensor.
    ValueError
        If ``a`` has more columns than rows, a NaN/Inf entry, or columns that are not
        orthonormal within ``atol``.
    """
    a = check_tensor(a, name)
    n, m = a.shape[-2:]
    if m > n:
        raise ValueError(
            f"{name} must have at most as many columns as rows (M <= N); got shape {tuple(a.shape)}"
        )
    if atol is None:
        atol = orthonormality_atol(n, a.dtype)
    if not has_values(a) or a.numel() == 0:
        return a
    aw = a.detach().to(work_dtype(a.dtype))
    eye = torch.eye(m, dtype=aw.dtype, device=aw.device)
    resid = (aw.mT @ aw - eye).abs().amax(dim=(-2, -1))
    if not all_true(resid <= atol):
        bad = int((~torch.isfinite(host_view(a))).sum())
        if bad:
            raise ValueError(
                f"{name} must have finite entries; got {bad} NaN/Inf entries in shape "
                f"{tuple(host_view(a).shape)}"
            )
        raise ValueError(
            f"{name} must have orthonormal columns; got max |{name}^T {name} - I| = "
            f"{float(host_view(resid).max()):.2e} > atol = {atol:.2e}. Orthonormalise it "
            "first (e.g. with torch.linalg.qr) or pass a larger atol"
        )
    return a


def _step(x: Tensor, fallback: Tensor) -> tuple[Tensor, Tensor]:
    """Return the unit vector of the reflection sending ``x`` (..., R) to ``+||x|| e_1``.

    Also returns where ``x`` already is ``+||x|| e_1``, and ``fallback`` (``e_R``, Note
    [exact edge cases]) is used instead.
    """
    head, rest = x[..., :1], x[..., 1:]
    rest_sq = (rest * rest).sum(-1, keepdim=True)
    norm = torch.sqrt(head * head + rest_sq)
    # Note [exact edge cases]: no cancellation in head - norm when head > 0.
    v = torch.cat([torch.where(head > 0, -rest_sq / (head + norm), head - norm), rest], -1)
    scale = v.abs().amax(dim=-1, keepdim=True)  # 0 exactly when x = +||x|| e_1
    v = torch.where(scale > 0, v / scale, fallback)
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True), (scale == 0).squeeze(-1)


def reflection_vectors(a: Tensor) -> tuple[Tensor, Tensor]:
    """Return the vectors of a Householder QR of ``a`` onto ``[I; 0]`` (see module doc).

    Panels of ``_PANEL`` columns (Note [blocked inverse]); works under :func:`torch.vmap`
    and on the ``meta`` device. Unchecked: validate ``a`` first (:func:`check_orthonormal`).

    Parameters
    ----------
    a : Tensor, shape ``(*, N, M)``
        A matrix with orthonormal columns, ``M <= N``.

    Returns
    -------
    vectors : Tensor, shape ``(*, N, M)``
        Unit reflection vectors, in the working dtype.
    stuck : Tensor, shape ``(*)``
        For each batch item, whether the last step found the entry +1 that no reflection
        can keep (square case: the other determinant).
    """
    a = a.detach().to(work_dtype(a.dtype), copy=True)
    n, m = a.shape[-2:]
    vectors = torch.zeros_like(a)
    stuck = torch.zeros(a.shape[:-2], dtype=torch.bool, device=a.device)
    e_last = torch.zeros(n, dtype=a.dtype, device=a.device)
    e_last[-1:] = 1
    for start in range(0, m, _PANEL):
        stop = min(start + _PANEL, m)
        for i in range(start, stop):
            v, found_e = _step(a[..., i:, i], e_last[i:])
            if i == n - 1:  # square target, last step: +1 cannot be kept (parity)
                stuck = found_e
            vectors[..., i:, i] = v
            panel = a[..., i:, i + 1 : stop]
            panel -= 2 * v[..., :, None] * (v[..., None, :] @ panel)
        if stop < m:  # the other columns: X <- H(u_b) ... H(u_1) X = X - U S^{-T} U^T X
            u = vectors[..., start:, start:stop]
            s = torch.triu(u.mT @ u, diagonal=1)
            s.diagonal(dim1=-2, dim2=-1).fill_(0.5)
            others = a[..., start:, stop:]
            others -= u @ torch.linalg.solve_triangular(s.mT, u.mT @ others, upper=False)
    return vectors, stuck


def _check_parity(stuck: Tensor, name: str, fn: str, n: int) -> None:
    """Raise the determinant error where the last step was stuck (see module doc)."""
    if has_values(stuck) and not all_true(~stuck):
        raise _parity_error(name, fn, n, host_view(stuck))


def _parity_error(name: str, fn: str, n: int, stuck: Tensor) -> ValueError:
    sign = "+1" if n % 2 == 0 else "-1"
    other = "-1" if n % 2 == 0 else "+1"
    count = f"{int(stuck.sum())} of {stuck.numel()} matrices" if stuck.ndim else "the matrix"
    return ValueError(
        f"{name} must have determinant (-1)^N = {sign} (N = {n}) to be a product of N "
        f"reflections; {count} has determinant {other}. Flip the sign of its last column "
        f"first: with D = diag(1, ..., 1, -1), v = {fn}({name} @ D) gives "
        f"{fn.removesuffix('_inverse')}(v) @ D == {name}"
    )


@without_autocast
def cwy_inverse(q: Tensor, *, atol: float | None = None) -> Tensor:
    r"""Reflection vectors whose CWY matrix is a given orthogonal matrix.

    Returns :math:`V` with ``cwy(V) == q``, that is
    :math:`H(v_1) \cdots H(v_N) = Q`, from a Householder QR of :math:`Q` in which every
    step maps the active column to :math:`+\|x\| e_i` (Note [exact edge cases] in
    ``cwy_manifolds/core/inverse.py``).

    Parameters
    ----------
    q : Tensor, shape ``(*, N, N)``
        Orthogonal matrices with determinant :math:`(-1)^N`.
    atol : float, optional
        Tolerance on :math:`\max |Q^\top Q - I|`. Default
        :math:`\min(\sqrt{\varepsilon}, 0.05) + 10 \sqrt{N} \varepsilon_w` for the
        machine epsilon :math:`\varepsilon` of the dtype of ``q`` and
        :math:`\varepsilon_w` of its working dtype (float32 for half precision): about
        1.5e-8 (float64), 3.5e-4 (float32), 0.031 (float16), 0.05 (bfloat16); see Note
        [orthonormality tolerance] in ``cwy_manifolds/core/checks.py``. Within it, the result
        stands for the orthogonal factor of the QR decomposition of ``q`` with positive
        diagonal.

    Returns
    -------
    Tensor, shape ``(*, N, N)``
        Unit-norm reflection vectors as columns, with the dtype and device of ``q``.

    Raises
    ------
    TypeError
        If ``q`` is not a real floating-point tensor.
    ValueError
        If ``q`` is not square, not finite, not orthogonal within ``atol``, or has
        determinant :math:`-(-1)^N`: :math:`N` reflections cannot reach it (Note
        [determinant parity]); the message says how to use the sign flip :math:`D`.

    Notes
    -----
    Cost: :math:`\tfrac43 N^3` flops in :math:`N` dependent steps (Note [blocked
    inverse]), plus :math:`N^3` for the orthogonality check; two host reads for the
    checks (orthogonality, determinant). The checks do not depend on
    :class:`~cwy_manifolds.set_value_checks`; they are skipped only for tensors without
    values (``meta``, ``FakeTensor``), and under :func:`torch.vmap` they cover all batch
    items (Note [value checks]). Meant for initialisation and assignment, not for the
    inner loop; the result is not differentiable (it is detached from the graph of
    ``q``).

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import cwy, cwy_inverse
    >>> q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    >>> q[:, 0] *= torch.det(q).sign()  # 4 reflections have determinant +1
    >>> torch.allclose(cwy(cwy_inverse(q)), q)
    True
    """
    q = check_orthonormal(q, "q", atol)
    if q.shape[-1] != q.shape[-2]:
        raise ValueError(f"q must be square; got shape {tuple(q.shape)}")
    v, stuck = reflection_vectors(q)
    _check_parity(stuck, "q", "cwy_inverse", q.shape[-1])
    return v.to(q.dtype)


@without_autocast
def tcwy_inverse(omega: Tensor, *, atol: float | None = None) -> Tensor:
    r"""Reflection vectors whose T-CWY matrix is a given Stiefel matrix.

    Returns :math:`V` (:math:`N \times M`) with ``tcwy(V) == omega``, that is
    :math:`\Omega` is the first :math:`M` columns of :math:`H(v_1) \cdots H(v_M)`, from a
    Householder QR of :math:`\Omega` (Note [exact edge cases] in
    ``cwy_manifolds/core/inverse.py``).

    Parameters
    ----------
    omega : Tensor, shape ``(*, N, M)`` with ``M <= N``
        Matrices with orthonormal columns. For :math:`M < N` every such matrix is
        reached; for :math:`M = N` the determinant must be :math:`(-1)^N`, as in
        :func:`cwy_inverse`.
    atol : float, optional
        Tolerance on :math:`\max |\Omega^\top \Omega - I|`; default as in
        :func:`cwy_inverse`.

    Returns
    -------
    Tensor, shape ``(*, N, M)``
        Unit-norm reflection vectors as columns, with the dtype and device of ``omega``.

    Raises
    ------
    TypeError
        If ``omega`` is not a real floating-point tensor.
    ValueError
        If ``omega`` has more columns than rows, is not finite, does not have
        orthonormal columns within ``atol``, or is square with determinant
        :math:`-(-1)^N`.

    Notes
    -----
    Cost: about :math:`2 N M^2` flops in :math:`M` dependent steps, plus :math:`N M^2`
    for the orthonormality check; checks as in :func:`cwy_inverse`.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import tcwy, tcwy_inverse
    >>> omega, _ = torch.linalg.qr(torch.randn(6, 2, dtype=torch.float64))
    >>> torch.allclose(tcwy(tcwy_inverse(omega)), omega)
    True
    """
    omega = check_orthonormal(omega, "omega", atol)
    v, stuck = reflection_vectors(omega)
    _check_parity(stuck, "omega", "tcwy_inverse", omega.shape[-1])
    return v.to(omega.dtype)


def few_reflections(p: Tensor, n_refl: int, atol: float) -> tuple[Tensor, Tensor]:
    r"""``n_refl`` unit vectors with ``cwy(v) == p`` for orthogonal ``p`` (..., N, N).

    Note [fewer reflections]
    ~~~~~~~~~~~~~~~~~~~~~~~~
    A product of :math:`L` reflections fixes the :math:`(N - L)`-dimensional (at least)
    intersection of their mirror hyperplanes; conversely (Cartan-Dieudonne) an orthogonal
    :math:`P` with :math:`\operatorname{rank}(P - I) = r` is a product of :math:`r`
    reflections. Greedy construction: pick the column :math:`j` with the largest
    :math:`\|P e_j - e_j\|` and reflect with :math:`v = P e_j - e_j`, which swaps
    :math:`P e_j` and :math:`e_j` and leaves every vector fixed by :math:`P` fixed; so
    :math:`H(v) P` fixes one more dimension. When :math:`P` is already the identity the
    step uses :math:`e_N`, and the next step undoes it, so the count can be padded by
    pairs. Also returns ``max |H(v_L) ... H(v_1) P - I|`` per batch item: above ``atol``,
    :math:`P` is not a product of :math:`L` reflections.
    """
    p = p.detach().to(work_dtype(p.dtype)).clone()
    n = p.shape[-1]
    eye = torch.eye(n, dtype=p.dtype, device=p.device)
    vectors = p.new_zeros(*p.shape[:-1], n_refl)
    for i in range(n_refl):
        diff = p - eye
        norms = torch.linalg.vector_norm(diff, dim=-2)  # (..., N)
        best, j = norms.max(dim=-1, keepdim=True)
        v = torch.take_along_dim(diff, j.unsqueeze(-2), dim=-1).squeeze(-1)
        v = torch.where(best > atol, v / best.clamp_min(atol), eye[-1])
        v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        p -= 2 * v[..., :, None] * (v[..., None, :] @ p)
        vectors[..., i] = v
    return vectors, (p - eye).abs().amax(dim=(-2, -1))
