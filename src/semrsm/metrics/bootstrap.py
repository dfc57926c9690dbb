"""Seeded, deterministic bootstrap intervals over the independent units of an experiment.

A bootstrap replicate is a vector of resampling counts, one per unit (query, image, source image, training
seed): ``resample_counts`` draws them from a fixed seed, so the same inputs always give the same interval. Units
that several statistics share (the images behind a semantic and a spatio-semantic RSM) are resampled with the
same counts, which pairs the statistics. Statistics over pairs of images (correlations, AUROC) weight each pair
(i, j) by how often both images were drawn, c_i * c_j; a pair of two copies of one image is not a pair of
images and gets no weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

N_RESAMPLES = 1000
LEVEL = 0.95
SEED = 20241023  # the paper's arXiv month: any fixed value works, it only has to be fixed
FULL_SAMPLE = -1  # replicate number of the full-sample row in a bootstrap table
CHUNK = 64  # replicates handled at once by the pair statistics (bounds their memory)


@dataclass(frozen=True)
class Interval:
    """A point estimate, its percentile bootstrap interval at ``level`` and the number of resampled units."""

    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of zero."""
        return self.low > 0 or self.high < 0

    def text(self, digits: int = 3) -> str:
        """e.g. ``+0.052 [+0.031, +0.074]``."""
        return f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def with_full_sample(counts: np.ndarray) -> np.ndarray:
    """``counts`` (B, n) below a first row of ones: row 0 is the full sample (replicate FULL_SAMPLE)."""
    return np.vstack([np.ones((1, counts.shape[1]), dtype=counts.dtype), counts])


def resample_counts(n: int, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_resamples, n) int64: how often each of ``n`` units is drawn in each replicate (n draws with
    replacement); the same arguments always give the same counts."""
    if n < 1 or n_resamples < 1:
        raise ValueError(f"need n >= 1 units and n_resamples >= 1, got {n} and {n_resamples}")
    draws = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    offsets = (np.arange(n_resamples) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_resamples * n).reshape(n_resamples, n)


def interval(estimate: float, replicates: np.ndarray, n: int, level: float = LEVEL) -> Interval:
    """Percentile interval of ``replicates`` around ``estimate``; replicates where the statistic is undefined
    (NaN, e.g. a resample with one class only) are dropped, and all of them undefined gives a NaN interval."""
    values = np.asarray(replicates, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Interval(float(estimate), float("nan"), float("nan"), n, level)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high), n, level)


def mean_replicates(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B,) bootstrap means of per-unit ``values`` (n,) under resampling ``counts`` (B, n)."""
    values = np.asarray(values, dtype=np.float64)
    if counts.shape[1] != values.shape[0]:
        raise ValueError(f"counts cover {counts.shape[1]} units but there are {values.shape[0]} values")
    return counts @ values / counts.sum(axis=1)


def _symmetric(matrix: np.ndarray, center: float, scale: float) -> np.ndarray:
    """The standardised strict upper triangle of ``matrix`` mirrored into a symmetric matrix, zero diagonal."""
    upper = np.triu((np.asarray(matrix, dtype=np.float64) - center) / scale, k=1)
    return upper + upper.T


def _pair_sums(matrix: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_{i<j} w_i w_j M_ij for every row w of ``weights`` (M symmetric, zero diagonal)."""
    return 0.5 * np.einsum("bi,bi->b", weights @ matrix, weights)


def pair_correlation_replicates(
    a: np.ndarray, b: np.ndarray, counts: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """(B,) Pearson correlations between the off-diagonal entries of two symmetric (N, N) matrices, with the
    images resampled by ``counts`` (B, N): pair (i, j) weighted c_i * c_j. ``mask`` (N, N) bool, symmetric,
    restricts the pairs (e.g. to pairs of views of different source photos)."""
    keep = np.ones(np.shape(a), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    rows, cols = np.triu_indices(len(a), k=1)
    chosen = keep[rows, cols]
    if chosen.sum() < 3:
        raise ValueError(f"a correlation needs at least 3 pairs, the mask keeps {int(chosen.sum())}")
    x = np.asarray(a, dtype=np.float64)[rows, cols][chosen]
    y = np.asarray(b, dtype=np.float64)[rows, cols][chosen]
    # standardised first, so that the moments below do not cancel catastrophically
    ones = _symmetric(keep.astype(np.float64), 0.0, 1.0)
    sx = _symmetric(a, x.mean(), x.std() or 1.0) * ones
    sy = _symmetric(b, y.mean(), y.std() or 1.0) * ones
    out = np.empty(len(counts))
    for start in range(0, len(counts), CHUNK):
        w = counts[start : start + CHUNK].astype(np.float64)
        total = _pair_sums(ones, w)
        mx, my = _pair_sums(sx, w) / total, _pair_sums(sy, w) / total
        cov = _pair_sums(sx * sy, w) / total - mx * my
        vx, vy = _pair_sums(sx * sx, w) / total - mx**2, _pair_sums(sy * sy, w) / total - my**2
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + CHUNK] = cov / np.sqrt(vx * vy)
    return out


def rank_matrix(matrix: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The off-diagonal entries of a symmetric matrix (those in ``mask``) replaced by their average ranks,
    others zero: Pearson of rank matrices is Spearman. In the bootstrap the ranks are those of the full
    sample, not re-ranked per replicate (an approximation that keeps the replicates cheap)."""
    values = np.asarray(matrix, dtype=np.float64)
    rows, cols = np.triu_indices(len(values), k=1)
    if mask is not None:
        keep = np.asarray(mask, dtype=bool)[rows, cols]
        rows, cols = rows[keep], cols[keep]
    ranked = np.zeros_like(values)
    ranked[rows, cols] = stats.rankdata(values[rows, cols])
    return ranked + ranked.T


def group_auroc_replicates(scores: np.ndarray, groups: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B,) AUROC of same-group against different-group pair values of a symmetric (N, N) matrix, with the
    groups (source images) resampled by ``counts`` (B, G): a same-group pair of group g weighs c_g (one copy's
    pairs), a different-group pair of groups g, h weighs c_g * c_h."""
    groups = np.asarray(groups)
    rows, cols = np.triu_indices(len(scores), k=1)
    values = np.asarray(scores, dtype=np.float64)[rows, cols]
    order = np.argsort(values, kind="stable")
    values, gi, gj = values[order], groups[rows][order], groups[cols][order]
    same = gi == gj
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])  # runs of tied values
    tie = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
    out = np.empty(len(counts))
    for start in range(0, len(counts), CHUNK):
        c = counts[start : start + CHUNK].astype(np.float64)
        weight = np.where(same, c[:, gi], c[:, gi] * c[:, gj])
        positive, negative = np.where(same, weight, 0.0), np.where(same, 0.0, weight)
        negative_ties = np.add.reduceat(negative, starts, axis=1)
        below = np.cumsum(negative_ties, axis=1) - negative_ties
        credit = below[:, tie] + 0.5 * negative_ties[:, tie]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + CHUNK] = (positive * credit).sum(axis=1) / (
                positive.sum(axis=1) * negative.sum(axis=1)
            )
    return out


def mean_over_seeds(replicates: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(B,) replicates of a mean over training seeds from per-seed replicates (K, B) that share their unit
    resamples (same images in every seed): replicate b averages, over K seeds drawn with replacement, their
    replicate b. With one seed it returns that seed's replicates."""
    replicates = np.atleast_2d(np.asarray(replicates, dtype=np.float64))
    k, b = replicates.shape
    if b != n_resamples:
        raise ValueError(f"expected {n_resamples} replicates per seed, got {b}")
    if k == 1:
        return replicates[0]
    counts = resample_counts(k, n_resamples, seed + 1)
    return (counts * replicates.T).sum(axis=1) / k


def half_sample_counts(n: int, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_resamples, n) 0/1 counts: each replicate draws n // 2 distinct units (half-sampling). For statistics
    that a repeated unit distorts (CKA: two copies of one image are a perfect match in both RSMs), the spread of
    half-sample estimates around the full-sample one approximates the full estimate's sampling variance
    (Var(theta_{n/2}) - Var(theta_n) = sigma^2 / n)."""
    if n < 2:
        raise ValueError(f"half-sampling needs n >= 2 units, got {n}")
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_resamples, n), dtype=np.int64)
    for row in counts:
        row[rng.choice(n, size=n // 2, replace=False)] = 1
    return counts


def cka_replicates(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B,) linear CKA of two (N, N) RSMs restricted to the images each replicate draws (``counts``, e.g. from
    half_sample_counts)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.empty(len(counts))
    for r, row in enumerate(counts):
        index = np.repeat(np.arange(len(row)), row)
        ka, kb = _centered(a[np.ix_(index, index)]), _centered(b[np.ix_(index, index)])
        denominator = np.sqrt((ka * ka).sum() * (kb * kb).sum())
        out[r] = (ka * kb).sum() / denominator if denominator > 0 else np.nan
    return out


def _centered(matrix: np.ndarray) -> np.ndarray:
    """H K H with H the centring matrix."""
    return matrix - matrix.mean(axis=0) - matrix.mean(axis=1)[:, None] + matrix.mean()
