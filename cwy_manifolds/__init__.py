"""cwy_manifolds: optimization over orthogonal and Stiefel matrices with CWY and T-CWY."""

from . import nn, problems
from ._checks import set_value_checks, value_checks_enabled
from .compare import compare
from .householder import cwy, cwy_apply, householder_product, tcwy, tcwy_apply
from .inverse import cwy_inverse, tcwy_inverse
from .manifolds import (
    CWY,
    MANIFOLDS,
    TCWY,
    CayleyStiefel,
    ExpStiefel,
    QRStiefel,
    from_matrix,
    get_manifold,
    matrix,
    renormalize_,
)

__version__ = "0.1.0"

__all__ = [
    "CWY",
    "MANIFOLDS",
    "TCWY",
    "CayleyStiefel",
    "ExpStiefel",
    "QRStiefel",
    "__version__",
    "compare",
    "cwy",
    "cwy_apply",
    "cwy_inverse",
    "from_matrix",
    "get_manifold",
    "householder_product",
    "matrix",
    "nn",
    "problems",
    "renormalize_",
    "set_value_checks",
    "tcwy",
    "tcwy_apply",
    "tcwy_inverse",
    "value_checks_enabled",
]
