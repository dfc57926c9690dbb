"""Exact matchers against brute force over all permutations, for every kernel."""

import itertools
import math

import numpy as np
import pytest
import torch

import semrsm
from semrsm.similarity.exact import hungarian_batch, lapjv_batch

EXACT = ["hungarian", "lapjv"]


def brute_force_scores(sets: np.ndarray) -> np.ndarray:
    n, size = sets.shape[:2]
    scores = np.einsum("isc,isc->i", sets, sets) * np.eye(n)
    for i, j in itertools.combinations(range(n), 2):
        products = sets[i] @ sets[j].T
        best = max(
            products[np.arange(size), list(perm)].sum() for perm in itertools.permutations(range(size))
        )
        scores[i, j] = scores[j, i] = best
    return scores


def brute_force_rsm(kernel: str, scores: np.ndarray) -> np.ndarray:
    sq_norms = np.diag(scores)
    if kernel == "linear":
        return scores
    if kernel == "cosine":
        return scores / np.sqrt(np.outer(sq_norms, sq_norms))
    distances = np.maximum(sq_norms[:, None] + sq_norms[None, :] - 2 * scores, 0)
    upper = distances[np.triu_indices(len(scores), 1)]
    sigma2 = np.median(upper[upper > 0])
    return np.exp(-distances / (2 * sigma2))


@pytest.mark.parametrize("matcher", EXACT)
@pytest.mark.parametrize("shape", [(5, 4, 1, 6), (4, 3, 2, 2), (4, 7, 1, 1)])
def test_exact_matchers_equal_brute_force_for_every_kernel(matcher, shape, make_maps):
    reps = make_maps(*shape, seed=sum(shape))
    sets = reps.flatten(2).transpose(1, 2).numpy()
    scores = brute_force_scores(sets)
    rsms = semrsm.semantic_rsm(reps, kernel=list(semrsm.KERNELS), matcher=matcher)
    for kernel in semrsm.KERNELS:
        np.testing.assert_allclose(
            rsms[kernel].numpy(), brute_force_rsm(kernel, scores), rtol=1e-9, atol=1e-12
        )


@pytest.mark.parametrize("matcher", EXACT)
def test_match_returns_the_optimal_permutation(matcher):
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((6, 5)), 0)
    y = x[[3, 0, 5, 1, 4, 2]] + 0.01 * rng.standard_normal((6, 5))
    perm = semrsm.match(x, y, matcher=matcher)
    assert isinstance(perm, np.ndarray) and perm.dtype == np.int64
    np.testing.assert_array_equal(perm, [1, 3, 5, 0, 4, 2])
    assert torch.equal(semrsm.match(torch.from_numpy(x), y, matcher=matcher), torch.from_numpy(perm))


@pytest.mark.parametrize("solve", [hungarian_batch, lapjv_batch])
def test_batched_exact_solvers_handle_ties_and_zero_positions(solve):
    rng = np.random.default_rng(4)
    sets = np.maximum(rng.standard_normal((4, 5, 3)), 0)
    sets[0, :2] = 0.0  # dead positions: whole rows of equal scores
    sets[1] = sets[0]  # identical samples
    left, right = sets[[0, 0, 2]], sets[[1, 2, 3]]
    scores = np.matmul(left, right.transpose(0, 2, 1))
    perms = solve(scores, np.linalg.norm(left, axis=2), np.linalg.norm(right, axis=2), workers=2)
    for scores_b, perm in zip(scores, perms, strict=True):
        assert sorted(perm) == list(range(5))
        best = max(scores_b[np.arange(5), list(p)].sum() for p in itertools.permutations(range(5)))
        assert math.isclose(scores_b[np.arange(5), perm].sum(), best, rel_tol=1e-12)
