"""Experiment metrics: retrieval F1@1, Jensen-Shannon divergence, RSM correlations and group separation."""

from semrsm.metrics.correlation import (
    GroupSeparation,
    RSMCorrelation,
    ValueSummary,
    auroc,
    group_separation,
    rsm_correlation,
    split_pairs_by_group,
    upper_triangle,
)
from semrsm.metrics.divergence import jensen_shannon_matrix, softmax
from semrsm.metrics.retrieval import RetrievalF1, category_matrix, f1_at_1, set_f1, top_k_neighbors

__all__ = [
    "GroupSeparation",
    "RSMCorrelation",
    "RetrievalF1",
    "ValueSummary",
    "auroc",
    "category_matrix",
    "f1_at_1",
    "group_separation",
    "jensen_shannon_matrix",
    "rsm_correlation",
    "set_f1",
    "softmax",
    "split_pairs_by_group",
    "top_k_neighbors",
    "upper_triangle",
]
