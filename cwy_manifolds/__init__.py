"""cwy_manifolds: optimization over orthogonal and Stiefel matrices with CWY and T-CWY.

The layers, inner to outer (each depends only on those before it):

- :mod:`cwy_manifolds.core`: the functional core, pure torch;
- :mod:`cwy_manifolds.manifolds`: geoopt manifolds over the core;
- :mod:`cwy_manifolds.registry`: the one table of methods and optimizers;
- :mod:`cwy_manifolds.nn`: PyTorch layers and parametrizations;
- :mod:`cwy_manifolds.problems`: problems with known answers;
- :mod:`cwy_manifolds.tools`: the comparison harness, plots and the speed benchmark;
- :mod:`cwy_manifolds.cli`: the ``cwy-manifolds`` command.
"""

import warnings as _warnings

with _warnings.catch_warnings():
    # geoopt 0.5.1 calls torch.jit.script when imported, which torch >= 2.9 deprecates:
    # silence that one warning around this one import, so that a user's `-W error`
    # (or pytest's filterwarnings = error) does not fail on `import cwy_manifolds`.
    _warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
    import geoopt as _geoopt  # noqa: F401

from . import nn, problems
from .core import (
    cwy,
    cwy_apply,
    cwy_inverse,
    householder_product,
    set_value_checks,
    tcwy,
    tcwy_apply,
    tcwy_inverse,
    value_checks_enabled,
)
from .manifolds import (
    CWY,
    TCWY,
    CayleyStiefel,
    ExpStiefel,
    QRStiefel,
    check_weight_decay,
    from_matrix,
    matrix,
    renormalize_,
)
from .registry import METHODS, OPTIMIZERS, get_manifold

__version__ = "0.1.0"

__all__ = [
    "CWY",
    "METHODS",
    "OPTIMIZERS",
    "TCWY",
    "CayleyStiefel",
    "ExpStiefel",
    "QRStiefel",
    "__version__",
    "check_weight_decay",
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


def __getattr__(name: str) -> object:
    """Lazy names: ``compare`` (imports the tools); ``MANIFOLDS`` is deprecated."""
    if name == "compare":
        from .tools.compare import compare

        return compare
    if name == "MANIFOLDS":
        from .manifolds import moved_name

        return moved_name(name, owner=__name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
