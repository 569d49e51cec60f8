r"""PyTorch integration: orthogonal weights through CWY and T-CWY in ordinary models.

- :func:`orthogonal` makes a 2-D weight of any module orthogonal with one call, as
  :func:`torch.nn.utils.parametrizations.orthogonal` does; :func:`orthogonalize` gives
  the nearest matrix a parametrization reaches.
- :class:`OrthogonalLinear`: a linear layer with an orthogonal weight, trained by
  :mod:`torch.optim` or, with ``manifold_parameter=True``, by geoopt's optimizers
  together with parameters on other manifolds.
- :class:`OrthogonalRNNCell`, :class:`OrthogonalRNN`: RNNs with an orthogonal recurrent
  matrix, applied without forming it when it has fewer reflections than rows.
- :func:`copying_memory`, :func:`copying_memory_baseline`: the copying-memory task.

The user guide is ``docs/user_guide/nn.md``; it covers ``torch.compile``, saving, and DDP/FSDP.
"""

from .copying import copying_memory, copying_memory_baseline
from .linear import OrthogonalLinear
from .parametrizations import orthogonal, orthogonalize
from .rnn import OrthogonalRNN, OrthogonalRNNCell

__all__ = [
    "OrthogonalLinear",
    "OrthogonalRNN",
    "OrthogonalRNNCell",
    "copying_memory",
    "copying_memory_baseline",
    "orthogonal",
    "orthogonalize",
]
