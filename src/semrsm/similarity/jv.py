"""Exact dense linear assignment (Jonker-Volgenant) in numba: the exact matcher ``lapjv`` and the exact
sub-problems of the approximate matchers.

Minimises sum_i cost[i, p[i]]. Initialisation: row reduction, then column reduction (each column's cheapest row,
relative to that row's minimum, takes the column if the row is still free) and reduction transfer. Then one
shortest augmenting path search (Dijkstra over reduced costs) per free row. The search's loops run over all
columns with sentinels (+inf distance, -inf potential) instead of index lists, and its distances are kept
non-negative so that their minimum can be taken on their bit patterns as int64 (same order for non-negative
doubles): LLVM vectorises those loops, not a float minimum. nogil: callers solve many problems in threads.
"""

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True, inline="always")
def _min(values, n):
    """Minimum of values[:n]: eight independent accumulators (LLVM does not vectorise float min reductions)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.inf
    k = 0
    while k + 8 <= n:
        m0 = values[k] if values[k] < m0 else m0
        m1 = values[k + 1] if values[k + 1] < m1 else m1
        m2 = values[k + 2] if values[k + 2] < m2 else m2
        m3 = values[k + 3] if values[k + 3] < m3 else m3
        m4 = values[k + 4] if values[k + 4] < m4 else m4
        m5 = values[k + 5] if values[k + 5] < m5 else m5
        m6 = values[k + 6] if values[k + 6] < m6 else m6
        m7 = values[k + 7] if values[k + 7] < m7 else m7
        k += 8
    while k < n:
        m0 = values[k] if values[k] < m0 else m0
        k += 1
    return min(min(min(m0, m1), min(m2, m3)), min(min(m4, m5), min(m6, m7)))


@nb.njit(cache=True, nogil=True, inline="always")
def _min_int(values, n):
    """Minimum of integer values[:n] (vectorised by LLVM)."""
    least = values[0]
    for k in range(1, n):
        least = values[k] if values[k] < least else least
    return least


@nb.njit(cache=True, nogil=True, inline="always")
def _first(values, target, n):
    """Index of the first of values[:n] equal to ``target`` (which must occur), tested eight at a time."""
    k = 0
    while k + 8 <= n:
        if (
            (values[k] == target)
            | (values[k + 1] == target)
            | (values[k + 2] == target)
            | (values[k + 3] == target)
            | (values[k + 4] == target)
            | (values[k + 5] == target)
            | (values[k + 6] == target)
            | (values[k + 7] == target)
        ):
            break
        k += 8
    while values[k] != target:
        k += 1
    return k


@nb.njit(cache=True, nogil=True)
def _initialise(cost, row_to_col, col_to_row, col_pot, scratch):
    """Column reduction on the row-reduced costs and reduction transfer: a partial assignment whose rows all
    have non-negative reduced costs cost[i, j] - col_pot[j] - (cost[i, row_to_col[i]] - col_pot[row_to_col[i]])."""
    n = cost.shape[0]
    row_min = np.empty(n)
    for i in range(n):
        row_min[i] = _min(cost[i], n)
    best_row = np.zeros(n, np.int64)
    for j in range(n):
        col_pot[j] = cost[0, j] - row_min[0]
    for i in range(1, n):
        for j in range(n):
            reduced = cost[i, j] - row_min[i]
            if reduced < col_pot[j]:
                col_pot[j] = reduced
                best_row[j] = i
    taken = np.zeros(n, np.int64)
    for j in range(n - 1, -1, -1):
        i = best_row[j]
        taken[i] += 1
        if row_to_col[i] < 0:
            row_to_col[i] = j
            col_to_row[j] = i
    if n == 1:
        return
    # reduction transfer: a row that is the best of exactly one column lowers that column's potential until
    # its second best column is as cheap (reduced), which keeps its reduced costs >= 0 and makes the column
    # less attractive to other rows
    for i in range(n):
        if taken[i] == 1:
            j = row_to_col[i]
            for k in range(n):
                scratch[k] = cost[i, k] - col_pot[k]
            scratch[j] = np.inf
            col_pot[j] = cost[i, j] - _min(scratch, n)


@nb.njit(cache=True, nogil=True)
def _augment_from(
    free_row, cost, row_to_col, col_to_row, col_pot, dist, open_pot, final_dist, pred, finished
):
    """Dijkstra from ``free_row`` to the nearest free column over reduced costs; augments the assignment along
    the path and updates the potentials of the columns finished before it (keeps reduced costs non-negative).

    dist: distances of open columns minus the smallest initial one, so all >= 0 (+inf once finished);
    open_pot: col_pot of open columns (-inf once finished, so a relaxation never lowers a finished column's +inf).
    """
    n = cost.shape[0]
    for j in range(n):
        dist[j] = cost[free_row, j] - col_pot[j]
        open_pot[j] = col_pot[j]
        pred[j] = free_row
    start = _min(dist, n)
    for j in range(n):
        dist[j] -= start
    dist_bits = dist.view(np.int64)
    n_finished = 0
    while True:
        j = _first(dist_bits, _min_int(dist_bits, n), n)
        nearest = dist[j]
        i = col_to_row[j]
        if i < 0:
            break
        dist[j] = np.inf
        open_pot[j] = -np.inf
        final_dist[j] = nearest
        finished[n_finished] = j
        n_finished += 1
        offset = nearest - (cost[i, j] - col_pot[j])
        for k in range(n):
            # reduced costs are >= 0, so nothing beats `nearest`; the max only removes rounding below it
            through_i = max(offset + cost[i, k] - open_pot[k], nearest)
            if through_i < dist[k]:
                dist[k] = through_i
                pred[k] = i
    for t in range(n_finished):
        k = finished[t]
        col_pot[k] += final_dist[k] - nearest
    while True:
        i = pred[j]
        col_to_row[j] = i
        previous = row_to_col[i]
        row_to_col[i] = j
        if i == free_row:
            break
        j = previous


@nb.njit(cache=True, nogil=True)
def solve_lap_min(cost):
    """Exact minimum-cost assignment of a square float64 matrix; returns p (int64) with p[row] = column."""
    n = cost.shape[0]
    row_to_col = np.full(n, -1, np.int64)
    col_to_row = np.full(n, -1, np.int64)
    if n == 0:
        return row_to_col
    col_pot = np.empty(n)
    dist = np.empty(n)
    _initialise(cost, row_to_col, col_to_row, col_pot, dist)
    open_pot = np.empty(n)
    final_dist = np.empty(n)
    pred = np.empty(n, np.int64)
    finished = np.empty(n, np.int64)
    for i in range(n):
        if row_to_col[i] < 0:
            _augment_from(
                i, cost, row_to_col, col_to_row, col_pot, dist, open_pot, final_dist, pred, finished
            )
    return row_to_col
