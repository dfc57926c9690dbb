"""Exact matchers: the permutation maximising the matched inner product sum_r <x_r, y_p(r)>.

``lapjv`` runs on the squared-distance cost |x_r|^2 + |y_c|^2 - 2 <x_r, y_c>, which has the same optimum as the
negative inner product (row and column constants do not move the argmin) and is several times faster there; scipy
is fastest on the inner products themselves. Both release the GIL, so batches are solved by a thread pool.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import lapjv
import numpy as np
from scipy.optimize import linear_sum_assignment


def default_workers() -> int:
    """Number of CPU cores this process may use."""
    return len(os.sched_getaffinity(0))


def _squared_distance_cost(scores: np.ndarray, norms_x: np.ndarray, norms_y: np.ndarray) -> np.ndarray:
    cost = np.square(norms_x)[:, None] + np.square(norms_y)[None, :]
    cost -= 2.0 * scores
    return cost


def lapjv_pair(scores: np.ndarray, norms_x: np.ndarray, norms_y: np.ndarray) -> np.ndarray:
    """Optimal permutation for one (S, S) score matrix with the ``lapjv`` Jonker-Volgenant solver."""
    cost = _squared_distance_cost(scores, norms_x, norms_y)
    return lapjv.lapjv(cost)[0].astype(np.int64, copy=False)


def hungarian_pair(scores: np.ndarray, norms_x: np.ndarray, norms_y: np.ndarray) -> np.ndarray:
    """Optimal permutation for one (S, S) score matrix with scipy's ``linear_sum_assignment``.

    scipy is faster on the inner-product form itself, so the norms are not used.
    """
    return linear_sum_assignment(scores, maximize=True)[1].astype(np.int64, copy=False)


def run_chunked(task, n_items: int, workers: int, pool: ThreadPoolExecutor | None = None) -> None:
    """Call ``task(start, stop)`` over contiguous chunks of range(n_items), on ``pool`` when workers > 1."""
    if workers <= 1 or n_items <= 1 or pool is None:
        task(0, n_items)
        return
    bounds = np.linspace(0, n_items, min(n_items, 4 * workers) + 1).astype(int)
    list(pool.map(task, bounds[:-1], bounds[1:]))


def solve_pairs(pair_solver, scores, norms_x, norms_y, workers: int | None = None) -> np.ndarray:
    """Solve a batch (B, S, S) pair by pair on ``workers`` threads; returns perms (B, S) int64.

    ``scores`` may be any (B, S, S) array, strided views included; ``norms_*`` are (B, S) L2 norms.
    """
    workers = default_workers() if workers is None else workers
    perms = np.empty(scores.shape[:2], dtype=np.int64)

    def solve(start: int, stop: int) -> None:
        for index in range(start, stop):
            perms[index] = pair_solver(scores[index], norms_x[index], norms_y[index])

    with ThreadPoolExecutor(workers) as pool:
        run_chunked(solve, len(scores), workers, pool)
    return perms


def lapjv_batch(scores, norms_x, norms_y, workers: int | None = None) -> np.ndarray:
    """Exact matching of a batch with ``lapjv``: perms[b, r] = column matched to row r."""
    return solve_pairs(lapjv_pair, scores, norms_x, norms_y, workers)


def hungarian_batch(scores, norms_x, norms_y, workers: int | None = None) -> np.ndarray:
    """Exact matching of a batch with scipy's ``linear_sum_assignment``: perms[b, r] = column matched to row r."""
    return solve_pairs(hungarian_pair, scores, norms_x, norms_y, workers)
