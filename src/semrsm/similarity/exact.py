"""Exact matchers: the permutation maximising the matched inner product sum_r <x_r, y_p(r)>.

Both solve pairs whose inner products are blocks of one matrix: pair k is the (S, S) block of ``products`` at
rows a_idx[k] * S and columns b_idx[k] * S (a tile of the engine, or a batch stacked as (B * S, S)).

``lapjv`` solves the squared-distance cost |x_r|^2 + |y_c|^2 - 2 <x_r, y_c>. It has the same optimum as the
negative inner product (row and column constants do not move the argmin) and Jonker-Volgenant's initial duals fit
it far better, so it needs several times fewer augmenting steps. Up to S = ``LARGE_SIZE`` the numba solver of
``jv`` (about 2.5x faster than the ``lapjv`` package at S = 196), above it the ``lapjv`` package,
whose searches scan only unfinished columns (about 2x faster at S = 3136). ``hungarian`` is scipy's
``linear_sum_assignment`` on the inner products themselves, an independent reference. None holds the GIL while
solving, so threads solve pairs in parallel.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import lapjv
import numba as nb
import numpy as np
from scipy.optimize import linear_sum_assignment

from semrsm.similarity.jv import solve_lap_min

# S above which the lapjv package beats the numba solver (measured on smooth ReLU features: 784 no, 3136 yes)
LARGE_SIZE = 1024


def default_workers() -> int:
    """Number of CPU cores this process may use."""
    return len(os.sched_getaffinity(0))


@nb.njit(cache=True, nogil=True)
def _lapjv_blocks(products, a_idx, b_idx, sq_norms_x, sq_norms_y, perms):
    """perms[k] = optimal permutation of pair k, solved on its squared-distance cost (one reused buffer)."""
    size = perms.shape[1]
    cost = np.empty((size, size))
    for k in range(len(a_idx)):
        row0, col0 = a_idx[k] * size, b_idx[k] * size
        for r in range(size):
            scores_r, cost_r, sq_y = products[row0 + r, col0 : col0 + size], cost[r], sq_norms_y[k]
            for c in range(size):  # 1-D row views: LLVM vectorises this, not the 2-D indexing
                cost_r[c] = sq_norms_x[k, r] + sq_y[c] - 2.0 * scores_r[c]
        perms[k] = solve_lap_min(cost)


def lapjv_pairs(products, a_idx, b_idx, norms_x, norms_y) -> np.ndarray:
    """Optimal permutations (K, S) int64 of the K pairs of ``products`` (see module doc) with a Jonker-Volgenant
    solver; norms_x, norms_y (K, S) are the pairs' position L2 norms."""
    products = np.ascontiguousarray(products, dtype=np.result_type(products.dtype, np.float32))
    a_idx, b_idx = np.asarray(a_idx, dtype=np.int64), np.asarray(b_idx, dtype=np.int64)
    sq_x, sq_y = (np.square(np.asarray(norms, dtype=np.float64)) for norms in (norms_x, norms_y))
    perms = np.empty(sq_x.shape, dtype=np.int64)
    size = perms.shape[1]
    if size <= LARGE_SIZE:
        _lapjv_blocks(products, a_idx, b_idx, sq_x, sq_y, perms)
        return perms
    for k, (a, b) in enumerate(zip(a_idx, b_idx, strict=True)):
        cost = sq_x[k][:, None] + sq_y[k][None, :]
        cost -= 2.0 * products[a * size : (a + 1) * size, b * size : (b + 1) * size]
        perms[k] = lapjv.lapjv(cost)[0]
    return perms


def hungarian_pairs(products, a_idx, b_idx, norms_x, norms_y) -> np.ndarray:
    """Optimal permutations (K, S) int64 of the K pairs of ``products`` (see module doc) with scipy's
    ``linear_sum_assignment`` on the inner products (the norms are not needed)."""
    size = np.shape(norms_x)[1]
    perms = np.empty((len(a_idx), size), dtype=np.int64)
    for k, (a, b) in enumerate(zip(a_idx, b_idx, strict=True)):
        block = products[a * size : (a + 1) * size, b * size : (b + 1) * size]
        perms[k] = linear_sum_assignment(block, maximize=True)[1]
    return perms


def matched_values(products, a_idx, b_idx, perms) -> np.ndarray:
    """Matched scores sum_r G_k[r, perms[k, r]] (float64) of the pairs of ``products`` (see module doc)."""
    size = perms.shape[1]
    rows = np.asarray(a_idx)[:, None] * size + np.arange(size)
    cols = np.asarray(b_idx)[:, None] * size + perms
    return products[rows, cols].sum(axis=1, dtype=np.float64)


def _solve_batch(pairs_solver, scores, norms_x, norms_y, workers: int | None) -> np.ndarray:
    """Solve a (B, S, S) batch as B blocks of a (B * S, S) matrix, in contiguous chunks on ``workers`` threads."""
    scores, norms_x, norms_y = np.ascontiguousarray(scores), np.asarray(norms_x), np.asarray(norms_y)
    batch, size = scores.shape[:2]
    stacked = scores.reshape(batch * size, size)
    workers = default_workers() if workers is None else workers
    edges = np.linspace(0, batch, min(batch, 4 * workers) + 1).astype(int)
    chunks = [np.arange(start, stop) for start, stop in zip(edges[:-1], edges[1:], strict=True)]

    def solve(chunk: np.ndarray) -> np.ndarray:
        return pairs_solver(stacked, chunk, np.zeros_like(chunk), norms_x[chunk], norms_y[chunk])

    if workers <= 1 or len(chunks) <= 1:
        parts = [solve(chunk) for chunk in chunks]
    else:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(solve, chunks))
    return np.concatenate(parts) if parts else np.empty((0, size), dtype=np.int64)


def lapjv_batch(scores, norms_x, norms_y, workers: int | None = None) -> np.ndarray:
    """Exact matching of a batch with the numba Jonker-Volgenant solver: perms[b, r] = column matched to row r."""
    return _solve_batch(lapjv_pairs, scores, norms_x, norms_y, workers)


def hungarian_batch(scores, norms_x, norms_y, workers: int | None = None) -> np.ndarray:
    """Exact matching of a batch with scipy's ``linear_sum_assignment``: perms[b, r] = column matched to row r."""
    return _solve_batch(hungarian_pairs, scores, norms_x, norms_y, workers)
