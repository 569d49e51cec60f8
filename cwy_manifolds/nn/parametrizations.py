r"""Make a weight of any module orthogonal through CWY or T-CWY.

The counterpart of :func:`torch.nn.utils.parametrizations.orthogonal`: one call registers
a ``torch.nn.utils.parametrize`` parametrization whose free tensor holds reflection
vectors. See ``docs/user_guide/nn.md`` for the user guide and the comparison with
PyTorch's ``orthogonal``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..core import check_tensor
from ._map import Orthogonal
from ._protocol import attach

__all__ = ["orthogonal", "orthogonalize"]


def orthogonal(
    module: nn.Module,
    name: str = "weight",
    *,
    method: str | None = None,
    n_reflections: int | None = None,
    det: int | None = None,
    assign: str = "strict",
    flatten: bool = False,
) -> nn.Module:
    r"""Register a CWY or T-CWY parametrization that keeps ``module.<name>`` orthogonal.

    After the call, ``module.<name>`` is computed from a free tensor of reflection vectors
    :math:`V`, stored as ``module.parametrizations.<name>.original``:

    .. math::

        W = H(v_1) \cdots H(v_L) \, D^{s} \quad \text{(method "cwy", square)}, \qquad
        W = \Omega(V) \text{ or } \Omega(V)^\top \quad \text{(method "tcwy"; square:
        } \Omega(V) D^s),

    where :math:`H(v) = I - 2 v v^\top / \|v\|^2` is a Householder reflection,
    :math:`D = \operatorname{diag}(1, \dots, 1, -1)`, :math:`s \in \{0, 1\}` is fixed so that
    :math:`\det W` is ``det``, and :math:`\Omega(V)` (:func:`~cwy_manifolds.tcwy`) holds
    the first :math:`M` columns of the product of :math:`M` reflections. In plain words:
    a square weight becomes a product of reflections with a chosen determinant; a tall
    weight gets orthonormal columns, a wide one orthonormal rows. :math:`V` is
    unconstrained, so any :mod:`torch.optim` optimizer trains it and the weight cannot
    drift off the constraint. A tensor of more than two dimensions is a batch of matrices
    ``(*, rows, cols)``, as for PyTorch's ``orthogonal``; ``flatten=True`` reads it as one
    ``rows x prod(rest)`` matrix instead (the usual meaning for a convolution kernel).

    Parameters
    ----------
    module : torch.nn.Module
        The module whose tensor to parametrize; changed in place and returned.
    name : str, default "weight"
        Name of a parameter or buffer of ``module`` with at least two dimensions.
    method : {"cwy", "tcwy"}, optional
        Default ``"cwy"`` for square matrices, ``"tcwy"`` otherwise. ``"cwy"`` forms
        :math:`W` in about :math:`2 N^2 L` flops and lets you choose ``det`` and
        ``n_reflections``; ``"tcwy"`` forms an :math:`N \times M` matrix (:math:`M \le N`)
        in about :math:`3 N M^2` flops without an :math:`N \times N` intermediate, so it is
        the cheaper choice for tall and wide weights; on a square weight it takes
        ``det`` too (the sign flip of :class:`~cwy_manifolds.TCWY`).
    n_reflections : int, optional
        :math:`L` for ``"cwy"``; default :math:`N`. :math:`L < N` is cheaper and reaches
        only the matrices that fix an :math:`(N - L)`-dimensional subspace (after
        :math:`D`); the vectors are then the first :math:`L` columns of the free tensor.
    det : {+1, -1}, optional
        Determinant of a square weight; default the manifold's, +1 (the rotations
        :math:`SO(N)`). A fixed number of reflections reaches one component of
        :math:`O(N)` only (Note [determinant parity] in
        ``cwy_manifolds/core/householder.py``). Must be None for a non-square weight.
    assign : {"strict", "project"}, default "strict"
        What ``module.<name> = Q`` does with a matrix the parametrization does not reach:
        ``"strict"`` raises ``ValueError``; ``"project"`` takes the nearest matrix it
        reaches (:func:`orthogonalize`), as PyTorch's ``orthogonal`` takes the Q factor.
    flatten : bool, default False
        Read a weight ``(rows, *rest)`` as one matrix ``(rows, prod(rest))``.

    Returns
    -------
    torch.nn.Module
        ``module``, with the parametrization registered.

    Raises
    ------
    ValueError
        For an unknown ``method`` (the message lists the valid ones), a tensor with fewer
        than two dimensions, already parametrized, missing or with NaN/Inf entries,
        ``method="cwy"`` on non-square matrices, options that do not apply to ``method``,
        or ``n_reflections`` larger than :math:`N`.
    TypeError
        If the tensor is not real floating-point.

    Notes
    -----
    *Initial value.* Registration replaces the current weight by :func:`orthogonalize`
    of it (on the meta device nothing is computed: Note [meta tensors] in
    ``cwy_manifolds/nn/_protocol.py``). The tensor object is kept and keeps its shape
    (Note [free tensor layout] in ``cwy_manifolds/nn/_map.py``).

    *Assignment.* ``module.<name> = Q`` reads :math:`V` off ``Q`` with the manifold's
    ``from_matrix`` (the inverse maps :func:`~cwy_manifolds.cwy_inverse`,
    :func:`~cwy_manifolds.tcwy_inverse`); see ``assign``. PyTorch's
    ``transfer_parametrizations_and_params`` works: the registration it does projects,
    as registration here always does (Note [assignment is strict, registration
    projects]).

    *Optimizers.* The weight depends on each column of :math:`V` only through its
    direction, so the gradient is orthogonal to each column: plain gradient steps never
    shrink :math:`\|v_i\|`, and the effective step on a direction is about
    :math:`\mathrm{lr} / \|v_i\|^2`. Do not use weight decay on :math:`V`: it only shrinks
    the norms, which raises the effective step (put :math:`V` in a parameter group with
    ``weight_decay=0``). Start from a generic matrix, not the identity, where the map
    loses rank (Note [singular at the identity] in ``cwy_manifolds/manifolds/flat.py``).

    *Caching and compiling.* ``with torch.nn.utils.parametrize.cached():`` forms the
    weight once for all uses inside the block. Under :func:`torch.compile` the forward
    pass is one graph: on the CPU the check of the vectors is an assertion inside it
    (invalid vectors raise ``RuntimeError``); on accelerators it is a graph break unless
    ``cwy_manifolds.set_value_checks(False)`` (``docs/user_guide/nn.md``).

    *Saving.* ``state_dict()`` holds :math:`V` and the configuration, and loads with
    ``torch.load(..., weights_only=True)`` into a module parametrized the same way; into
    another configuration it raises ``ValueError`` (Note [configuration on load]).
    ``copy.deepcopy`` works. Pickling the whole module is refused by PyTorch for every
    parametrized module; the layers :class:`~cwy_manifolds.nn.OrthogonalLinear` and
    :class:`~cwy_manifolds.nn.OrthogonalRNN` pickle.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.nn import orthogonal
    >>> layer = orthogonal(torch.nn.Linear(5, 3))  # wide weight: orthonormal rows
    >>> w = layer.weight
    >>> torch.allclose(w @ w.T, torch.eye(3), atol=1e-5)
    True
    >>> layer.parametrizations.weight.original.shape  # the weight's shape
    torch.Size([3, 5])
    >>> rotation = orthogonal(torch.nn.Linear(4, 4, bias=False), det=1)
    >>> bool(torch.linalg.det(rotation.weight) > 0)
    True
    >>> conv = orthogonal(torch.nn.Conv2d(3, 4, 3), flatten=True)  # 4 x 27 kernel matrix
    >>> k = conv.weight.reshape(4, -1)
    >>> torch.allclose(k @ k.T, torch.eye(4), atol=1e-5)
    True
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    stacked = parametrize.is_parametrized(module, name)
    if stacked and isinstance(module.parametrizations[name][-1], Orthogonal):
        raise ValueError(
            f"name must name a tensor that is not orthogonal yet; got {name!r}, already "
            f"parametrized by cwy_manifolds in {type(module).__name__}. Remove that first "
            f"with torch.nn.utils.parametrize.remove_parametrizations(module, {name!r})"
        )
    if not stacked and name not in module._parameters and name not in module._buffers:
        raise ValueError(
            f"name must be a parameter or buffer of module; got {name!r}, which "
            f"{type(module).__name__} does not have"
        )
    weight = check_tensor(getattr(module, name), name, min_ndim=0)
    parametrization = Orthogonal.for_shape(
        tuple(weight.shape),
        name,
        method=method,
        n_reflections=n_reflections,
        det=det,
        flatten=flatten,
        assign=assign,
    )
    attach(module, name, parametrization)  # right_inverse projects the weight
    return module


def orthogonalize(
    weight: Tensor,
    *,
    method: str | None = None,
    n_reflections: int | None = None,
    det: int | None = None,
    flatten: bool = False,
) -> Tensor:
    r"""Return the orthogonal matrix of the kind a parametrization reaches closest to a weight.

    The kind is chosen by the options of :func:`~cwy_manifolds.nn.orthogonal`. With the
    singular value decomposition :math:`W = P \Sigma R^\top` (singular values in
    descending order) and :math:`D = \operatorname{diag}(1, \dots, 1, -1)`:

    .. math::

        \hat W = P R^\top \quad \text{(tall, wide, or square without a determinant)},
        \qquad
        \hat W = P D^{s} R^\top \quad \text{(square with determinant } d\text{)},

    with :math:`s = 1` when :math:`\det(P R^\top) \ne d`. These are the nearest matrices
    in Frobenius norm with orthonormal columns (rows, for a wide weight), and with
    determinant :math:`d`. In plain words: the orthogonal matrix closest to ``weight``, with
    the last singular direction reversed when the determinant has to change.

    Parameters
    ----------
    weight : Tensor, shape ``(*, rows, cols)``
        Any real floating-point matrix or batch of matrices; it is not modified.
    method, n_reflections, det, flatten
        As in :func:`~cwy_manifolds.nn.orthogonal`: ``det`` (default +1) is the
        determinant of a square weight, for ``"cwy"`` and ``"tcwy"`` alike.

    Returns
    -------
    Tensor, shape of ``weight``
        With the dtype and device of ``weight``, detached: the manifold's
        :meth:`~cwy_manifolds.manifolds.MatrixManifold.nearest` of the tall matrix.

    Raises
    ------
    ValueError
        For NaN/Inf entries, and the bad options listed in
        :func:`~cwy_manifolds.nn.orthogonal`.

    Notes
    -----
    With ``n_reflections = L < N`` the parametrization reaches a strict subset of the
    component (matrices :math:`P D^s` where :math:`P` fixes an :math:`(N - L)`-dimensional
    subspace), whose nearest point has no closed form. The result then agrees with
    :math:`\hat W` on the :math:`L` columns that :math:`\hat W D^s` moves most (greedy
    Cartan-Dieudonne construction, Note [fewer reflections] in
    ``cwy_manifolds/core/inverse.py``): close to ``weight``, but not the nearest point.
    Cost: one SVD, :math:`O(N^3)`; meant for initialisation, not for the inner loop.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.nn import orthogonalize
    >>> w = orthogonalize(torch.randn(3, 5, dtype=torch.float64))  # wide: orthonormal rows
    >>> torch.allclose(w @ w.T, torch.eye(3, dtype=torch.float64))
    True
    >>> q = orthogonalize(torch.randn(4, 4), det=-1)
    >>> round(float(torch.linalg.det(q)))
    -1
    """
    weight = check_tensor(weight, "weight", min_ndim=0)
    parametrization = Orthogonal.for_shape(
        tuple(weight.shape),
        "weight",
        method=method,
        n_reflections=n_reflections,
        det=det,
        flatten=flatten,
    )
    if weight.is_meta:
        return torch.empty_like(weight)
    tall = parametrization.manifold.nearest(parametrization.tall(weight), name="weight")
    return parametrization.untall(tall)
