r"""Recurrent networks with an orthogonal recurrent matrix (CWY).

An orthogonal recurrent matrix preserves the norm of the hidden state and of the
back-propagated gradient, which is what lets such networks learn long-range dependencies
(the copying task of ``examples/plot_copying_task.py``).

Note [recurrence without forming the matrix]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
:class:`OrthogonalRNN` prepares the recurrent map once per forward pass. With
:math:`L = N` reflections it forms :math:`W_{hh}` through the parametrization (about
:math:`2 N^3` flops, once per ``parametrize.cached()`` block; the core checks the vectors
there) and each step costs a product :math:`2 N^2 B` for a batch of :math:`B`. With
:math:`L < N` it never forms :math:`W_{hh}`: it asks the manifold to check the vectors
once (the core's ``column_scale``, skipped when
``cwy_manifolds.value_checks_enabled()`` is false), prepares the factors :math:`U`,
:math:`K` of :math:`Q^\top = I - U K` once (about :math:`2 N L^2` flops), and each step
costs about :math:`4 N L B`. The steps are plain torch operations in one fused loop
(Note [fused recurrence] in ``_recurrence.py``): no step calls the checked core API and
no global setting is changed, so other threads are not affected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import autocast_off, flip_last_column
from ._map import quoted
from ._protocol import PicklableParametrized
from ._recurrence import RecurrentMap, run, transpose_factors
from .linear import register_orthogonal, reset_orthogonal

__all__ = ["OrthogonalRNN", "OrthogonalRNNCell"]

#: Nonlinearities of the recurrent cells.
NONLINEARITIES = ("modrelu", "tanh", "relu")
#: How errors name the vectors of the recurrent matrix.
_VECTORS_NAME = "weight_hh's reflection vectors (parametrizations.weight_hh.original)"


class OrthogonalRNNCell(PicklableParametrized, nn.Module):
    r"""One step of an Elman RNN whose recurrent matrix is orthogonal (CWY).

    .. math::

        h' = \sigma\bigl(W_{ih} x + W_{hh} h + b\bigr), \qquad
        \operatorname{modReLU}_b(z) = \operatorname{sign}(z) \max(|z| + b, 0),

    where :math:`W_{hh} = H(v_1) \cdots H(v_L) D^s` is orthogonal with determinant ``det``
    (see :func:`~cwy_manifolds.nn.orthogonal`), :math:`x` is the input and :math:`h` the
    hidden state. For ``nonlinearity="modrelu"`` (the choice of the expRNN and scoRNN
    papers) the bias :math:`b` enters as the threshold of modReLU instead:
    :math:`h' = \operatorname{modReLU}_b(W_{ih} x + W_{hh} h)`.

    Parameters
    ----------
    input_size, hidden_size : int
        Sizes of the input :math:`x` and of the hidden state :math:`h` (:math:`N`).
    bias : bool, default True
        Learn :math:`b`. Required for ``"modrelu"`` (without it modReLU is the identity).
    nonlinearity : {"modrelu", "tanh", "relu"}, default ``"modrelu"``
        :math:`\sigma`.
    n_reflections, det : optional
        :math:`L` (default :math:`N`) and the determinant (default +1) of :math:`W_{hh}`.
        With :math:`L < N`, :math:`W_{hh}` is applied without being formed.
    manifold_parameter : bool, default False
        Store the reflection vectors as a :class:`geoopt.ManifoldParameter` on
        :class:`~cwy_manifolds.CWY` (see :class:`~cwy_manifolds.nn.OrthogonalLinear`).
    device, dtype : optional
        Factory arguments of the parameters (``device="meta"``: see
        :class:`~cwy_manifolds.nn.OrthogonalLinear`).

    Attributes
    ----------
    weight_ih : torch.nn.Parameter, shape ``(hidden_size, input_size)``
        He-normal initialisation (as in expRNN).
    weight_hh : Tensor, shape ``(hidden_size, hidden_size)``
        The orthogonal recurrent matrix, a parametrized tensor: the reflection vectors are
        ``parametrizations.weight_hh.original`` (as for
        :class:`~cwy_manifolds.nn.OrthogonalLinear`), initialised so that :math:`W_{hh}`
        is Haar-distributed on its component (Gaussian vectors for :math:`L < N`). No
        weight decay on them.
    bias : torch.nn.Parameter or None, shape ``(hidden_size,)``
        Initialised uniformly in :math:`[-0.01, 0.01]`.

    Notes
    -----
    Each call prepares :math:`W_{hh}` again (unless inside ``parametrize.cached()``): for
    sequences use :class:`OrthogonalRNN`, which prepares it once per sequence. As
    ``torch.nn.RNNCell``, the cell checks shapes, not values: NaN in ``hx``
    propagates.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.nn import OrthogonalRNNCell
    >>> cell = OrthogonalRNNCell(3, 8)
    >>> h = torch.zeros(2, 8)
    >>> for x in torch.randn(5, 2, 3):  # 5 steps, batch of 2
    ...     h = cell(x, h)
    >>> h.shape
    torch.Size([2, 8])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        nonlinearity: str = "modrelu",
        n_reflections: int | None = None,
        det: int | None = None,
        manifold_parameter: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if nonlinearity not in NONLINEARITIES:
            names = quoted(NONLINEARITIES)
            raise ValueError(f"nonlinearity must be one of {names}; got {nonlinearity!r}")
        if nonlinearity == "modrelu" and not bias:
            raise ValueError(
                "bias must be True for nonlinearity 'modrelu' (without its bias modReLU is the "
                "identity); got False"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size, **factory))
        register_orthogonal(
            self,
            "weight_hh",
            (hidden_size, hidden_size),
            method="cwy",
            n_reflections=n_reflections,
            det=det,
            manifold_parameter=manifold_parameter,
            **factory,
        )
        self.bias = nn.Parameter(torch.empty(hidden_size, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw new parameters (see the attributes for the distributions)."""
        with torch.no_grad():
            if self.weight_ih.numel():
                nn.init.kaiming_normal_(self.weight_ih, nonlinearity="relu")
            if self.bias is not None:
                self.bias.uniform_(-0.01, 0.01)
        reset_orthogonal(self, "weight_hh")

    def _recurrent_map(self) -> RecurrentMap:
        r"""Prepare :math:`h \mapsto h W_{hh}^\top` for rows ``h`` ``(B, N)``, checked once.

        :math:`W_{hh}` formed for :math:`L = N` (or when other parametrizations are
        stacked on ``weight_hh``); factors for :math:`L < N` (Note [recurrence without
        forming the matrix] in ``cwy_manifolds/nn/rnn.py``).
        """
        plist = self.parametrizations.weight_hh
        parametrization = plist[0]
        if parametrization.count == self.hidden_size or len(plist) > 1:
            return RecurrentMap(dense=self.weight_hh.mT)
        v = parametrization.vectors(plist.original)
        with autocast_off(v.device):  # checked there, in the graph under compile (CPU)
            u, k = transpose_factors(v, _VECTORS_NAME)
        if not parametrization.flips():
            return RecurrentMap(u=u, k=k)
        signs = flip_last_column(torch.ones(self.hidden_size, dtype=u.dtype, device=u.device))
        return RecurrentMap(u=flip_last_column(u.mT).mT, k=k, signs=signs)

    def _input_map(self, x: Tensor) -> Tensor:
        """Pre-activations from the input: :math:`W_{ih} x` (plus the bias unless modReLU)."""
        bias = None if self.nonlinearity == "modrelu" else self.bias
        return F.linear(x, self.weight_ih, bias)

    def _check(self, input: Tensor, hx: Tensor | None) -> None:
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"input must have shape (B, {self.input_size}) or ({self.input_size},); got "
                f"{tuple(input.shape)}"
            )
        expected = (*input.shape[:-1], self.hidden_size)
        if hx is not None and tuple(hx.shape) != expected:
            raise ValueError(f"hx must have shape {expected}; got {tuple(hx.shape)}")

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """Return the next hidden state for ``input`` (B, input_size) or (input_size,).

        ``hx`` has shape ``(B, hidden_size)`` (``(hidden_size,)`` with an unbatched input);
        default zeros. Shapes are checked as by ``torch.nn.RNNCell``.
        """
        self._check(input, hx)
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        else:
            h = hx if batched else hx.unsqueeze(0)
        xp = self._input_map(x).unsqueeze(0)
        h = run(xp, h, self._recurrent_map(), self.nonlinearity, self.bias)[0]
        return h if batched else h.squeeze(0)

    def extra_repr(self) -> str:
        """Describe the sizes and options in the repr."""
        return (
            f"{self.input_size}, {self.hidden_size}, bias={self.bias is not None}, "
            f"nonlinearity={self.nonlinearity!r}"
        )


class OrthogonalRNN(nn.Module):
    r"""A one-layer RNN with an orthogonal recurrent matrix, for whole sequences.

    Applies :class:`OrthogonalRNNCell` along a sequence, with the interface of
    :class:`torch.nn.RNN` (one layer, one direction): for :math:`t = 1, \dots, T`,

    .. math::

        h_t = \sigma\bigl(W_{ih} x_t + W_{hh} h_{t-1} + b\bigr).

    The input projection :math:`W_{ih} x_t` is computed for all steps at once, the
    recurrent map is prepared once per forward pass (:math:`W_{hh}` formed for
    :math:`L = N`, applied matrix-free for :math:`L < N`: Note [recurrence without forming
    the matrix] in ``cwy_manifolds/nn/rnn.py``), and the time loop is fused, with a
    hand-derived backward pass (Note [fused recurrence] in ``_recurrence.py``).

    Parameters
    ----------
    input_size, hidden_size, bias, nonlinearity, n_reflections, det, manifold_parameter
        As in :class:`OrthogonalRNNCell`.
    batch_first : bool, default False
        Batched input and output are ``(B, T, *)`` instead of ``(T, B, *)``.
    device, dtype : optional
        Factory arguments of the parameters.

    Attributes
    ----------
    cell : OrthogonalRNNCell
        Holds the parameters (``cell.weight_ih``, ``cell.weight_hh`` (parametrized),
        ``cell.bias``).

    Notes
    -----
    Under :func:`torch.compile` the forward pass is one graph: on the CPU the one check of
    the vectors is an assertion inside it (invalid vectors raise ``RuntimeError``); on
    accelerators it is a graph break unless ``cwy_manifolds.set_value_checks(False)``
    (``docs/user_guide/nn.md``). As :class:`torch.nn.RNN`, the
    values of ``input`` and ``hx`` are not checked: NaN propagates.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.nn import OrthogonalRNN
    >>> rnn = OrthogonalRNN(4, 16, n_reflections=4)  # W_hh never formed
    >>> output, h_n = rnn(torch.randn(10, 2, 4))  # T = 10 steps, batch of 2
    >>> output.shape, h_n.shape
    (torch.Size([10, 2, 16]), torch.Size([1, 2, 16]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        batch_first: bool = False,
        nonlinearity: str = "modrelu",
        n_reflections: int | None = None,
        det: int | None = None,
        manifold_parameter: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.cell = OrthogonalRNNCell(
            input_size,
            hidden_size,
            bias,
            nonlinearity=nonlinearity,
            n_reflections=n_reflections,
            det=det,
            manifold_parameter=manifold_parameter,
            device=device,
            dtype=dtype,
        )

    def reset_parameters(self) -> None:
        """Draw new parameters, as :meth:`OrthogonalRNNCell.reset_parameters` does."""
        self.cell.reset_parameters()

    @property
    def input_size(self) -> int:
        """Size of each input step."""
        return self.cell.input_size

    @property
    def hidden_size(self) -> int:
        """Size of the hidden state."""
        return self.cell.hidden_size

    def _check(self, input: Tensor, hx: Tensor | None) -> None:
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"input must have shape {layout} or (T, input_size) with input_size = "
                f"{self.input_size}; got {tuple(input.shape)}"
            )
        batch = (input.shape[0 if self.batch_first else 1],) if input.ndim == 3 else ()
        expected = (1, *batch, self.hidden_size)
        if hx is not None and tuple(hx.shape) != expected:
            raise ValueError(f"hx must have shape {expected}; got {tuple(hx.shape)}")

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Run the sequence ``input``; return ``(output, h_n)`` as :class:`torch.nn.RNN` does.

        Parameters
        ----------
        input : Tensor
            Shape ``(T, B, input_size)``, ``(B, T, input_size)`` with ``batch_first``, or
            ``(T, input_size)`` unbatched.
        hx : Tensor, optional
            Initial hidden state, shape ``(1, B, hidden_size)`` (``(1, hidden_size)``
            unbatched); default zeros.

        Returns
        -------
        output : Tensor
            The hidden states :math:`h_1, \dots, h_T`, laid out as ``input``.
        h_n : Tensor
            :math:`h_T`, shape ``(1, B, hidden_size)`` (``(1, hidden_size)`` unbatched).
        """
        self._check(input, hx)
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        size = x.shape[1]
        h0 = x.new_zeros(size, self.hidden_size) if hx is None else hx.reshape(size, -1)
        cell = self.cell
        states = run(cell._input_map(x), h0, cell._recurrent_map(), cell.nonlinearity, cell.bias)
        h_n = states[-1] if states.shape[0] else h0
        if batched and self.batch_first:
            states = states.transpose(0, 1)
        return (states, h_n.unsqueeze(0)) if batched else (states.squeeze(1), h_n)

    def extra_repr(self) -> str:
        """Describe the layout in the repr."""
        return f"batch_first={self.batch_first}"
