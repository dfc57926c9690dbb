"""Exact matchers against brute force over all permutations, for every kernel."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_info

import semrsm
from semrsm.bench.engine import reference_rsm
from semrsm.similarity import exact, workloads
from semrsm.similarity.exact import hungarian_batch, lapjv_batch
from semrsm.similarity.jv import solve_lap_min

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
    rsms = semrsm.compute_rsms(reps, kernels=list(semrsm.KERNELS), matcher=matcher).rsms
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


def optimum(scores: np.ndarray) -> float:
    rows, cols = linear_sum_assignment(scores, maximize=True)
    return float(scores[rows, cols].sum())


def relu_tile(n_rows: int, n_cols: int, size: int, channels: int, seed: int):
    """A tile of products (n_rows * S, n_cols * S) float32 and the position norms of its samples."""
    rng = np.random.default_rng(seed)
    left = np.maximum(rng.standard_normal((n_rows, size, channels)), 0).astype(np.float32)
    right = np.maximum(rng.standard_normal((n_cols, size, channels)), 0).astype(np.float32)
    left[0, :2] = 0.0  # dead positions: tied scores
    products = left.reshape(-1, channels) @ right.reshape(-1, channels).T
    return products, np.linalg.norm(left, axis=2), np.linalg.norm(right, axis=2)


@pytest.mark.parametrize("large_size", [exact.LARGE_SIZE, 4])
@pytest.mark.parametrize("pairs_solver", [exact.lapjv_pairs, exact.hungarian_pairs])
def test_pairs_of_a_tile_are_solved_optimally(pairs_solver, large_size, monkeypatch):
    monkeypatch.setattr(exact, "LARGE_SIZE", large_size)  # 4: the lapjv package path for S = 6
    size = 6
    products, norms_left, norms_right = relu_tile(3, 2, size, 4, seed=7)
    a_idx, b_idx = np.array([0, 2, 1, 0]), np.array([1, 0, 0, 0])
    perms = pairs_solver(products, a_idx, b_idx, norms_left[a_idx], norms_right[b_idx])
    values = exact.matched_values(products, a_idx, b_idx, perms)
    for k, (a, b) in enumerate(zip(a_idx, b_idx, strict=True)):
        block = products[a * size : (a + 1) * size, b * size : (b + 1) * size].astype(np.float64)
        assert sorted(perms[k]) == list(range(size))
        assert values[k] == pytest.approx(block[np.arange(size), perms[k]].sum(), rel=1e-12)
        assert values[k] == pytest.approx(optimum(block), rel=1e-12)


@pytest.mark.parametrize("size", [1, 2, 37, 150])
def test_numba_solver_is_optimal_on_squared_distance_costs(size):
    rng = np.random.default_rng(size)
    for _ in range(4):
        smooth = np.cumsum(rng.standard_normal((size, 24)), axis=0) / 4  # neighbouring positions alike
        x = np.maximum(smooth + rng.standard_normal((size, 24)), 0)
        y = np.maximum(smooth[rng.permutation(size)] + rng.standard_normal((size, 24)), 0)
        scores = x @ y.T
        cost = np.square(x).sum(1)[:, None] + np.square(y).sum(1)[None, :] - 2 * scores
        perm = solve_lap_min(cost)
        assert sorted(perm) == list(range(size))
        assert scores[np.arange(size), perm].sum() == pytest.approx(optimum(scores), rel=1e-12)


@pytest.mark.parametrize(
    "cost",
    [np.zeros((9, 9)), np.full((7, 7), -2.5), np.kron(np.eye(3), np.ones((3, 3))), 1e12 * np.eye(5) - 3e11],
    ids=["zeros", "negative-constant", "block-ties", "large"],
)
def test_numba_solver_handles_degenerate_costs(cost):
    perm = solve_lap_min(cost)
    rows, cols = linear_sum_assignment(cost)
    assert sorted(perm) == list(range(len(cost)))
    assert cost[np.arange(len(cost)), perm].sum() == pytest.approx(cost[rows, cols].sum(), abs=1e-6)


@pytest.mark.parametrize("features", sorted(workloads.FEATURES))
def test_engine_equals_the_per_pair_reference(features):
    reps = workloads.FEATURES[features](7, 16, 7, seed=3)
    sets = reps.flatten(2).transpose(1, 2).contiguous().numpy()
    reference = reference_rsm(sets)
    for workers in (1, 2):
        rsm = semrsm.semantic_rsm(reps, matcher="lapjv", workers=workers, block_size=3).numpy()
        np.testing.assert_allclose(rsm, reference, rtol=0, atol=1e-6)


def test_engine_restores_the_blas_thread_count(maps):
    before = [pool["num_threads"] for pool in threadpool_info()]
    semrsm.semantic_rsm(maps, matcher="lapjv", workers=2)
    assert [pool["num_threads"] for pool in threadpool_info()] == before
