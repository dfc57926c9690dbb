"""Engine: matched scores for all sample pairs, pair block by pair block.

A pair block is a range of rows x a range of columns of the (N, N) pair matrix; only its pairs i < j are
computed.
A pair's inner products G[r, c] = <x_{i, r}, x_{j, c}> come from the product of the *aligned blocks* holding i
and j: samples [a * side, (a + 1) * side) with side = ``block_side(S)`` (about 1200 product rows; one sample
from S = 601 on). That is always the same matrix product whichever block asks for it, and BLAS results can
depend on the matrix shape, so this is what makes a pair's products, matching and score independent of the block
plan, the worker count and which process computed it (bit-identical on one machine and BLAS; products use
single-threaded BLAS). Default pair blocks are whole aligned blocks. The pairs are then solved and only the matched score
sum_r G[r, p(r)] (float64) is kept. Exact matchers run whole blocks (products, then the pairs) on a thread pool,
so one block's products overlap another's solving; approximate ones solve a block as one batch. Memory is bounded
by the block size, whatever N is.

Range: samples whose largest |value| lies outside [2^-40, 2^40] are scaled by a power of two (exact) before
their float32 products, and their scores scaled back in float64, so no product overflows or underflows.
"""

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from semrsm.similarity import approximate
from semrsm.similarity.exact import default_workers, matched_values
from semrsm.similarity.inputs import as_sets
from semrsm.similarity.matchers import Matcher, get_matcher

BLOCK_BYTES = 128 * 2**20  # for the products of all blocks alive at a time
FLAT_CHUNK = 4096  # features per float32 product of the spatio-semantic path (bounds its rounding error)
FLAT_ROWS = 64  # samples per aligned row block of the spatio-semantic products
BLOCK_ROWS = 1200  # product rows per aligned sample block of the semantic products (at least one sample)
SAFE_EXPONENT = 40  # samples with max |x| outside [2^-40, 2^40] are rescaled by a power of two


@dataclass(frozen=True)
class PairBlock:
    """Rows x columns block of the pair matrix; only its pairs i < j are computed."""

    rows: range
    cols: range

    def local_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices (a, b) into rows and cols of the block's pairs with rows[a] < cols[b]."""
        a, b = np.meshgrid(np.arange(len(self.rows)), np.arange(len(self.cols)), indexing="ij")
        keep = (np.asarray(self.rows)[a] < np.asarray(self.cols)[b]).ravel()
        return a.ravel()[keep], b.ravel()[keep]

    def global_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample indices (i, j) of the block's pairs, i < j, in the order of ``local_pairs``."""
        a_idx, b_idx = self.local_pairs()
        return np.asarray(self.rows)[a_idx], np.asarray(self.cols)[b_idx]


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def block_side(size: int) -> int:
    """Samples per side of the aligned blocks whose products are computed together, at ``size`` positions."""
    return max(1, BLOCK_ROWS // size)


def pair_block_side(
    n_samples: int, bytes_per_pair: int, block_size: int | None = None, align: int = 1
) -> int:
    """Samples per block side: ``block_size`` checked, or by default about N / 8 and at most what fits 128 MiB of
    products at ``bytes_per_pair``, rounded up to a multiple of ``align`` (the aligned block side)."""
    if block_size is None:
        fits = max(1, math.isqrt(BLOCK_BYTES // max(1, bytes_per_pair)))
        block_size = min(fits, math.ceil(n_samples / 8))  # >= 8 blocks per row: every worker busy at small N
        block_size = align * math.ceil(block_size / align)
    return _check_positive_int("block_size", block_size)


def plan_blocks(
    n_samples: int, bytes_per_pair: int, block_size: int | None = None, align: int = 1
) -> list[PairBlock]:
    """Pair blocks covering every pair i < j of ``n_samples`` once.

    ``block_size`` samples per side; by default about N / 8 (so even a small N gives every worker blocks), at most
    what fits 128 MiB at ``bytes_per_pair`` (S * S * itemsize for semantic matching), a multiple of ``align``. A launcher may spread the blocks over machines; the results do not depend on the plan, but a
    block smaller than the aligned block (``block_side``) recomputes the aligned block's whole product.
    """
    size = pair_block_side(n_samples, bytes_per_pair, block_size, align)
    starts = range(0, n_samples, size)
    blocks = [
        PairBlock(range(a, min(a + size, n_samples)), range(b, min(b + size, n_samples)))
        for a in starts
        for b in starts
        if b >= a
    ]
    return [block for block in blocks if len(block.local_pairs()[0])]


@dataclass
class MatchedScores:
    """Matched inner products m_ij (N, N) float64 (NaN where a pair was not computed; diagonal = |x_i|^2),
    squared norms (N,) and, if requested, upper bounds on the optimal m_ij (equal to m_ij for exact matchers)."""

    scores: torch.Tensor
    sq_norms: torch.Tensor
    upper_bounds: torch.Tensor | None = None

    @property
    def complete(self) -> bool:
        """Whether every pair has been computed."""
        return not bool(torch.isnan(self.scores).any())

    def merge(self, other: "MatchedScores") -> "MatchedScores":
        """Combine results of disjoint block sets of the same samples."""
        if self.scores.shape != other.scores.shape:
            raise ValueError(
                f"cannot merge scores of shapes {tuple(self.scores.shape)} and {tuple(other.scores.shape)}"
            )
        if (self.upper_bounds is None) != (other.upper_bounds is None):
            raise ValueError("cannot merge results with and without upper bounds")

        def fill(mine, theirs):
            return None if mine is None else torch.where(torch.isnan(mine), theirs, mine)

        return MatchedScores(
            fill(self.scores, other.scores), self.sq_norms, fill(self.upper_bounds, other.upper_bounds)
        )


def rescale(sets: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """(scaled sets, exponents e (N,) int64) with sets[i] = scaled[i] * 2^e[i]: samples whose max |x| lies
    outside [2^-SAFE_EXPONENT, 2^SAFE_EXPONENT] are scaled to max |x| in [0.5, 1) (exact: a power of two), so
    their float32 products can neither overflow nor underflow; the others are left as they are (e = 0)."""
    peaks = sets.abs().amax(dim=(1, 2)).double().cpu().numpy()
    exponents = np.frexp(peaks)[1].astype(np.int64)
    outside = (peaks > 0) & ((peaks > 2.0**SAFE_EXPONENT) | (peaks < 2.0**-SAFE_EXPONENT))
    exponents[~outside] = 0
    if not outside.any():
        return sets, exponents
    factors = torch.from_numpy(np.ldexp(1.0, -exponents)).to(sets.device, sets.dtype)
    return sets * factors[:, None, None], exponents


def _squared_norms(sets: torch.Tensor, exponents: np.ndarray, block: int = 64) -> torch.Tensor:
    """|x_i|^2 (N,) float64 of the unscaled samples, accumulated in float64 without a float64 copy of the whole
    input; ValueError if one exceeds the float64 range."""
    if sets.device.type == "cpu":  # numpy casts in small buffers, several times faster than torch here
        array = sets.numpy()
        scaled = np.einsum("nsc,nsc->n", array, array, dtype=np.float64)
    else:
        parts = [sets[i : i + block].double().square().sum(dim=(1, 2)) for i in range(0, len(sets), block)]
        scaled = torch.cat(parts).cpu().numpy()
    with np.errstate(over="ignore"):
        sq_norms = np.ldexp(scaled, 2 * exponents)
    if not np.isfinite(sq_norms).all():
        bad = np.flatnonzero(~np.isfinite(sq_norms)).tolist()
        raise ValueError(
            f"reps: the squared norms of sample(s) {bad[:10]} exceed the float64 range; rescale the input"
        )
    return torch.from_numpy(sq_norms)


def _products(left: torch.Tensor, right: torch.Tensor) -> np.ndarray:
    if left.device.type == "cpu":
        return left.numpy() @ right.numpy().T
    return (left @ right.T).cpu().numpy()


def block_products(sets: torch.Tensor, block_i: int, block_j: int, side: int) -> np.ndarray:
    """Inner products of the aligned sample blocks ``block_i`` and ``block_j`` (``side`` samples each, the last
    block of N shorter) as one (rows * S, cols * S) matrix in the input's precision: block (a, b) holds G of
    samples side * block_i + a and side * block_j + b. A diagonal block (``block_i == block_j``) holds only its
    pairs a < b (one product per row of samples: each unordered pair once; zeros elsewhere). Every block is
    computed the same way whichever block asks for it. Call with single-threaded BLAS."""
    left = sets[block_i * side : (block_i + 1) * side].flatten(0, 1)
    right = sets[block_j * side : (block_j + 1) * side].flatten(0, 1)
    if block_i != block_j:
        return _products(left, right)
    size = sets.shape[1]
    products = np.zeros(
        (len(left), len(right)), dtype=np.float64 if sets.dtype == torch.float64 else np.float32
    )
    for start in range(0, len(left) - size, size):
        products[start : start + size, start + size :] = _products(
            left[start : start + size], right[start + size :]
        )
    return products


def _by_block(rows: np.ndarray, cols: np.ndarray, side: int):
    """(block_i, block_j, local rows, local cols, positions) of the pairs (rows[k], cols[k]) per aligned block
    pair: the pairs one ``block_products`` call serves."""
    block_rows, block_cols = rows // side, cols // side
    order = np.lexsort((block_cols, block_rows))
    edges = np.flatnonzero(np.diff(block_rows[order]) | np.diff(block_cols[order])) + 1
    for here in np.split(order, edges):
        bi, bj = int(block_rows[here[0]]), int(block_cols[here[0]])
        yield bi, bj, rows[here] - bi * side, cols[here] - bj * side, here


def _flat_block(flat: torch.Tensor, start: int) -> np.ndarray:
    """Unmatched inner products (rows, N) float64 of the aligned samples start..start+FLAT_ROWS with every
    sample: float32 products over chunks of FLAT_CHUNK features, accumulated in float64. The same products
    whichever blocks ask for them, so a pair's value does not depend on the blocks."""
    left = flat[start : start + FLAT_ROWS]
    total = torch.zeros(len(left), len(flat), dtype=torch.float64, device=flat.device)
    for begin in range(0, flat.shape[1], FLAT_CHUNK):
        if flat.device.type == "cpu":
            part = left[:, begin : begin + FLAT_CHUNK].numpy() @ flat[:, begin : begin + FLAT_CHUNK].numpy().T
            total += torch.from_numpy(part)
        else:
            total += left[:, begin : begin + FLAT_CHUNK] @ flat[:, begin : begin + FLAT_CHUNK].T
    return total.cpu().numpy()


def _exact_block(
    spec: Matcher, sets: torch.Tensor, block: PairBlock, position_norms: np.ndarray
) -> np.ndarray:
    """Scaled matched scores of a block's pairs: per aligned block pair its products, then its pairs solved by
    the exact solver."""
    rows, cols = block.global_pairs()
    side = block_side(sets.shape[1])
    values = np.empty(len(rows))
    for bi, bj, a_idx, b_idx, here in _by_block(rows, cols, side):
        products = block_products(sets, bi, bj, side)
        norms_x, norms_y = position_norms[rows[here]], position_norms[cols[here]]
        perms = spec.pair_solver(products, a_idx, b_idx, norms_x, norms_y)
        values[here] = matched_values(products, a_idx, b_idx, perms)
    return values


def _block_batch(sets: torch.Tensor, block: PairBlock, workers: int) -> np.ndarray:
    """Inner products (K, S, S) of a block's K pairs, in the order of ``PairBlock.global_pairs``; the aligned block
    products on ``workers`` threads with single-threaded BLAS."""
    rows, cols = block.global_pairs()
    size = sets.shape[1]
    side = block_side(size)
    batch = np.empty((len(rows), size, size), dtype=np.float64 if sets.dtype == torch.float64 else np.float32)

    def fill(group) -> None:
        bi, bj, a_idx, b_idx, here = group
        products = block_products(sets, bi, bj, side)
        blocks = products.reshape(products.shape[0] // size, size, products.shape[1] // size, size)
        batch[here] = blocks.transpose(0, 2, 1, 3)[a_idx, b_idx]

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        list(pool.map(fill, _by_block(rows, cols, side)))
    return batch


def _run_exact(spec, sets, blocks, position_norms, workers, record) -> None:
    """Exact blocks on ``workers`` threads, each computing a block's products (single-threaded BLAS) and solving
    its pairs, so products and solving of different blocks overlap; ``record(block, values, values)`` as each
    finishes (an exact score is its own upper bound)."""
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(_exact_block, spec, sets, block, position_norms): block for block in blocks}
        try:
            for future in as_completed(futures):
                values = future.result()
                record(futures[future], values, values)
        finally:
            pool.shutdown(cancel_futures=True)


def _run_flat(sets, blocks, workers, record) -> None:
    """Spatio-semantic scores of the blocks' pairs from aligned row blocks (``_flat_block``) on ``workers``
    threads with single-threaded BLAS; ``record(block, values, None)`` per block once its row blocks are done."""
    flat = sets.flatten(1)
    starts = sorted({i - i % FLAT_ROWS for block in blocks for i in block.global_pairs()[0].tolist()})
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        row_blocks = dict(zip(starts, pool.map(lambda start: _flat_block(flat, start), starts), strict=True))
    for block in blocks:
        rows, cols = block.global_pairs()
        values = np.empty(len(rows))
        for start in np.unique(rows - rows % FLAT_ROWS).tolist():
            here = (rows >= start) & (rows < start + FLAT_ROWS)
            values[here] = row_blocks[start][rows[here] - start, cols[here]]
        record(block, values, None)


def _solve_batched(spec: Matcher, options, sets, block, position_norms, with_bounds, workers):
    """Scaled matched scores (and upper bounds) of a block's pairs by a batched approximate matcher; the
    products on ``workers`` threads with single-threaded BLAS."""
    rows, cols = block.global_pairs()
    batch = _block_batch(sets, block, workers)
    single = batch.astype(np.float32, copy=False)
    norms_x, norms_y = (position_norms[index].astype(np.float32) for index in (rows, cols))
    perms = spec.batch(single, norms_x, norms_y, **options)
    values = np.take_along_axis(batch, perms[:, :, None], axis=2).sum(axis=(1, 2), dtype=np.float64)
    if not with_bounds:
        return values, None
    bounds = approximate.upper_bound_batch(single)
    if single is not batch:  # a sum of S float32-rounded scores is off by at most S times the worst rounding
        bounds += batch.shape[1] * np.abs(batch - single).max(axis=(1, 2))
    return values, bounds


def _check_blocks(blocks: Sequence[PairBlock], n_samples: int) -> None:
    for block in blocks:
        if not isinstance(block, PairBlock):
            raise ValueError(f"blocks: expected PairBlock objects, got {type(block).__name__}")
        for span in (block.rows, block.cols):
            if span.step != 1 or span.start < 0 or span.stop > n_samples or len(span) == 0:
                raise ValueError(f"blocks: {block} is not a contiguous block inside 0..{n_samples}")


def matched_scores(
    reps,
    matcher: str = "lapjv",
    *,
    blocks: Sequence[PairBlock] | None = None,
    block_size: int | None = None,
    return_bounds: bool = False,
    progress: bool = False,
    workers: int | None = None,
    **options,
) -> MatchedScores:
    """Matched inner products of all pairs (or of the pairs in ``blocks``) for any kernel to use.

    ``reps``: (N, C, H, W) or (N, T, D) tensor/array (see ``as_sets``). ``matcher``: a name in ``MATCHERS``,
    ``options`` its options. ``workers``: threads for exact matchers (default: all cores). ``progress``: tqdm bar.
    """
    sets = as_sets(reps)
    spec = get_matcher(matcher)
    options = spec.check_options(options)
    workers = default_workers() if workers is None else _check_positive_int("workers", workers)
    n_samples, size = sets.shape[:2]
    flat = spec.name == "identity" and not return_bounds
    if blocks is None:
        if flat and block_size is None:
            block_size = n_samples  # a flat block holds only its (rows, cols) products
        in_flight = workers if spec.pair_solver is not None else 1  # blocks whose products are alive at once
        align = 1 if flat else block_side(size)
        blocks = plan_blocks(n_samples, in_flight * sets.element_size() * size * size, block_size, align)
    _check_blocks(blocks, n_samples)

    sets, exponents = rescale(sets)
    sq_norms = _squared_norms(sets, exponents)
    position_norms = torch.linalg.vector_norm(sets, dim=2).cpu().numpy()
    scores = torch.full((n_samples, n_samples), float("nan"), dtype=torch.float64)
    scores.diagonal().copy_(sq_norms)
    bounds = scores.clone() if return_bounds else None
    total = sum(len(block.local_pairs()[0]) for block in blocks)
    with tqdm(total=total, disable=not progress, desc=f"matching ({spec.name})", unit="pair") as bar:

        def record(block: PairBlock, values, block_bounds) -> None:
            rows, cols = block.global_pairs()
            shift = exponents[rows] + exponents[cols]  # undo the rescaling: exact powers of two
            _write_symmetric(scores, rows, cols, np.ldexp(values, shift))
            if return_bounds:
                _write_symmetric(bounds, rows, cols, np.ldexp(block_bounds, shift))
            bar.update(len(rows))

        if spec.pair_solver is not None:
            _run_exact(spec, sets, blocks, position_norms, workers, record)
        elif flat:
            _run_flat(sets, blocks, workers, record)
        else:  # batched approximate matchers parallelise inside their solvers
            for block in blocks:
                record(
                    block, *_solve_batched(spec, options, sets, block, position_norms, return_bounds, workers)
                )
    return MatchedScores(scores, sq_norms, bounds)


def _write_symmetric(matrix: torch.Tensor, rows: np.ndarray, cols: np.ndarray, values) -> None:
    values = torch.from_numpy(np.asarray(values, dtype=np.float64))
    matrix[rows, cols] = values
    matrix[cols, rows] = values
