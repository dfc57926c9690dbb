"""Jensen-Shannon divergence between predicted class distributions, and a stable softmax."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from semrsm.metrics._checks import finite_matrix

# Elements of the (rows, N, K) mixture block computed at once; bounds memory to ~100 MB of float64.
_BLOCK_ELEMENTS = 12_000_000


def softmax(logits: Any, axis: int = -1) -> np.ndarray:
    """Softmax of finite (N, K) logits along `axis` (scipy's, numerically stable), as float64."""
    return special.softmax(finite_matrix(logits, "logits", square=False), axis=axis)


def _entropy_bits(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits over the last axis, with 0 log 0 = 0."""
    return -special.xlogy(probabilities, probabilities).sum(axis=-1) / np.log(2.0)


def jensen_shannon_matrix(probabilities: Any, atol: float = 1e-3) -> np.ndarray:
    """(N, N) Jensen-Shannon divergences (base 2, so in [0, 1]) between the rows of an (N, K) probability matrix.

    JSD(p, q) = H((p + q) / 2) - (H(p) + H(q)) / 2. Zeros are safe (0 log 0 = 0). Rows must be non-negative
    and sum to 1 within `atol`; they are renormalised before use. The result is exactly symmetric with a zero
    diagonal. Memory is bounded by processing the rows in blocks.
    """
    p = finite_matrix(probabilities, "probabilities", square=False)
    n, k = p.shape
    if n == 0 or k == 0:
        raise ValueError(f"probabilities must be a non-empty (N, K) matrix, got shape {p.shape}")
    if (p < 0).any():
        row = int(np.argwhere(p < 0)[0, 0])
        raise ValueError(f"probabilities row {row} has a negative entry")
    sums = p.sum(axis=1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        row = int(np.argmax(off))
        raise ValueError(f"probabilities row {row} sums to {sums[row]:.6g}, not 1 (atol={atol})")
    p = p / sums[:, None]
    entropy = _entropy_bits(p)
    divergence = np.empty((n, n), dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // (n * k))
    for start in range(0, n, block):  # upper block-triangle only; mirrored below
        stop = min(start + block, n)
        mixture = 0.5 * (p[start:stop, None, :] + p[None, start:, :])
        divergence[start:stop, start:] = _entropy_bits(mixture) - 0.5 * (
            entropy[start:stop, None] + entropy[None, start:]
        )
    lower = np.tril_indices(n, k=-1)
    divergence[lower] = divergence.T[lower]
    return np.clip(divergence, 0.0, 1.0, out=divergence)
