r"""The functional core: pure tensor functions, batched, differentiable, any device.

Everything else in the package is built on this subpackage, and it depends on nothing
but torch (a test forbids geoopt, numpy and scipy imports here).

- ``cwy_manifolds.core.householder``: the maps :func:`~cwy_manifolds.cwy`,
  :func:`~cwy_manifolds.tcwy`, their matrix-free forms :func:`~cwy_manifolds.cwy_apply`,
  :func:`~cwy_manifolds.tcwy_apply`, and the sequential reference
  :func:`~cwy_manifolds.householder_product`;
- ``cwy_manifolds.core.wy``: the fast path, one autograd function with a
  hand-derived backward pass;
- ``cwy_manifolds.core.inverse``: the inverse maps :func:`~cwy_manifolds.cwy_inverse`,
  :func:`~cwy_manifolds.tcwy_inverse` and :func:`~cwy_manifolds.core.few_reflections`;
- ``cwy_manifolds.core.sampling``: Haar sampling (of matrices and of their reflection
  vectors) and the sign flip :math:`D`;
- ``cwy_manifolds.core.checks``: input checks and :class:`~cwy_manifolds.set_value_checks`;
- ``cwy_manifolds.core.precision``: working dtypes, the orthonormality tolerance and
  autocast off inside the core (Notes [precision], [autocast]).
"""

from .checks import (
    all_true,
    check_tensor,
    column_norms,
    column_scale,
    has_values,
    set_value_checks,
    under_transforms,
    value_checks_enabled,
)
from .householder import cwy, cwy_apply, householder_product, tcwy, tcwy_apply
from .inverse import (
    check_orthonormal,
    cwy_inverse,
    few_reflections,
    reflection_vectors,
    tcwy_inverse,
)
from .precision import autocast_off, orthonormality_atol, work_dtype
from .sampling import flip_last_column, haar, haar_vectors

__all__ = [
    "all_true",
    "autocast_off",
    "check_orthonormal",
    "check_tensor",
    "column_norms",
    "column_scale",
    "cwy",
    "cwy_apply",
    "cwy_inverse",
    "few_reflections",
    "flip_last_column",
    "haar",
    "haar_vectors",
    "has_values",
    "householder_product",
    "orthonormality_atol",
    "reflection_vectors",
    "set_value_checks",
    "tcwy",
    "tcwy_apply",
    "tcwy_inverse",
    "under_transforms",
    "value_checks_enabled",
    "work_dtype",
]
