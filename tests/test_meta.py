"""Tensors without values (meta device, FakeTensor): right shapes, no value checks.

Note [value checks] in ``cwy_manifolds/core/checks.py``: checks need values, so they are
skipped where there are none; shape and dtype checks still run.
"""

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import cwy_manifolds as cm

CALLS = {  # name: (call, input shapes, output shape)
    "cwy": (cm.cwy, [(2, 5, 3)], (2, 5, 5)),
    "cwy-large": (cm.cwy, [(300, 300)], (300, 300)),
    "tcwy": (cm.tcwy, [(5, 3)], (5, 3)),
    "householder_product": (cm.householder_product, [(5, 3)], (5, 5)),
    "cwy_apply": (cm.cwy_apply, [(5, 3), (5, 2)], (5, 2)),
    "tcwy_apply": (cm.tcwy_apply, [(5, 3), (3, 2)], (5, 2)),
    "tcwy_apply_T": (lambda v, x: cm.tcwy_apply(v, x, transpose=True), [(5, 3), (5, 2)], (3, 2)),
    "cwy_inverse": (cm.cwy_inverse, [(2, 4, 4)], (2, 4, 4)),
    "tcwy_inverse": (cm.tcwy_inverse, [(6, 2)], (6, 2)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", CALLS)
def test_meta_tensors(name, dtype):
    fn, shapes, expected = CALLS[name]
    out = fn(*(torch.empty(shape, dtype=dtype, device="meta") for shape in shapes))
    assert (out.shape, out.dtype, out.device.type) == (expected, dtype, "meta")


@pytest.mark.parametrize("name", ["cwy", "tcwy", "cwy_apply"])
def test_meta_tensors_backward(name):
    fn, shapes, _ = CALLS[name]
    args = [torch.empty(s, device="meta", requires_grad=True) for s in shapes]
    fn(*args).sum().backward()
    assert all(a.grad.shape == a.shape and a.grad.device.type == "meta" for a in args)


@pytest.mark.parametrize("name", CALLS)
def test_fake_tensors(name):
    fn, shapes, expected = CALLS[name]
    with FakeTensorMode() as mode:
        out = fn(*(mode.from_tensor(torch.randn(shape)) for shape in shapes))
    assert (out.shape, out.dtype) == (expected, torch.float32)


def test_meta_keeps_shape_and_dtype_checks():
    with pytest.raises(ValueError, match="M <= N"):
        cm.tcwy(torch.empty(3, 5, device="meta"))
    with pytest.raises(TypeError, match="real floating-point"):
        cm.cwy(torch.empty(3, 3, dtype=torch.int64, device="meta"))
    with pytest.raises(ValueError, match="q must be square"):
        cm.cwy_inverse(torch.empty(4, 3, device="meta"))
