"""Exact dense linear assignment in numba, used for the exact sub-problems of the approximate matchers.

Minimises sum_i cost[i, p[i]] with shortest augmenting paths (Jonker-Volgenant style: column reduction to
initialise, then one Dijkstra search per free row over reduced costs). Runs inside numba's nopython mode so the
batched matchers can solve many small problems in parallel threads without the GIL.
"""

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _column_reduction(cost, row_to_col, col_to_row, col_pot):
    """Set each column's potential to its minimum cost and give it to that row if the row is still free."""
    n = cost.shape[0]
    for j in range(n - 1, -1, -1):
        best_row = 0
        best = cost[0, j]
        for i in range(1, n):
            if cost[i, j] < best:
                best = cost[i, j]
                best_row = i
        col_pot[j] = best
        if row_to_col[best_row] < 0:
            row_to_col[best_row] = j
            col_to_row[j] = best_row


@nb.njit(cache=True, nogil=True)
def _augment_from(free_row, cost, row_to_col, col_to_row, col_pot, dist, pred, todo, done):
    """One Dijkstra search from `free_row` over reduced costs; augments the matching and updates potentials."""
    n = cost.shape[0]
    for j in range(n):
        dist[j] = cost[free_row, j] - col_pot[j]
        pred[j] = free_row
        todo[j] = j
    n_todo = n
    n_done = 0
    while True:
        pick = 0
        best = dist[todo[0]]
        for t in range(1, n_todo):
            d = dist[todo[t]]
            if d < best or (d == best and col_to_row[todo[t]] < 0):
                best = d
                pick = t
        j = todo[pick]
        n_todo -= 1
        todo[pick] = todo[n_todo]
        done[n_done] = j
        n_done += 1
        if col_to_row[j] < 0:
            break
        i = col_to_row[j]
        base = best - (cost[i, j] - col_pot[j])
        for t in range(n_todo):
            k = todo[t]
            d = base + cost[i, k] - col_pot[k]
            if d < dist[k]:
                dist[k] = d
                pred[k] = i
    # columns finalised before the free column found keep reduced costs non-negative after this shift
    for t in range(n_done - 1):
        k = done[t]
        col_pot[k] += dist[k] - best
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
    _column_reduction(cost, row_to_col, col_to_row, col_pot)
    dist = np.empty(n)
    pred = np.empty(n, np.int64)
    todo = np.empty(n, np.int64)
    done = np.empty(n, np.int64)
    for i in range(n):
        if row_to_col[i] < 0:
            _augment_from(i, cost, row_to_col, col_to_row, col_pot, dist, pred, todo, done)
    return row_to_col
