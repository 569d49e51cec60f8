r"""PyTorch integration: orthogonal weights through CWY and T-CWY in ordinary models.

- :func:`orthogonal` makes a weight of any module orthogonal with one call (a matrix, a
  batch of matrices, or a flattened convolution kernel), as
  :func:`torch.nn.utils.parametrizations.orthogonal` does, through
  ``torch.nn.utils.parametrize``; :func:`orthogonalize` gives the nearest matrix a
  parametrization reaches.
- :class:`OrthogonalLinear`: a linear layer with an orthogonal weight, trained by
  :mod:`torch.optim` or, with ``manifold_parameter=True``, by geoopt's optimizers
  together with parameters on other manifolds.
- :class:`OrthogonalRNNCell`, :class:`OrthogonalRNN`: RNNs with an orthogonal recurrent
  matrix, a fused time loop, applied without forming the matrix when it has fewer
  reflections than rows.
- :func:`copying_memory`, :func:`copying_memory_baseline`: the copying-memory task.

The user guide is ``docs/user_guide/nn.md``: the parametrize protocol and how it differs
from PyTorch's ``orthogonal``, ``torch.compile``, saving, meta tensors, threads and
DDP/FSDP.
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
