"""Independent references for the tests: plain NumPy/SciPy, no cwy_manifolds code."""

import numpy as np
import torch
from scipy.stats import ortho_group


def tol(n: int, dtype: torch.dtype) -> float:
    """Tolerance scaled by size and precision, as in PyTorch's own tests."""
    return 10 * max(n, 1) * torch.finfo(dtype).eps


def reflection_product(v: np.ndarray) -> np.ndarray:
    """H(v_1) ... H(v_L) in float64, forming every reflection as a dense matrix."""
    n = v.shape[0]
    q = np.eye(n)
    for i in range(v.shape[1]):
        w = v[:, i : i + 1].astype(np.float64)
        q = q @ (np.eye(n) - 2 * (w @ w.T) / (w.T @ w))
    return q


def haar(n: int, m: int | None = None, *, det: int | None = None, seed: int = 0) -> torch.Tensor:
    """Haar-random n x n orthogonal matrix (first m columns), float64, from SciPy.

    With ``det`` given, the last column is negated if needed to reach that determinant.
    """
    q = np.array([[1.0]]) if n == 1 else ortho_group.rvs(n, random_state=seed)
    if det is not None and np.sign(np.linalg.det(q)) != det:
        q[:, -1] *= -1
    return torch.from_numpy(q[:, : n if m is None else m].copy())


def orthogonality_error(a: torch.Tensor) -> float:
    """Largest Frobenius norm of A^T A - I over the batch, in float64."""
    a = a.detach().to(torch.float64)
    eye = torch.eye(a.shape[-1], dtype=torch.float64)
    return float(torch.linalg.matrix_norm(a.mT @ a - eye).max())
