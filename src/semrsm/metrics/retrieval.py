"""Leave-one-out retrieval from a similarity matrix and the F1 score of retrieved object categories.

F1 between two category sets A and B is 2|A & B| / (|A| + |B|). When both sets are empty the query and the
retrieved image agree exactly (neither shows an annotated object), so F1 is defined as 1.0; when only one is
empty it is 0.0. This matches the limit "identical sets score 1".
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from semrsm.metrics._checks import finite_matrix, group_ids


def top_k_neighbors(similarity: Any, k: int = 1, groups: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out top-k neighbours of every row of an (N, N) similarity matrix (larger = more similar).

    Each query excludes itself and, when `groups` (N ids) is given, every sample sharing its group id (e.g.
    crops of the same source image). Ties go to the lowest index, so the result is deterministic.
    Returns (indices, scores), both of shape (N, k), best first. Cost O(k N^2).
    """
    sim = finite_matrix(similarity, "similarity")
    n = sim.shape[0]
    if n < 2:
        raise ValueError(f"retrieval needs at least 2 samples, got similarity of shape {sim.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    excluded = np.eye(n, dtype=bool)
    if groups is not None:
        ids = group_ids(groups, n)
        excluded |= ids[:, None] == ids[None, :]
    candidates = n - excluded.sum(axis=1)
    if (candidates < k).any():
        query = int(np.argmax(candidates < k))
        raise ValueError(
            f"query {query} has only {int(candidates[query])} candidate neighbours after exclusions, k={k}"
        )
    masked = np.where(excluded, -np.inf, sim)
    rows = np.arange(n)
    indices = np.empty((n, k), dtype=np.int64)
    for rank in range(k):
        best = np.argmax(masked, axis=1)  # first maximum = lowest index among ties
        indices[:, rank] = best
        masked[rows, best] = -np.inf
    return indices, sim[rows[:, None], indices]


def set_f1(a: Iterable[Hashable], b: Iterable[Hashable]) -> float:
    """F1 between two category sets: 2|A & B| / (|A| + |B|); 1.0 when both are empty (see module doc)."""
    set_a, set_b = set(a), set(b)
    total = len(set_a) + len(set_b)
    return 1.0 if total == 0 else 2.0 * len(set_a & set_b) / total


def category_matrix(categories: Sequence[Iterable[Hashable]]) -> tuple[np.ndarray, list[Hashable]]:
    """Multi-hot (N, V) bool matrix of per-sample category sets, and the V category labels (first-seen order)."""
    if isinstance(categories, str | bytes) or not isinstance(categories, Sequence):
        raise ValueError(f"categories must be a sequence of category collections, got {type(categories)}")
    vocabulary: dict[Hashable, int] = {}
    sample_sets = []
    for i, sample in enumerate(categories):
        if isinstance(sample, str | bytes) or not isinstance(sample, Iterable):
            raise ValueError(f"categories[{i}] must be a collection of categories, got {sample!r}")
        labels = set(sample)
        for label in labels:
            vocabulary.setdefault(label, len(vocabulary))
        sample_sets.append(labels)
    multi_hot = np.zeros((len(sample_sets), len(vocabulary)), dtype=bool)
    for i, labels in enumerate(sample_sets):
        multi_hot[i, [vocabulary[label] for label in labels]] = True
    return multi_hot, list(vocabulary)


def pairwise_set_f1(multi_hot: np.ndarray, queries: np.ndarray, retrieved: np.ndarray) -> np.ndarray:
    """Vectorised `set_f1` between rows `queries[i]` and `retrieved[i]` of a multi-hot category matrix."""
    a, b = multi_hot[queries], multi_hot[retrieved]
    intersection = (a & b).sum(axis=1)
    total = a.sum(axis=1) + b.sum(axis=1)
    f1 = np.ones(len(queries), dtype=np.float64)
    nonempty = total > 0
    f1[nonempty] = 2.0 * intersection[nonempty] / total[nonempty]
    return f1


@dataclass(frozen=True)
class RetrievalF1:
    """F1@1 of leave-one-out retrieval: the mean, and per query its score, neighbour and similarity."""

    mean: float
    per_query: np.ndarray
    neighbor: np.ndarray
    neighbor_similarity: np.ndarray


def f1_at_1(similarity: Any, categories: Sequence[Iterable[Hashable]], groups: Any = None) -> RetrievalF1:
    """Retrieve each sample's most similar other sample and score the F1 of their category sets.

    `categories[i]` holds the annotated object categories of sample i; `groups` optionally excludes samples
    of the same group from retrieval (see `top_k_neighbors`).
    """
    multi_hot, _ = category_matrix(categories)
    sim = finite_matrix(similarity, "similarity")
    if multi_hot.shape[0] != sim.shape[0]:
        raise ValueError(f"categories has {multi_hot.shape[0]} entries but similarity is {sim.shape}")
    indices, scores = top_k_neighbors(sim, k=1, groups=groups)
    neighbor = indices[:, 0]
    per_query = pairwise_set_f1(multi_hot, np.arange(sim.shape[0]), neighbor)
    return RetrievalF1(
        mean=float(per_query.mean()), per_query=per_query, neighbor=neighbor, neighbor_similarity=scores[:, 0]
    )
