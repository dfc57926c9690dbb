"""Engine: matched scores for all sample pairs, tile by tile.

A tile is a block of rows x a block of columns of the (N, N) pair matrix. Its inner products G[a, b, r, c] =
<x_{i_a, r}, x_{j_b, c}> come from one matrix product on the input's device; the pairs i < j are then solved and
only the matched score sum_r G[r, p(r)] (float64) is kept. Exact matchers run whole tiles (products with
single-threaded BLAS, then the pairs) on a thread pool, so one tile's products overlap another's solving;
approximate ones solve a tile as one batch. Memory is bounded by the tile size, whatever N is.
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

TILE_BYTES = 128 * 2**20  # for the products of all tiles alive at a time
FLAT_CHUNK = 4096  # features per float32 product of the spatio-semantic path (bounds its rounding error)


@dataclass(frozen=True)
class Tile:
    """Rows x columns block of the pair matrix; only its pairs i < j are computed."""

    rows: range
    cols: range

    def local_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices (a, b) into rows and cols of the tile's pairs with rows[a] < cols[b]."""
        a, b = np.meshgrid(np.arange(len(self.rows)), np.arange(len(self.cols)), indexing="ij")
        keep = (np.asarray(self.rows)[a] < np.asarray(self.cols)[b]).ravel()
        return a.ravel()[keep], b.ravel()[keep]


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def tile_side(n_samples: int, bytes_per_pair: int, tile_size: int | None = None) -> int:
    """Samples per tile side: ``tile_size`` checked, or by default about N / 8 and at most what fits 128 MiB of
    products at ``bytes_per_pair``."""
    if tile_size is None:
        fits = max(1, math.isqrt(TILE_BYTES // max(1, bytes_per_pair)))
        tile_size = min(fits, max(4, math.ceil(n_samples / 8)))
    return _check_positive_int("tile_size", tile_size)


def plan_tiles(n_samples: int, bytes_per_pair: int, tile_size: int | None = None) -> list[Tile]:
    """Tiles covering every pair i < j of ``n_samples`` once.

    ``tile_size`` samples per side; by default about N / 8 (diagonal tiles compute their lower half in vain),
    at most what fits 128 MiB at ``bytes_per_pair`` (S * S * itemsize for semantic matching). A launcher may
    spread the tiles over machines.
    """
    size = tile_side(n_samples, bytes_per_pair, tile_size)
    starts = range(0, n_samples, size)
    tiles = [
        Tile(range(a, min(a + size, n_samples)), range(b, min(b + size, n_samples)))
        for a in starts
        for b in starts
        if b >= a
    ]
    return [tile for tile in tiles if len(tile.local_pairs()[0])]


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
        """Combine results of disjoint tile sets of the same samples."""
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


def _squared_norms(sets: torch.Tensor, block: int = 64) -> torch.Tensor:
    """|x_i|^2 (N,) float64, accumulated in float64 without a float64 copy of the whole input."""
    if sets.device.type == "cpu":  # numpy casts in small buffers, several times faster than torch here
        array = sets.numpy()
        return torch.from_numpy(np.einsum("nsc,nsc->n", array, array, dtype=np.float64))
    parts = [sets[i : i + block].double().square().sum(dim=(1, 2)) for i in range(0, len(sets), block)]
    return torch.cat(parts).cpu()


def _tile_products(sets: torch.Tensor, tile: Tile) -> np.ndarray:
    """Inner products of a tile as one (rows * S, cols * S) matrix: block (a, b) holds G[a, b, r, c]."""
    left = sets[tile.rows.start : tile.rows.stop].flatten(0, 1)
    right = sets[tile.cols.start : tile.cols.stop].flatten(0, 1)
    if sets.device.type == "cpu":
        return left.numpy() @ right.numpy().T
    return (left @ right.T).cpu().numpy()


def _as_blocks(products: np.ndarray, tile: Tile) -> np.ndarray:
    """The (rows, cols, S, S) strided view of a tile's products."""
    size = products.shape[0] // len(tile.rows)
    return products.reshape(len(tile.rows), size, len(tile.cols), size).transpose(0, 2, 1, 3)


def _flat_products(sets: torch.Tensor, tile: Tile, chunk: int = FLAT_CHUNK) -> np.ndarray:
    """Unmatched (spatio-semantic) inner products of a tile: matrix products over chunks of the flattened
    features in the input's precision, accumulated in float64."""
    left = sets[tile.rows.start : tile.rows.stop].flatten(1)
    right = sets[tile.cols.start : tile.cols.stop].flatten(1)
    total = torch.zeros(len(left), len(right), dtype=torch.float64, device=sets.device)
    for start in range(0, left.shape[1], chunk):
        total += left[:, start : start + chunk] @ right[:, start : start + chunk].T
    return total.cpu().numpy()


def _exact_tile(spec: Matcher, sets: torch.Tensor, tile: Tile, position_norms: np.ndarray) -> np.ndarray:
    """Matched scores of a tile's pairs: its products, then every pair solved by the exact solver."""
    a_idx, b_idx = tile.local_pairs()
    products = _tile_products(sets, tile)
    norms_x = position_norms[tile.rows.start + a_idx]
    norms_y = position_norms[tile.cols.start + b_idx]
    perms = spec.pair_solver(products, a_idx, b_idx, norms_x, norms_y)
    return matched_values(products, a_idx, b_idx, perms)


def _run_exact(spec, sets, tiles, position_norms, workers, record) -> None:
    """Exact tiles on ``workers`` threads, each computing a tile's products (single-threaded BLAS) and solving
    its pairs, so products and solving of different tiles overlap; ``record(tile, values, values)`` as each
    finishes (an exact score is its own upper bound)."""
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(_exact_tile, spec, sets, tile, position_norms): tile for tile in tiles}
        try:
            for future in as_completed(futures):
                values = future.result()
                record(futures[future], values, values)
        finally:
            pool.shutdown(cancel_futures=True)


def _solve_batched(spec: Matcher, options, sets, tile, position_norms, with_bounds):
    """Matched scores (and upper bounds) of a tile's pairs by a batched approximate matcher."""
    a_idx, b_idx = tile.local_pairs()
    row_norms = position_norms[tile.rows.start : tile.rows.stop]
    col_norms = position_norms[tile.cols.start : tile.cols.stop]
    batch = np.ascontiguousarray(_as_blocks(_tile_products(sets, tile), tile)[a_idx, b_idx])
    single = batch.astype(np.float32, copy=False)
    perms = spec.batch(
        single, row_norms[a_idx].astype(np.float32), col_norms[b_idx].astype(np.float32), **options
    )
    values = np.take_along_axis(batch, perms[:, :, None], axis=2).sum(axis=(1, 2), dtype=np.float64)
    if not with_bounds:
        return values, None
    bounds = approximate.upper_bound_batch(single)
    if single is not batch:  # a sum of S float32-rounded scores is off by at most S times the worst rounding
        bounds += batch.shape[1] * np.abs(batch - single).max(axis=(1, 2))
    return values, bounds


def _check_tiles(tiles: Sequence[Tile], n_samples: int) -> None:
    for tile in tiles:
        if not isinstance(tile, Tile):
            raise ValueError(f"tiles: expected Tile objects, got {type(tile).__name__}")
        for block in (tile.rows, tile.cols):
            if block.step != 1 or block.start < 0 or block.stop > n_samples or len(block) == 0:
                raise ValueError(f"tiles: {tile} is not a contiguous block inside 0..{n_samples}")


def matched_scores(
    reps,
    matcher: str = "lapjv",
    *,
    tiles: Sequence[Tile] | None = None,
    tile_size: int | None = None,
    return_bounds: bool = False,
    progress: bool = False,
    workers: int | None = None,
    **options,
) -> MatchedScores:
    """Matched inner products of all pairs (or of the pairs in ``tiles``) for any kernel to use.

    ``reps``: (N, C, H, W) or (N, T, D) tensor/array (see ``as_sets``). ``matcher``: a name in ``MATCHERS``,
    ``options`` its options. ``workers``: threads for exact matchers (default: all cores). ``progress``: tqdm bar.
    """
    sets = as_sets(reps)
    spec = get_matcher(matcher)
    options = spec.check_options(options)
    workers = default_workers() if workers is None else _check_positive_int("workers", workers)
    n_samples, size = sets.shape[:2]
    flat = spec.name == "identity" and not return_bounds
    if tiles is None:
        if flat and tile_size is None:
            tile_size = n_samples  # a flat tile holds only its (rows, cols) products
        in_flight = workers if spec.pair_solver is not None else 1  # tiles whose products are alive at once
        tiles = plan_tiles(n_samples, in_flight * sets.element_size() * size * size, tile_size)
    _check_tiles(tiles, n_samples)

    sq_norms = _squared_norms(sets)
    position_norms = torch.linalg.vector_norm(sets, dim=2).cpu().numpy()
    scores = torch.full((n_samples, n_samples), float("nan"), dtype=torch.float64)
    scores.diagonal().copy_(sq_norms)
    bounds = scores.clone() if return_bounds else None
    total = sum(len(tile.local_pairs()[0]) for tile in tiles)
    with tqdm(total=total, disable=not progress, desc=f"matching ({spec.name})", unit="pair") as bar:

        def record(tile: Tile, values, tile_bounds) -> None:
            a_idx, b_idx = tile.local_pairs()
            rows, cols = np.asarray(tile.rows)[a_idx], np.asarray(tile.cols)[b_idx]
            _write_symmetric(scores, rows, cols, values)
            if return_bounds:
                _write_symmetric(bounds, rows, cols, tile_bounds)
            bar.update(len(a_idx))

        if spec.pair_solver is not None:
            _run_exact(spec, sets, tiles, position_norms, workers, record)
        elif flat:
            for tile in tiles:
                a_idx, b_idx = tile.local_pairs()
                record(tile, _flat_products(sets, tile)[a_idx, b_idx], None)
        else:  # batched approximate matchers parallelise inside their solvers
            for tile in tiles:
                record(tile, *_solve_batched(spec, options, sets, tile, position_norms, return_bounds))
    return MatchedScores(scores, sq_norms, bounds)


def _write_symmetric(matrix: torch.Tensor, rows: np.ndarray, cols: np.ndarray, values) -> None:
    values = torch.from_numpy(np.asarray(values, dtype=np.float64))
    matrix[rows, cols] = values
    matrix[cols, rows] = values
