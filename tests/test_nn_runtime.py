"""cwy_manifolds.nn at run time: torch.compile, saving, copying, dtypes and devices."""

import copy
import io
import os
import pickle
import shutil

import geoopt
import pytest
import torch
from _nn_support import F64, gram_error, one_thread
from _reference import tol
from torch import nn
from torch.nn.utils.parametrize import ParametrizationList

from cwy_manifolds.nn import (
    OrthogonalLinear,
    OrthogonalRNN,
    OrthogonalRNNCell,
    orthogonal,
)

__all__ = ["one_thread"]  # the autouse fixture


# -- torch.compile --------------------------------------------------------------------------

HAS_COMPILER = shutil.which(os.environ.get("CXX", "g++")) is not None
needs_compiler = pytest.mark.skipif(not HAS_COMPILER, reason="torch.compile needs a C++ compiler")
# torch 2.13's own deprecations, hit while importing and running dynamo and inductor
inductor_check_warning = pytest.mark.filterwarnings(
    "ignore:.*torch._prims_common.check.*:FutureWarning"
)
script_method_warning = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)
# dynamo reads `.grad` of non-leaf tensors when it resumes after a graph break
dynamo_grad_warning = pytest.mark.filterwarnings(
    "ignore:The .grad attribute of a Tensor that is not a leaf Tensor:UserWarning"
)

COMPILED = {
    "orthogonal-linear": (lambda: orthogonal(nn.Linear(5, 5, dtype=F64)), (3, 5)),
    "OrthogonalLinear-wide": (lambda: OrthogonalLinear(6, 3, dtype=F64), (3, 6)),
    "OrthogonalRNN-L<N": (lambda: OrthogonalRNN(3, 6, n_reflections=2, dtype=F64), (3, 2, 3)),
    "OrthogonalRNN-L=N": (lambda: OrthogonalRNN(3, 6, dtype=F64), (3, 2, 3)),
}


def _output(module, x):
    y = module(x)
    return y[0] if isinstance(y, tuple) else y


def _first_vectors(module):
    """The reflection vectors (N, L) of the first parametrized tensor, as a view."""
    plist = next(m for m in module.modules() if isinstance(m, ParametrizationList))
    return plist[0].vectors(plist.original)


# inductor (C++ code generation, slow to compile) for the main entry point, dynamo and
# AOTAutograd without code generation for the others
BACKENDS = {
    "orthogonal-linear": "inductor",
    "OrthogonalLinear-wide": "aot_eager",
    "OrthogonalRNN-L<N": "aot_eager",
}


@needs_compiler
@pytest.mark.parametrize("name", BACKENDS)
@inductor_check_warning
@script_method_warning
@dynamo_grad_warning
def test_compiled_matches_eager_and_asserts_values(name):
    """Note [value checks]: the same values; on the CPU the check is an assertion in the graph."""
    torch._dynamo.reset()
    factory, shape = COMPILED[name]
    module, x = factory(), torch.randn(shape, dtype=F64)
    compiled = torch.compile(module, backend=BACKENDS[name])
    params = list(module.parameters())
    eager = _output(module, x)
    fast = _output(compiled, x)
    torch.testing.assert_close(fast, eager)
    for g, e in zip(
        torch.autograd.grad(fast.square().sum(), params),
        torch.autograd.grad(eager.square().sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(g, e)
    with torch.no_grad():
        _first_vectors(module)[:, 0] = 0
    with pytest.raises(RuntimeError, match=r"weight\w*.s reflection vectors .* no zero columns"):
        _output(compiled, x)
    with pytest.raises(ValueError, match="zero column"):
        _output(module, x)


# -- saving, copying, converting ------------------------------------------------------------

MODULES = {
    "orthogonal-wide": (lambda: orthogonal(nn.Linear(5, 3, dtype=F64)), (2, 5)),
    "orthogonal-L2-det-1": (
        lambda: orthogonal(nn.Linear(5, 5, dtype=F64), n_reflections=2, det=-1),
        (2, 5),
    ),
    "OrthogonalLinear": (lambda: OrthogonalLinear(4, 6, dtype=F64), (2, 4)),
    "OrthogonalLinear-geoopt-cayley": (
        lambda: OrthogonalLinear(6, 4, manifold_parameter=True, method="cayley", dtype=F64),
        (2, 6),
    ),
    "OrthogonalRNN-geoopt-L<N": (
        lambda: OrthogonalRNN(3, 5, n_reflections=2, manifold_parameter=True, dtype=F64),
        (4, 2, 3),
    ),
}
LAYER_MODULES = [name for name in MODULES if not name.startswith("orthogonal-")]


@pytest.fixture(params=list(MODULES))
def module_case(request):
    factory, shape = MODULES[request.param]
    return request.param, factory, torch.randn(shape, dtype=F64)


def test_state_dict_loads_with_weights_only(module_case):
    _, factory, x = module_case
    saved = factory()
    buffer = io.BytesIO()
    torch.save(saved.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    loaded = factory()  # other random values until the state is loaded
    assert not torch.allclose(_output(loaded, x), _output(saved, x))
    loaded.load_state_dict(state)
    torch.testing.assert_close(_output(loaded, x), _output(saved, x))


def test_deepcopy_is_independent(module_case):
    _, factory, x = module_case
    module = factory()
    clone = copy.deepcopy(module)
    torch.testing.assert_close(_output(clone, x), _output(module, x))
    before = _output(module, x).detach()
    with torch.no_grad():
        _first_vectors(clone).mul_(-1).add_(0.1)
    torch.testing.assert_close(_output(module, x), before)
    for p in clone.parameters():
        if isinstance(p, geoopt.ManifoldParameter):
            assert p.manifold in list(clone.modules())  # still the layer's own manifold


@pytest.mark.parametrize("name", LAYER_MODULES)
def test_layers_pickle(name):
    factory, shape = MODULES[name]
    module, x = factory(), torch.randn(shape, dtype=F64)
    clone = pickle.loads(pickle.dumps(module))
    torch.testing.assert_close(_output(clone, x), _output(module, x))


def test_parametrized_modules_do_not_pickle():
    """PyTorch's rule for every parametrization, documented in orthogonal()."""
    with pytest.raises(RuntimeError, match="only supported through state_dict"):
        pickle.dumps(orthogonal(nn.Linear(3, 3)))


def test_to_dtype(module_case):
    _, factory, x = module_case
    module = factory().to(torch.float32)
    y = _output(module, x.float())
    assert y.dtype == torch.float32
    for p in module.parameters():
        assert p.dtype == torch.float32
    weights = [m.weight for m in module.modules() if isinstance(m, (nn.Linear, OrthogonalLinear))]
    weights += [m.weight_hh for m in module.modules() if isinstance(m, OrthogonalRNNCell)]
    for w in weights:
        assert gram_error(w) <= tol(max(w.shape), torch.float32)
    kinds = [type(p) for p in factory().parameters()]
    assert [type(p) for p in module.parameters()] == kinds


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(module_case):
    _, factory, x = module_case
    module = factory().cuda()
    torch.testing.assert_close(_output(module, x.cuda()).cpu(), _output(module.cpu(), x))
