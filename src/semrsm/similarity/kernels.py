"""Kernels evaluated from matched inner products and squared norms (one matching serves every kernel).

For samples i, j with matched inner product m_ij = <x_i, P x_j> and squared norms n_i = |x_i|^2:
linear = m_ij, cosine = m_ij / sqrt(n_i n_j), rbf = exp(-d_ij / (2 sigma^2)) with d_ij = n_i + n_j - 2 m_ij.
"""

import math

import numpy as np
import torch

KERNELS = ("linear", "cosine", "rbf")
KERNEL_OPTIONS = {"linear": (), "cosine": (), "rbf": ("sigma",)}  # besides the name


def check_kernel(name: str) -> str:
    """Return ``name`` if it is a known kernel, else raise ValueError listing the known ones."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {list(KERNELS)}")
    return name


def check_sigma(sigma: float | None) -> float | None:
    """Validate an explicit RBF bandwidth (None means: use the median heuristic)."""
    if sigma is None:
        return None
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, int | float)
        or not math.isfinite(sigma)
        or sigma <= 0
    ):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    return float(sigma)


def squared_distances(scores: torch.Tensor, sq_norms: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances n_i + n_j - 2 m_ij (clamped at 0 against rounding)."""
    return (sq_norms[:, None] + sq_norms[None, :] - 2.0 * scores).clamp_min(0.0)


def median_sigma(scores: torch.Tensor, sq_norms: torch.Tensor) -> float:
    """RBF bandwidth: sigma^2 = median of the non-zero squared distances over the pairs i < j."""
    n = scores.shape[0]
    rows, cols = torch.triu_indices(n, n, offset=1)
    distances = squared_distances(scores, sq_norms)[rows, cols]
    nonzero = distances[distances > 0]
    if nonzero.numel() == 0:
        raise ValueError(
            "rbf: all pairwise distances are zero, the median bandwidth is undefined; pass sigma"
        )
    return math.sqrt(float(np.median(nonzero.numpy())))


def evaluate_kernel(name: str, scores: torch.Tensor, sq_norms: torch.Tensor, sigma: float | None = None):
    """RSM of kernel ``name`` from matched scores (N, N) and squared norms (N,), float64.

    ``sigma`` is only used by "rbf" (None: median heuristic on these scores).
    """
    check_kernel(name)
    if name == "linear":
        return scores.clone()
    if name == "cosine":
        zero = torch.nonzero(sq_norms == 0).flatten().tolist()
        if zero:
            raise ValueError(
                f"cosine kernel: sample(s) {zero[:10]} are all zeros, so their cosine is undefined"
            )
        norms = sq_norms.sqrt()
        rsm = scores / (norms[:, None] * norms[None, :])
        return rsm.clamp(-1.0, 1.0).fill_diagonal_(1.0)
    sigma = check_sigma(sigma) or median_sigma(scores, sq_norms)
    return torch.exp(-squared_distances(scores, sq_norms) / (2.0 * sigma**2)).fill_diagonal_(1.0)
