"""Bad input gets a TypeError/ValueError naming the argument and the problem."""

import pytest
import torch

import cwy_manifolds as cm
from cwy_manifolds import cwy, cwy_apply, householder_product, tcwy, tcwy_apply

F64 = torch.float64


def _with(value, index=(0, 0), shape=(5, 3)):
    v = torch.randn(*shape, dtype=F64)
    v[index] = value
    return v


def _zero_column(shape=(5, 3), col=1):
    v = torch.randn(*shape, dtype=F64)
    v[..., col] = 0
    return v


GOOD_V = torch.randn(5, 3, dtype=F64)
GOOD_X = torch.randn(5, 2, dtype=F64)
GOOD_M = torch.randn(3, 2, dtype=F64)

VECTOR_FNS = {
    "cwy": cwy,
    "tcwy": tcwy,
    "householder_product": householder_product,
    "cwy_apply": lambda v: cwy_apply(v, GOOD_X),
    "tcwy_apply": lambda v: tcwy_apply(v, GOOD_M),
    "tcwy_apply_T": lambda v: tcwy_apply(v, GOOD_X, transpose=True),
}

BAD_V = {
    "not-a-tensor": ([[1.0, 0.0]], TypeError, "v must be a torch.Tensor; got list"),
    "int": (torch.ones(5, 3, dtype=torch.int64), TypeError, "real floating-point.*int64"),
    "bool": (torch.ones(5, 3, dtype=torch.bool), TypeError, "real floating-point.*bool"),
    "complex": (torch.ones(5, 3, dtype=torch.complex64), TypeError, "complex dtypes are not"),
    "rank-1": (torch.ones(5, dtype=F64), ValueError, r"at least 2 dimensions.*\(5,\)"),
    "nan": (_with(float("nan")), ValueError, "v must have finite entries; got 1 NaN/Inf"),
    "inf": (_with(float("inf"), (2, 1)), ValueError, "v must have finite entries"),
    "-inf": (_with(-float("inf"), (4, 2)), ValueError, "v must have finite entries"),
    "zero-column": (_zero_column(), ValueError, "v must have no zero columns.*first: column 1"),
    "zero-column-batched": (
        _zero_column((2, 5, 3), col=2),
        ValueError,
        r"got 2 zero column\(s\).*column 2 of batch item \(0,\)",
    ),
}


@pytest.fixture(params=["small", "large"])
def scale_branch(request, monkeypatch):
    """column_scale takes max |v| with an |v| temporary (small) or without one (large)."""
    if request.param == "large":
        monkeypatch.setattr(cm.core.checks, "_LARGE", 1)


def test_column_scale_is_max_abs(scale_branch):
    v = torch.randn(3, 7, 4, dtype=F64)
    v[0, :, 1] = -v[0, :, 1].abs()  # a column whose largest |entry| is negative
    expected = v.abs().amax(dim=-2, keepdim=True)
    assert torch.equal(cm.core.checks.column_scale(v, "v"), expected)


@pytest.mark.parametrize("dim", [-2, -1])
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_column_norms_match_vector_norm(dtype, dim):
    v = torch.randn(5, 9, 7, dtype=dtype)
    expected = torch.linalg.vector_norm(v.to(F64), dim=dim, keepdim=True)
    got = cm.core.column_norms(v, dim)
    assert got.dtype == dtype
    torch.testing.assert_close(got.to(F64), expected, rtol=4 * torch.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_column_norms_square_half_precision_in_float32(dtype):
    v = torch.full((4, 2), 300.0, dtype=dtype)  # 300^2 overflows float16
    got = cm.core.column_norms(v)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, torch.full((1, 2), 600.0), rtol=1e-2, atol=0)


@pytest.mark.parametrize("bad", BAD_V)
@pytest.mark.parametrize("fn", VECTOR_FNS)
def test_bad_vectors(fn, bad, scale_branch):
    value, error, match = BAD_V[bad]
    with pytest.raises(error, match=match):
        VECTOR_FNS[fn](value)


@pytest.mark.parametrize(
    "fn",
    [tcwy, lambda v: tcwy_apply(v, GOOD_X), lambda v: tcwy_apply(v, GOOD_X, transpose=True)],
    ids=["tcwy", "tcwy_apply", "tcwy_apply_T"],
)
def test_more_columns_than_rows(fn):
    with pytest.raises(ValueError, match=r"M <= N.*\(3, 5\)"):
        fn(torch.randn(3, 5, dtype=F64))


BAD_X = {
    "dtype": (GOOD_X.float(), TypeError, r"x must have the dtype of v \(torch.float64\)"),
    "rows": (torch.randn(4, 2, dtype=F64), ValueError, "x must have N = 5 rows"),
    "rank-1": (torch.randn(5, dtype=F64), ValueError, "x must have at least 2 dimensions"),
    "int": (torch.ones(5, 2, dtype=torch.int32), TypeError, "x must be a real floating"),
    "nan": (_with(float("nan"), shape=(5, 2)), ValueError, "x must have finite entries"),
    "meta-device": (torch.empty(5, 2, dtype=F64, device="meta"), ValueError, "device of v"),
}


@pytest.mark.parametrize("bad", BAD_X)
def test_bad_x(bad):
    value, error, match = BAD_X[bad]
    with pytest.raises(error, match=match):
        cwy_apply(GOOD_V, value)


@pytest.mark.parametrize("fn", [cwy_apply, tcwy_apply], ids=lambda f: f.__name__)
def test_mismatched_batch_dimensions(fn):
    v, x = torch.randn(3, 5, 3, dtype=F64), torch.randn(2, 5, 2, dtype=F64)
    with pytest.raises(
        ValueError,
        match=r"x must have batch dimensions that broadcast with those of v "
        r"\(shape \(3, 5, 3\)\); got shape \(2, 5, 2\)",
    ):
        fn(v, x, transpose=True)


@pytest.mark.parametrize("transpose", ["yes", 1, None], ids=repr)
@pytest.mark.parametrize("fn", [cwy_apply, tcwy_apply], ids=lambda f: f.__name__)
def test_transpose_must_be_a_bool(fn, transpose):
    name = type(transpose).__name__
    with pytest.raises(TypeError, match=f"transpose must be a bool; got {name}$"):
        fn(GOOD_V, GOOD_X, transpose=transpose)


def test_tcwy_apply_row_count_follows_transpose():
    with pytest.raises(ValueError, match="x must have M = 3 rows"):
        tcwy_apply(GOOD_V, GOOD_X)
    with pytest.raises(ValueError, match="x must have N = 5 rows"):
        tcwy_apply(GOOD_V, GOOD_M, transpose=True)


BAD_TARGET = {
    "int": (torch.eye(4, dtype=torch.int64), TypeError, "q must be a real floating"),
    "complex": (torch.eye(4, dtype=torch.complex128), TypeError, "complex"),
    "rank-1": (torch.ones(4, dtype=F64), ValueError, "at least 2 dimensions"),
    "nan": (_with(float("nan"), shape=(4, 4)), ValueError, "q must have finite entries"),
    "not-orthogonal": (2 * torch.eye(4, dtype=F64), ValueError, "orthonormal columns"),
    "wide": (torch.eye(3, 4, dtype=F64), ValueError, r"M <= N"),
    "thin": (torch.eye(4, 3, dtype=F64), ValueError, r"q must be square; got shape \(4, 3\)"),
}


@pytest.mark.parametrize("bad", BAD_TARGET)
def test_bad_inverse_input(bad):
    value, error, match = BAD_TARGET[bad]
    with pytest.raises(error, match=match):
        cm.cwy_inverse(value)
    if bad != "thin":
        with pytest.raises(error, match=match.replace("q must", "omega must")):
            cm.tcwy_inverse(value)


def test_errors_do_not_print_tensors():
    v = _zero_column((64, 64), col=3)
    with pytest.raises(ValueError, match="zero column") as info:
        cwy(v)
    assert "tensor(" not in str(info.value)
    assert len(str(info.value)) < 300


def test_value_checks_can_be_turned_off():
    """Note [value checks]: off means NaN output instead of an error, nothing else."""
    v = _zero_column()
    with cm.set_value_checks(False):
        assert not cm.value_checks_enabled()
        assert torch.isnan(cwy(v)).any()
        torch.testing.assert_close(cwy(GOOD_V), householder_product(GOOD_V))
    assert cm.value_checks_enabled()
    with pytest.raises(ValueError, match="zero column"):
        cwy(v)
    # shape and dtype checks stay on
    with cm.set_value_checks(False), pytest.raises(ValueError, match="M <= N"):
        tcwy(torch.randn(3, 5))


def test_set_value_checks_as_a_call():
    try:
        cm.set_value_checks(False)
        assert not cm.value_checks_enabled()
    finally:
        cm.set_value_checks(True)
    assert cm.value_checks_enabled()


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_extreme_but_valid_norms_float64(scale):
    v = torch.randn(6, 4, dtype=F64)
    torch.testing.assert_close(cwy(v * scale), cwy(v))


def test_x_is_checked_also_without_reflections():
    x = _with(float("nan"), shape=(5, 2))
    with pytest.raises(ValueError, match="x must have finite entries; got 1 NaN/Inf"):
        cwy_apply(torch.zeros(5, 0, dtype=F64), x)
