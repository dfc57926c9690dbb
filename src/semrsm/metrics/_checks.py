"""Input validation shared by the metrics: arrays in, float64 numpy out, clear ValueErrors."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(value: Any) -> np.ndarray:
    """Convert a numpy array, torch tensor or nested sequence to a numpy array (no copy where possible)."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def finite_matrix(value: Any, name: str, square: bool = True) -> np.ndarray:
    """Return `value` as a finite float64 (R, C) matrix; square (N, N) when `square`."""
    matrix = to_numpy(value)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {matrix.shape}")
    if square and matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be square (N, N), got shape {matrix.shape}")
    if not np.issubdtype(matrix.dtype, np.number) and matrix.dtype != np.bool_:
        raise ValueError(f"{name} must be numeric, got dtype {matrix.dtype}")
    matrix = matrix.astype(np.float64, copy=False)
    if not np.isfinite(matrix).all():
        bad = np.argwhere(~np.isfinite(matrix))[0]
        raise ValueError(f"{name} contains a non-finite value at index {tuple(int(i) for i in bad)}")
    return matrix


def group_ids(groups: Any, n: int, name: str = "groups") -> np.ndarray:
    """Return `groups` as a 1-D array of length `n` (any comparable ids: ints, strings)."""
    ids = to_numpy(groups)
    if ids.ndim != 1 or ids.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one id per sample ({n}), got shape {ids.shape}")
    return ids
