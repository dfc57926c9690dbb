"""Comparing RSMs: correlations over the strict upper triangle, and same-group vs different-group separation."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from semrsm.metrics._checks import finite_matrix, group_ids, to_numpy


def upper_triangle(matrix: Any, name: str = "matrix") -> np.ndarray:
    """Values of the strict upper triangle (i < j) of a finite (N, N) matrix, row-major, as float64."""
    values = finite_matrix(matrix, name)
    rows, cols = np.triu_indices(values.shape[0], k=1)
    return values[rows, cols]


@dataclass(frozen=True)
class RSMCorrelation:
    """Pearson and Spearman correlation over `n_pairs` matrix entries. No p-values: the pairs of N images are
    not independent; intervals come from resampling images (`semrsm.metrics.bootstrap`)."""

    pearson: float
    spearman: float
    n_pairs: int

    def to_dict(self) -> dict[str, float | int]:
        """Flat dict, e.g. for logging."""
        return asdict(self)


def rsm_correlation(a: Any, b: Any) -> RSMCorrelation:
    """Pearson and Spearman correlation between two (N, N) matrices over their strict upper triangles.

    Raises ValueError for mismatched shapes, fewer than 3 pairs, or a constant triangle (correlation undefined).
    """
    x, y = upper_triangle(a, "a"), upper_triangle(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {to_numpy(a).shape} and {to_numpy(b).shape}")
    if x.size < 3:
        raise ValueError(f"correlation needs at least 3 pairs (N >= 3), got {x.size}")
    for name, values in (("a", x), ("b", y)):
        if np.ptp(values) == 0:
            raise ValueError(f"{name} is constant over its upper triangle; correlation is undefined")
    pearson, spearman = stats.pearsonr(x, y).statistic, stats.spearmanr(x, y).statistic
    return RSMCorrelation(pearson=float(pearson), spearman=float(spearman), n_pairs=int(x.size))


def split_pairs_by_group(rsm: Any, groups: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split the strict upper triangle of an RSM into (same-group values, different-group values)."""
    values = finite_matrix(rsm, "rsm")
    ids = group_ids(groups, values.shape[0])
    rows, cols = np.triu_indices(values.shape[0], k=1)
    same = ids[rows] == ids[cols]
    pairs = values[rows, cols]
    return pairs[same], pairs[~same]


def auroc(positive: Any, negative: Any) -> float:
    """Area under the ROC curve for separating `positive` (expected larger) from `negative` scores.

    Equals P(pos > neg) + 0.5 P(pos == neg) (scikit-learn's ``roc_auc_score``): 1 = perfect, 0.5 = chance.
    """
    pos, neg = to_numpy(positive).astype(np.float64).ravel(), to_numpy(negative).astype(np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"auroc needs both classes, got {pos.size} positive and {neg.size} negative scores")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("auroc scores must be finite")
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    return float(roc_auc_score(labels, np.concatenate([pos, neg])))


@dataclass(frozen=True)
class ValueSummary:
    """Summary statistics of a value distribution."""

    n: int
    mean: float
    std: float
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: np.ndarray) -> ValueSummary:
        """Summarise a non-empty 1-D array."""
        return cls(
            n=int(values.size),
            mean=float(values.mean()),
            std=float(values.std()),
            median=float(np.median(values)),
            min=float(values.min()),
            max=float(values.max()),
        )


@dataclass(frozen=True)
class GroupSeparation:
    """How well an RSM separates same-group pairs (e.g. crops of one image) from different-group pairs."""

    auroc: float
    same: ValueSummary
    different: ValueSummary

    def to_dict(self) -> dict[str, float | int]:
        """Flat dict: auroc, same_mean, same_std, ..., different_max."""
        flat: dict[str, float | int] = {"auroc": self.auroc}
        for prefix, summary in (("same", self.same), ("different", self.different)):
            flat.update({f"{prefix}_{key}": value for key, value in asdict(summary).items()})
        return flat


def group_separation(rsm: Any, groups: Any) -> GroupSeparation:
    """AUROC of same-group vs different-group pair similarities, with summaries of both distributions."""
    same, different = split_pairs_by_group(rsm, groups)
    if same.size == 0 or different.size == 0:
        raise ValueError(
            f"groups must give both same-group and different-group pairs, got {same.size} and {different.size}"
        )
    return GroupSeparation(
        auroc=auroc(same, different), same=ValueSummary.of(same), different=ValueSummary.of(different)
    )
