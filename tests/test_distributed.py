"""Training under DistributedDataParallel: 2 CPU processes, gloo, a few steps per optimizer.

The ranks start from different random parameters and see different data; DDP broadcasts
rank 0's parameters and averages the gradients, so the parameters must agree across ranks
after training, and every weight must still be orthogonal.
"""

import datetime
import multiprocessing
import warnings

import pytest
import torch
from _reference import orthogonality_error, tol
from torch import nn

WORLD_SIZE = 2
STEPS = 4
TIMEOUT = 120  # seconds, for the whole run; a healthy run takes a few seconds
F64 = torch.float64


class _Net(nn.Module):
    """An orthogonal RNN, a square and a wide orthogonal layer; geoopt or torch.optim kind."""

    def __init__(self, geoopt_kind: bool) -> None:
        from cwy_manifolds.nn import OrthogonalLinear, OrthogonalRNN, orthogonal

        super().__init__()
        # torch.optim: the RNN applies W_hh matrix-free (L < N); geoopt: mixes manifolds
        count = None if geoopt_kind else 3
        self.rnn = OrthogonalRNN(
            3, 6, n_reflections=count, manifold_parameter=geoopt_kind, dtype=F64
        )
        if geoopt_kind:
            self.square = OrthogonalLinear(6, 6, manifold_parameter=True, dtype=F64)
            self.out = OrthogonalLinear(6, 2, manifold_parameter=True, method="cayley", dtype=F64)
        else:
            self.square = orthogonal(nn.Linear(6, 6, dtype=F64))
            self.out = OrthogonalLinear(6, 2, dtype=F64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)
        return self.out(torch.tanh(self.square(h[0])))

    def weights(self) -> dict[str, torch.Tensor]:
        return {
            "rnn": self.rnn.cell.weight_hh,
            "square": self.square.weight,
            "out": self.out.weight,
        }


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    """The tensors of a state dict (the parametrizations also save their configuration)."""
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _train(kind: str, rank: int) -> dict[str, torch.Tensor]:
    import geoopt
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(100 + rank)  # different on each rank: DDP must broadcast rank 0's
    model = _Net(geoopt_kind=kind == "geoopt")
    ddp = DistributedDataParallel(model)
    if kind == "geoopt":
        optimizer = geoopt.optim.RiemannianAdam(ddp.parameters(), lr=0.05)
    else:
        optimizer = torch.optim.Adam(ddp.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(rank)  # different data on each rank
    for _ in range(STEPS):
        x = torch.randn(5, 8, 3, generator=gen, dtype=F64)
        y = torch.randn(8, 2, generator=gen, dtype=F64)
        optimizer.zero_grad()
        nn.functional.mse_loss(ddp(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        state = {f"param/{k}": v.clone() for k, v in _tensors(model.state_dict()).items()}
        state.update({f"weight/{k}": w.detach().clone() for k, w in model.weights().items()})
    return state


def _worker(rank: int, store: str, out_dir: str) -> None:
    import torch.distributed as dist

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # geoopt's jit.script
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=TIMEOUT / 2),
    )
    try:
        results = {kind: _train(kind, rank) for kind in ("torch.optim", "geoopt")}
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run the workers once for all tests of the module; return each rank's results."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("needs torch.distributed with the gloo backend")
    for _ in range(2):  # once more after a hang: torch's gloo teardown (test_doc_snippets)
        tmp = tmp_path_factory.mktemp("ddp")
        codes, hung = _run_workers(tmp)
        if not hung:
            break
    assert codes == [0] * WORLD_SIZE, f"workers exited with codes {codes} (timeout {TIMEOUT}s)"
    return [torch.load(tmp / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


def _run_workers(tmp) -> tuple[list[int | None], bool]:
    """Start the ranks, wait for them; return their exit codes and whether any hung."""
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(rank, str(tmp / "store"), str(tmp)))
        for rank in range(WORLD_SIZE)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(TIMEOUT)
    hung = any(w.is_alive() for w in workers)
    for w in workers:
        if w.is_alive():
            w.kill()
            w.join()
    return [w.exitcode for w in workers], hung


@pytest.mark.parametrize("kind", ["torch.optim", "geoopt"])
def test_parameters_agree_across_ranks(results, kind):
    first, second = (r[kind] for r in results)
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("kind", ["torch.optim", "geoopt"])
def test_weights_stay_orthogonal(results, kind):
    for key, w in results[0][kind].items():
        if key.startswith("weight/"):
            tall = w if w.shape[0] >= w.shape[1] else w.mT
            assert orthogonality_error(tall) <= tol(tall.shape[0], F64), key


def test_training_moved_the_parameters(results):
    """Guard against a vacuous pass: the optimizers did change rank 0's start."""
    torch.manual_seed(100)
    start = _tensors(_Net(geoopt_kind=False).state_dict())
    trained = results[0]["torch.optim"]
    assert any(not torch.equal(trained[f"param/{k}"], v) for k, v in start.items())
