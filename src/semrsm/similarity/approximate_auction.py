"""Candidate-graph auction: a throughput matcher beyond the paper (numba kernels for one score matrix).

Idea: the optimal assignment almost only uses edges that rank near the top of their row or of their column,
either once the scores are shifted by cheap dual prices or by Euclidean distance. So
1. a few passes over the (S, S) scores give dual prices (u = row maxima, v = column maxima of G - u) and a
   sparse candidate graph: per row about `row_candidates` columns ranked by G - v and half as many ranked by
   G - |y_c|^2 / 2 (nearest in distance), per column `col_candidates` rows ranked by G - u and as many by
   G - |x_r|^2 / 2, plus the edges of a greedy matching on that graph completed arbitrarily, so the graph
   always holds a perfect matching. Either ranking alone misses many optimal edges on some data; together
   they cover almost all;
2. Bertsekas' forward auction with epsilon scaling solves the assignment on that graph, warm-started from v;
3. a pricing pass over all S^2 scores finds rows whose best columns under the final prices lie outside the
   graph (eps-slackness violated on the full matrix); those edges are added and the auction resumes
   (`repair_rounds` times, fewer if nothing is violated).
The result is within S * eps of the optimum on the final graph, and any prices p give a dual certificate
sum_r max_c (G[r, c] - p_c) + sum_c p_c >= optimum on the full matrix.

Speed: numba vectorises element-wise maxima but not max-reductions, so candidates are found with "lanes"
(lane j of a row holds the maximum over columns j, j + L, j + 2L, ...) and strided row "blocks" (per column,
the maximum over rows k, k + K, k + 2K, ...): a row's candidates are the arg-max columns of its best lanes,
a column's candidates the arg-max rows of its best blocks. No step sorts or scans a full row scalar-wise.
"""

import numba as nb
import numpy as np

LANES = 128
GROUP_SIZE = 32
# columns a pricing pass may add per row that violates eps-slackness
REPAIR_COLUMNS = 8
# float32 rounding of G - p is below this times (max|G| + max|p|); added per row to keep the bound valid
ROUNDING_SLACK = 2.0**-21


@nb.njit(cache=True, nogil=True)
def _insert_descending(values, labels, count, value, label):
    """Insert (value, label) into a descending top list of capacity len(values); returns the new count."""
    capacity = values.shape[0]
    if count < capacity:
        k = count
        count += 1
    else:
        k = capacity - 1
    while k > 0 and values[k - 1] < value:
        values[k] = values[k - 1]
        labels[k] = labels[k - 1]
        k -= 1
    values[k] = value
    labels[k] = label
    return count


@nb.njit(cache=True, nogil=True)
def _n_groups(n, n_best):
    """How many lanes or blocks to split S positions into: about 32 positions each, at least 4 * n_best."""
    return min(n, max(-(-n // GROUP_SIZE), 4 * n_best))


@nb.njit(cache=True, nogil=True)
def _top_k(values, top_values, top_labels):
    """Indices of the len(top_values) largest values, descending, into top_labels; returns how many."""
    count = 0
    capacity = top_values.shape[0]
    for i in range(values.shape[0]):
        if count < capacity or values[i] > top_values[capacity - 1]:
            count = _insert_descending(top_values, top_labels, count, values[i], i)
    return count


@nb.njit(cache=True, nogil=True)
def _lane_maxima(values, lanes, lane_arg):
    """lanes[j] = max(values[j::L]) and lane_arg[j] its position, L = len(lanes) <= len(values)."""
    n, width = values.shape[0], lanes.shape[0]
    for j in range(width):
        lanes[j] = values[j]
        lane_arg[j] = j
    for start in range(width, n, width):
        chunk = values[start : min(start + width, n)]
        for j in range(chunk.shape[0]):
            better = chunk[j] > lanes[j]
            lanes[j] = chunk[j] if better else lanes[j]
            lane_arg[j] = start + j if better else lane_arg[j]


@nb.njit(cache=True, nogil=True)
def _row_maxima(scores):
    """Row maxima (float64), the mean of max_c |G[r, c]| (the value scale) and max |G| (nan if not finite)."""
    n = scores.shape[0]
    width = min(LANES, n)
    high = np.empty(width, np.float32)
    low = np.empty(width, np.float32)
    finite = np.zeros(width, np.float32)
    row_max = np.empty(n)
    total = 0.0
    largest = 0.0
    for r in range(n):
        row = scores[r]
        high[:] = row[:width]
        low[:] = row[:width]
        for start in range(0, n, width):
            chunk = row[start : min(start + width, n)]
            for j in range(chunk.shape[0]):
                x = chunk[j]
                high[j] = x if x > high[j] else high[j]
                low[j] = x if x < low[j] else low[j]
                finite[j] += x - x
        row_max[r] = high.max()
        magnitude = max(abs(row_max[r]), abs(low.min()))
        total += magnitude
        largest = max(largest, magnitude)
    if not np.all(finite == 0.0):
        largest = np.nan
    return row_max, total / n, largest


@nb.njit(cache=True, nogil=True)
def _column_candidates(scores, row_dual, n_best):
    """Column duals v_c = max_r G[r, c] - row_dual[r], and per column n_best candidate rows ((S, n_best) labels).

    Rows are dealt into strided blocks (block k holds rows k, k + K, k + 2K, ...); a column's candidates are its
    best row in each of its n_best best blocks, all found with element-wise (vectorised) maxima.
    """
    n = scores.shape[0]
    n_blocks = _n_groups(n, n_best)
    block_max = np.full((n_blocks, n), -np.inf, np.float32)
    block_arg = np.zeros((n_blocks, n), np.int32)
    for r in range(n):
        out = block_max[r % n_blocks]
        arg = block_arg[r % n_blocks]
        row = scores[r]
        shift = np.float32(row_dual[r])
        for c in range(n):
            x = row[c] - shift
            better = x > out[c]
            out[c] = x if better else out[c]
            arg[c] = r if better else arg[c]
    col_dual = block_max[0].astype(np.float64)
    for k in range(1, n_blocks):
        for c in range(n):
            col_dual[c] = max(col_dual[c], block_max[k, c])
    per_column = np.ascontiguousarray(block_max.T)
    labels = np.full((n, n_best), -1, np.int64)
    top_values = np.empty(n_best, np.float32)
    top_blocks = np.empty(n_best, np.int64)
    for c in range(n):
        count = _top_k(per_column[c], top_values, top_blocks)
        for t in range(count):
            labels[c, t] = block_arg[top_blocks[t], c]
    return labels, col_dual


@nb.njit(cache=True, nogil=True)
def _row_candidates(scores, col_dual, n_best):
    """Per row n_best candidate columns by G - col_dual: the best column of each of its n_best best lanes."""
    n = scores.shape[0]
    shift = col_dual.astype(np.float32)
    shifted = np.empty(n, np.float32)
    width = _n_groups(n, n_best)
    lanes = np.empty(width, np.float32)
    lane_arg = np.empty(width, np.int64)
    top_values = np.empty(n_best, np.float32)
    top_lanes = np.empty(n_best, np.int64)
    labels = np.full((n, n_best), -1, np.int64)
    for r in range(n):
        np.subtract(scores[r], shift, shifted)
        _lane_maxima(shifted, lanes, lane_arg)
        count = _top_k(lanes, top_values, top_lanes)
        for t in range(count):
            labels[r, t] = lane_arg[top_lanes[t]]
    return labels


@nb.njit(cache=True, nogil=True)
def _add_edge(columns, pos, seen, row, col):
    """Append col to the row being built unless already there; returns the next free position."""
    if seen[col] == row:
        return pos
    seen[col] = row
    columns[pos] = col
    return pos + 1


@nb.njit(cache=True, nogil=True)
def _build_graph(scores, row_labels, col_labels, extra_cols, n_extra):
    """CSR candidate graph (indptr, columns, values) from row lists, column lists and extra per-row edges."""
    n = scores.shape[0]
    per_row = np.zeros(n + 1, np.int64)
    for c in range(n):
        for k in range(col_labels.shape[1]):
            if col_labels[c, k] >= 0:
                per_row[col_labels[c, k] + 1] += 1
    for r in range(n):
        per_row[r + 1] += per_row[r]
    from_columns = np.empty(per_row[n], np.int64)
    fill = per_row[:-1].copy()
    for c in range(n):
        for k in range(col_labels.shape[1]):
            r = col_labels[c, k]
            if r >= 0:
                from_columns[fill[r]] = c
                fill[r] += 1
    columns = np.empty(n * row_labels.shape[1] + per_row[n] + n_extra.sum(), np.int64)
    indptr = np.zeros(n + 1, np.int64)
    seen = np.full(n, -1, np.int64)
    pos = 0
    for r in range(n):
        for k in range(row_labels.shape[1]):
            if row_labels[r, k] >= 0:
                pos = _add_edge(columns, pos, seen, r, row_labels[r, k])
        for t in range(per_row[r], per_row[r + 1]):
            pos = _add_edge(columns, pos, seen, r, from_columns[t])
        for t in range(n_extra[r]):
            pos = _add_edge(columns, pos, seen, r, extra_cols[r, t])
        indptr[r + 1] = pos
    columns = columns[:pos]
    values = np.empty(pos)
    for r in range(n):
        for t in range(indptr[r], indptr[r + 1]):
            values[t] = scores[r, columns[t]]
    return indptr, columns, values


@nb.njit(cache=True, nogil=True)
def _feasible_completion(scores, row_labels, col_dual):
    """A perfect matching: greedy over each row's candidate list, leftover rows paired with leftover columns."""
    n = scores.shape[0]
    perm = np.full(n, -1, np.int64)
    taken = np.zeros(n, np.bool_)
    for r in range(n):
        best = -np.inf
        for c in row_labels[r]:
            if c < 0:
                continue
            value = scores[r, c] - col_dual[c]
            if not taken[c] and value > best:
                best = value
                perm[r] = c
        if perm[r] >= 0:
            taken[perm[r]] = True
    free_col = 0
    for r in range(n):
        if perm[r] < 0:
            while taken[free_col]:
                free_col += 1
            taken[free_col] = True
            perm[r] = free_col
    return perm


@nb.njit(cache=True, nogil=True)
def _auction_phase(indptr, columns, values, prices, eps, assign, owner, queue, n_queued):
    """Forward auction (Gauss-Seidel) until every row in the queue holds a column; eps-complementary slackness."""
    n = assign.shape[0]
    head = 0
    while n_queued > 0:
        r = queue[head]
        head = head + 1 if head + 1 < n else 0
        n_queued -= 1
        first = -np.inf
        second = -np.inf
        best_col = -1
        for t in range(indptr[r], indptr[r + 1]):
            c = columns[t]
            value = values[t] - prices[c]
            if value > first:
                second = first
                first = value
                best_col = c
            elif value > second:
                second = value
        if second == -np.inf:
            second = first
        prices[best_col] += first - second + eps
        previous = owner[best_col]
        owner[best_col] = r
        assign[r] = best_col
        if previous >= 0:
            assign[previous] = -1
            tail = head + n_queued
            queue[tail if tail < n else tail - n] = previous
            n_queued += 1


@nb.njit(cache=True, nogil=True)
def _pricing(scores, prices, assign, eps, max_new, largest):
    """Per row up to max_new columns violating eps-slackness under the prices, and the dual upper bound."""
    n = scores.shape[0]
    shift = prices.astype(np.float32)
    shifted = np.empty(n, np.float32)
    lanes = np.empty(min(LANES, n), np.float32)
    lane_arg = np.empty(lanes.shape[0], np.int64)
    new_cols = np.empty((n, max_new), np.int64)
    n_new = np.zeros(n, np.int64)
    top_values = np.empty(max_new)
    slack = ROUNDING_SLACK * (largest + np.abs(prices).max())
    bound = prices.sum()
    for r in range(n):
        row = scores[r]
        np.subtract(row, shift, shifted)
        _lane_maxima(shifted, lanes, lane_arg)
        assigned = np.float64(row[assign[r]]) - prices[assign[r]]
        threshold = assigned + eps
        count = 0
        for j in range(lanes.shape[0]):
            if lanes[j] + slack > threshold:
                for c in range(j, n, lanes.shape[0]):
                    value = np.float64(row[c]) - prices[c]
                    if value > threshold:
                        count = _insert_descending(top_values, new_cols[r], count, value, c)
                        if count == max_new:
                            threshold = top_values[max_new - 1]
        n_new[r] = count
        bound += max(lanes.max() + slack, assigned)
    return new_cols, n_new, bound


@nb.njit(cache=True, nogil=True)
def _repair(scores, indptr, columns, new_cols, n_new, prices, eps, assign, owner, queue):
    """Add the pricing pass's columns to their rows, free those rows and let the auction resume."""
    n = scores.shape[0]
    degree = indptr[1:] - indptr[:-1]
    merged = np.empty((n, degree.max() + new_cols.shape[1]), np.int64)
    n_queued = 0
    for r in range(n):
        merged[r, : degree[r]] = columns[indptr[r] : indptr[r + 1]]
        merged[r, degree[r] : degree[r] + n_new[r]] = new_cols[r, : n_new[r]]
        if n_new[r] > 0:
            owner[assign[r]] = -1
            assign[r] = -1
            queue[n_queued] = r
            n_queued += 1
    no_lists = np.empty((n, 0), np.int64)
    indptr, columns, values = _build_graph(scores, no_lists, no_lists, merged, degree + n_new)
    _auction_phase(indptr, columns, values, prices, eps, assign, owner, queue, n_queued)
    return indptr, columns


@nb.njit(cache=True, nogil=True)
def _candidate_graph(scores, row_max, half_sq_x, half_sq_y, row_candidates, col_candidates):
    """Candidate graph from the dual-descent prices and, when norms are given, from squared distances."""
    n = scores.shape[0]
    col_labels, col_dual = _column_candidates(scores, row_max, min(col_candidates, n))
    row_labels = _row_candidates(scores, col_dual, min(row_candidates, n))
    completion = _feasible_completion(scores, row_labels, col_dual)
    if half_sq_x.shape[0] > 0:
        # G - |y|^2 / 2 ranks columns by Euclidean distance: the nearest neighbours of each position
        near_cols = _row_candidates(scores, half_sq_y, min(max(row_candidates // 2, 1), n))
        near_rows = _column_candidates(scores, half_sq_x, min(col_candidates, n))[0]
        row_labels = np.hstack((row_labels, near_cols))
        col_labels = np.hstack((col_labels, near_rows))
    graph = _build_graph(scores, row_labels, col_labels, completion.reshape(n, 1), np.ones(n, np.int64))
    return graph, col_dual


@nb.njit(cache=True, nogil=True)
def auction_match(
    scores, half_sq_x, half_sq_y, row_candidates, col_candidates, eps_rel, repair_rounds, with_bound
):
    """Candidate-graph auction on one (S, S) float32 score matrix; returns (perm, dual upper bound or nan).

    half_sq_x, half_sq_y: |x_r|^2 / 2 and |y_c|^2 / 2 (float64), or empty arrays to rank by scores only.
    Repairs stop early once no row violates eps-slackness on the full matrix. perm is all -1 when the scores
    are not finite. The bound is computed only if with_bound.
    """
    n = scores.shape[0]
    row_max, scale, largest = _row_maxima(scores)
    if np.isnan(largest):
        return np.full(n, -1, np.int64), np.nan
    if largest == 0.0:
        return np.arange(n), 0.0
    (indptr, columns, values), col_dual = _candidate_graph(
        scores, row_max, half_sq_x, half_sq_y, row_candidates, col_candidates
    )
    prices = col_dual.copy()
    eps_final = max(eps_rel * scale, 1e-12 * (largest + np.abs(prices).max()))
    assign = np.empty(n, np.int64)
    owner = np.empty(n, np.int64)
    queue = np.empty(n, np.int64)
    eps = max(0.1 * scale, eps_final)
    while True:
        assign[:] = -1
        owner[:] = -1
        queue[:] = np.arange(n)
        _auction_phase(indptr, columns, values, prices, eps, assign, owner, queue, n)
        if eps <= eps_final:
            break
        eps = max(eps / 8.0, eps_final)
    bound = np.nan
    for round_ in range(repair_rounds + 1):
        if round_ == repair_rounds and not with_bound:
            break
        new_cols, n_new, bound = _pricing(scores, prices, assign, eps_final, REPAIR_COLUMNS, largest)
        if round_ == repair_rounds or n_new.sum() == 0:
            break
        indptr, columns = _repair(
            scores, indptr, columns, new_cols, n_new, prices, eps_final, assign, owner, queue
        )
    return assign, bound
