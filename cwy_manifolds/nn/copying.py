r"""The copying-memory task (Hochreiter and Schmidhuber 1997; Arjovsky et al. 2016).

A network reads ``length`` random symbols, then ``delay`` blanks, then a marker, then
``length - 1`` more blanks, and must output blanks until the marker and the ``length``
symbols, in order, after it. Remembering them across ``delay`` steps is what orthogonal
recurrent networks are good at; a network that forgets can do no better than the baseline
(blanks, then a uniform guess), whose cross-entropy :func:`copying_memory_baseline` gives.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["copying_memory", "copying_memory_baseline"]


def copying_memory(
    batch_size: int,
    delay: int,
    *,
    length: int = 10,
    n_symbols: int = 8,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Draw a batch of the copying-memory task.

    Tokens are integers: 0 is the blank, :math:`1, \dots, K` (``n_symbols``) are the
    symbols to copy and :math:`K + 1` is the marker. Sequences have
    :math:`T = \text{delay} + 2\,\text{length}` steps:

    =========  ============================  ============================
    steps      input                         target
    =========  ============================  ============================
    1..l       symbols :math:`a_1..a_l`      blank
    next d     blank                         blank
    next 1     marker                        blank
    last l-1   blank                         :math:`a_1..a_{l-1}`
    (last 1)                                 :math:`a_l`
    =========  ============================  ============================

    (with :math:`l` = ``length``, :math:`d` = ``delay``: the target is
    :math:`d + l` blanks followed by :math:`a_1, \dots, a_l`).

    Parameters
    ----------
    batch_size, delay : int
        Number of sequences and blanks between the symbols and the marker.
    length, n_symbols : int, default 10 and 8
        Symbols to remember and size of their alphabet (the papers' values).
    generator : torch.Generator, optional
        Source of randomness.
    device : optional
        Device of the result.

    Returns
    -------
    inputs, targets : Tensor, shape ``(T, batch_size)``, dtype int64
        Time-major token sequences; ``inputs`` take ``n_symbols + 2`` values (one-hot
        them for an RNN), ``targets`` ``n_symbols + 1``.

    Examples
    --------
    >>> from cwy_manifolds.nn import copying_memory
    >>> x, y = copying_memory(1, 3, length=2)
    >>> x.shape, bool((y[-2:] == x[:2]).all()), int(x[5, 0])
    (torch.Size([7, 1]), True, 9)
    """
    symbols = torch.randint(
        1, n_symbols + 1, (length, batch_size), generator=generator, device=device
    )
    blanks = symbols.new_zeros(delay + length, batch_size)
    marker = symbols.new_full((1, batch_size), n_symbols + 1)
    inputs = torch.cat([symbols, blanks[:delay], marker, blanks[: length - 1]])
    targets = torch.cat([blanks, symbols])
    return inputs, targets


def copying_memory_baseline(delay: int, *, length: int = 10, n_symbols: int = 8) -> float:
    r"""Return the cross-entropy per step of the memoryless baseline.

    Outputting blanks, then a uniform guess among the symbols after the marker, gives

    .. math::

        \frac{\text{length} \cdot \log(\text{n\_symbols})}{\text{delay} + 2\,\text{length}}.

    Examples
    --------
    >>> from cwy_manifolds.nn import copying_memory_baseline
    >>> round(copying_memory_baseline(100), 4)
    0.1733
    """
    return length * math.log(n_symbols) / (delay + 2 * length)
