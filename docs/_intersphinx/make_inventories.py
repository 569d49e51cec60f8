"""Write the small intersphinx inventories the docs fall back on without internet.

Each inventory lists only the names these docs link to, with their addresses in the
projects' published documentation. Run it after linking to a new external name:

    python docs/_intersphinx/make_inventories.py    (needs: pip install sphobjinv)
"""

from pathlib import Path

import sphobjinv as soi

TORCH = "https://docs.pytorch.org/docs/stable/"
ENTRIES = {
    "torch": (
        "PyTorch",
        TORCH,
        [
            ("torch.Tensor", "py:class", "tensors.html#$"),
            ("torch.dtype", "py:class", "tensor_attributes.html#$"),
            ("torch.device", "py:class", "tensor_attributes.html#$"),
            ("torch.Generator", "py:class", "generated/$.html#$"),
            ("torch.set_grad_enabled", "py:class", "generated/$.html#$"),
            ("torch.autocast", "py:class", "amp.html#$"),
            ("torch.autograd.Function", "py:class", "autograd.html#$"),
            ("torch.geqrf", "py:function", "generated/$.html#$"),
            ("torch.compile", "py:function", "generated/$.html#$"),
            ("torch.func", "py:module", "func.html#module-$"),
            ("torch.vmap", "py:function", "generated/$.html#$"),
            ("torch.linalg.householder_product", "py:function", "generated/$.html#$"),
            ("torch.linalg.matrix_exp", "py:function", "generated/$.html#$"),
            ("torch.linalg.qr", "py:function", "generated/$.html#$"),
            ("torch.linalg.solve_triangular", "py:function", "generated/$.html#$"),
            ("torch.matmul", "py:function", "generated/$.html#$"),
            ("torch.nn.Module", "py:class", "generated/$.html#$"),
            ("torch.nn.Parameter", "py:class", "generated/$.html#$"),
            ("torch.nn.Linear", "py:class", "generated/$.html#$"),
            ("torch.nn.RNN", "py:class", "generated/$.html#$"),
            (
                "torch.nn.utils.parametrize.register_parametrization",
                "py:function",
                "generated/$.html#$",
            ),
            ("torch.nn.utils.parametrize.cached", "py:function", "generated/$.html#$"),
            ("torch.nn.utils.parametrizations.orthogonal", "py:function", "generated/$.html#$"),
            ("torch.nn.parallel.DistributedDataParallel", "py:class", "generated/$.html#$"),
            ("torch.optim", "py:module", "optim.html#module-$"),
            ("torch.optim.Optimizer", "py:class", "optim.html#$"),
            ("torch.optim.optimizer.Optimizer", "py:class", "optim.html#torch.optim.Optimizer"),
            ("torch.optim.Adam", "py:class", "generated/$.html#$"),
            ("torch.optim.SGD", "py:class", "generated/$.html#$"),
        ],
    ),
    "geoopt": (
        "geoopt",
        "https://geoopt.readthedocs.io/en/latest/",
        [
            ("geoopt.ManifoldParameter", "py:class", "extended.html#$"),
            ("geoopt.ManifoldTensor", "py:class", "extended.html#$"),
            ("geoopt.manifolds.Manifold", "py:class", "manifolds.html#$"),
            ("geoopt.manifolds.Stiefel", "py:class", "manifolds.html#$"),
            ("geoopt.manifolds.CanonicalStiefel", "py:class", "manifolds.html#$"),
            ("geoopt.manifolds.EuclideanStiefel", "py:class", "manifolds.html#$"),
            ("geoopt.manifolds.EuclideanStiefelExact", "py:class", "manifolds.html#$"),
            ("geoopt.manifolds.Scaled", "py:class", "manifolds.html#$"),
            ("geoopt.optim.RiemannianSGD", "py:class", "optimizers.html#$"),
            ("geoopt.optim.RiemannianAdam", "py:class", "optimizers.html#$"),
        ],
    ),
    "numpy": (
        "NumPy",
        "https://numpy.org/doc/stable/",
        [("numpy.ndarray", "py:class", "reference/generated/$.html#$")],
    ),
    "scipy": (
        "SciPy",
        "https://docs.scipy.org/doc/scipy/",
        [
            ("scipy.linalg.eigh", "py:function", "reference/generated/$.html#$"),
            ("scipy.linalg.subspace_angles", "py:function", "reference/generated/$.html#$"),
            ("scipy.stats.ortho_group", "py:data", "reference/generated/$.html#$"),
        ],
    ),
    "python": (
        "Python",
        "https://docs.python.org/3/",
        [
            ("argparse.ArgumentParser", "py:class", "library/argparse.html#$"),
            ("argparse.Namespace", "py:class", "library/argparse.html#$"),
            ("pathlib.Path", "py:class", "library/pathlib.html#$"),
            ("collections.abc.Iterable", "py:class", "library/collections.abc.html#$"),
            ("collections.abc.Sequence", "py:class", "library/collections.abc.html#$"),
            ("collections.abc.Callable", "py:class", "library/collections.abc.html#$"),
            ("ValueError", "py:exception", "library/exceptions.html#$"),
            ("TypeError", "py:exception", "library/exceptions.html#$"),
            ("ImportError", "py:exception", "library/exceptions.html#$"),
        ],
    ),
}


def main() -> None:
    here = Path(__file__).parent
    for key, (project, _, entries) in ENTRIES.items():
        inv = soi.Inventory()
        inv.project, inv.version = project, "stable"
        for name, role, uri in entries:
            domain, kind = role.split(":")
            # "$" stands for the name only at the end of a URI (and contract=True puts it
            # back there); anywhere else Sphinx would keep it literally in the link.
            uri = uri.replace("$", name)
            inv.objects.append(
                soi.DataObjStr(
                    name=name, domain=domain, role=kind, priority="1", uri=uri, dispname="-"
                )
            )
        soi.writebytes(here / f"{key}.inv", soi.compress(inv.data_file(contract=True)))


if __name__ == "__main__":
    main()
