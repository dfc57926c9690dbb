"""Linear centered kernel alignment (CKA) between two RSMs / Gram matrices of the same samples."""

import math

import numpy as np
import torch


def _as_gram(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(value).__name__}")
    if value.ndim != 2 or value.shape[0] != value.shape[1]:
        raise ValueError(f"{name}: expected a square (N, N) matrix, got shape {tuple(value.shape)}")
    if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name}: dtype {value.dtype} is not numeric")
    value = value.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name}: contains NaN or Inf")
    peak = float(value.abs().max())
    # CKA is scale-invariant: dividing by the largest entry keeps its squared sums in range (1e200, 1e-200)
    return value / peak if peak > 0 else value


def _hsic(gram_a: torch.Tensor, gram_b: torch.Tensor) -> float:
    """Biased HSIC numerator <H A H, H B H>_F."""
    centred = [
        g - g.mean(dim=0, keepdim=True) - g.mean(dim=1, keepdim=True) + g.mean() for g in (gram_a, gram_b)
    ]
    return float((centred[0] * centred[1]).sum())


def _hsic_unbiased(gram_a: torch.Tensor, gram_b: torch.Tensor) -> float:
    """Unbiased HSIC estimator (Song et al., 2012), up to a positive factor common to all three terms of CKA."""
    n = gram_a.shape[0]
    a = gram_a.clone().fill_diagonal_(0.0)
    b = gram_b.clone().fill_diagonal_(0.0)
    a_sums, b_sums = a.sum(dim=1), b.sum(dim=1)
    value = (
        (a * b).sum() + a_sums.sum() * b_sums.sum() / ((n - 1) * (n - 2)) - 2.0 * (a_sums @ b_sums) / (n - 2)
    )
    return float(value)


def cka(rsm_a, rsm_b, debiased: bool = False) -> float:
    """Linear CKA of two (N, N) RSMs: HSIC(A, B) / sqrt(HSIC(A, A) HSIC(B, B)), in [0, 1] for PSD inputs.

    ``debiased=True`` uses the unbiased HSIC estimator (needs N >= 4). Raises ValueError for mismatched or
    degenerate inputs (a constant RSM has no centred variance).
    """
    a, b = _as_gram(rsm_a, "rsm_a"), _as_gram(rsm_b, "rsm_b")
    if a.shape != b.shape:
        raise ValueError(f"rsm_a and rsm_b: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    n = a.shape[0]
    minimum = 4 if debiased else 2
    if n < minimum:
        raise ValueError(f"cka{' (debiased)' if debiased else ''}: need N >= {minimum} samples, got N={n}")
    hsic = _hsic_unbiased if debiased else _hsic
    self_a, self_b = hsic(a, a), hsic(b, b)
    if self_a <= 0 or self_b <= 0:
        which = "rsm_a" if self_a <= 0 else "rsm_b"
        raise ValueError(f"cka: {which} has no (positive) centred variance; CKA is undefined")
    return hsic(a, b) / math.sqrt(self_a * self_b)
