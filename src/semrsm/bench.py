"""Benchmark of the similarity engine (``make bench``): ratios against a per-pair scipy reference run in the same
process, and the matcher table (time per pair, matched-score ratio to the optimum) per spatial size.

Run as ``python -m semrsm.bench``. ``matcher_table`` is reusable on real features.
"""

import argparse
import math
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor

import numba
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from semrsm.similarity import MATCHERS, Tile, get_matcher, plan_tiles, semantic_rsm
from semrsm.similarity.approximate import upper_bound_batch
from semrsm.similarity.engine import _exact_tile, block_side
from semrsm.similarity.exact import matched_values
from semrsm.similarity.inputs import as_sets

# ResNet18-like (spatial size, channels) per stage: S = H * W.
RESNET_STAGES = {49: 512, 196: 256, 784: 128, 3136: 64}


def smooth_relu_features(n: int, channels: int, side: int, seed: int = 0, rank: int = 32) -> torch.Tensor:
    """Post-ReLU-like feature maps (n, channels, side, side): ReLU of a low-rank channel mix of smooth random
    fields plus noise, about half of the values zero, float32."""
    generator = torch.Generator().manual_seed(seed)
    fields = torch.randn(n, rank, side, side, generator=generator)
    width = max(1.0, side / 8)
    taps = torch.arange(-3 * math.ceil(width), 3 * math.ceil(width) + 1, dtype=torch.float32)
    blur = torch.exp(-(taps**2) / (2 * width**2))
    blur = (blur / blur.sum()).repeat(rank, 1, 1)
    pad = len(taps) // 2
    fields = torch.nn.functional.conv2d(fields, blur[:, :, None, :], padding=(0, pad), groups=rank)
    fields = torch.nn.functional.conv2d(fields, blur[:, :, :, None], padding=(pad, 0), groups=rank)
    fields = fields / fields.std()
    mix = torch.randn(channels, rank, generator=generator) / math.sqrt(rank)
    features = torch.einsum("cr,nrhw->nchw", mix, fields) + 0.5 * torch.randn(
        n, channels, side, side, generator=generator
    )
    return torch.relu(features).contiguous()


def _reference_scores(sets: np.ndarray, pairs: Iterable[tuple[int, int]]) -> list[float]:
    """The reference: per pair a numpy inner-product matrix and scipy's linear_sum_assignment."""
    values = []
    for i, j in pairs:
        products = sets[i] @ sets[j].T
        rows, cols = linear_sum_assignment(products, maximize=True)
        values.append(float(products[rows, cols].sum(dtype=np.float64)))
    return values


def _cosine_from_pairs(sets: np.ndarray, pairs: list[tuple[int, int]], values: list[float]) -> np.ndarray:
    norms = np.sqrt(np.square(sets.astype(np.float64)).sum(axis=(1, 2)))
    rsm = np.eye(len(sets))
    for (i, j), value in zip(pairs, values, strict=True):
        rsm[i, j] = rsm[j, i] = value / (norms[i] * norms[j])
    return rsm


_WORKER_SETS: np.ndarray | None = None


def _init_worker(sets: np.ndarray) -> None:
    global _WORKER_SETS
    _WORKER_SETS = sets
    threadpool_limits(1)


def _worker_scores(pairs: list[tuple[int, int]]) -> list[float]:
    return _reference_scores(_WORKER_SETS, pairs)


def reference_rsm(sets: np.ndarray, pool: ProcessPoolExecutor | None = None) -> np.ndarray:
    """Cosine semantic RSM of (N, S, C) sets by the per-pair reference, serially or on a process pool."""
    pairs = [(i, j) for i in range(len(sets)) for j in range(i + 1, len(sets))]
    if pool is None:
        values = _reference_scores(sets, pairs)
    else:
        chunks = [pairs[k : k + 16] for k in range(0, len(pairs), 16)]
        values = [value for chunk in pool.map(_worker_scores, chunks) for value in chunk]
    return _cosine_from_pairs(sets, pairs, values)


def _timed(function, *args, repeats: int = 1, **kwargs):
    """Wall and CPU seconds (all threads of this process) of the fastest of ``repeats`` calls, and the last
    result. On a shared machine CPU time is the steadier measure of work; wall time shows the parallelism."""
    best, best_cpu, result = math.inf, math.inf, None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function(*args, **kwargs)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if wall < best:
            best, best_cpu = wall, cpu
    return best, best_cpu, result


def iid_relu_features(n: int, channels: int, side: int, seed: int = 0) -> torch.Tensor:
    """ReLU of i.i.d. standard normal maps (n, channels, side, side): no spatial structure, easier LAPs."""
    generator = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, channels, side, side, generator=generator))


FEATURES = {"smooth": smooth_relu_features, "iid": iid_relu_features}


def engine_vs_reference(
    n: int = 48,
    size: int = 196,
    channels: int = 512,
    features: str = "smooth",
    matchers: tuple[str, ...] = ("lapjv", "hungarian"),
) -> dict:
    """Time the engine's cosine semantic RSM (per exact matcher) against the serial and the 2-process per-pair
    reference on the same ``features`` (a name in FEATURES); returns pairs/s, wall-time speedups, CPU ms per pair
    and CPU-time ratios (serial reference CPU / engine CPU), and the max abs difference to the reference.

    The serial reference runs with one BLAS thread: it is serial, and multi-threaded BLAS on its small per-pair
    products only burns CPU on a busy machine (up to 10x slower there)."""
    side = math.isqrt(size)
    reps = FEATURES[features](n, channels, side, seed=1)
    sets = as_sets(reps).numpy()
    pairs = n * (n - 1) // 2
    with threadpool_limits(1, user_api="blas"):
        serial_s, serial_cpu, reference = _timed(reference_rsm, sets)
    with ProcessPoolExecutor(2, initializer=_init_worker, initargs=(sets,)) as pool:
        reference_rsm(sets[:4], pool)  # start the workers outside the timing
        pool_s, _, pooled = _timed(reference_rsm, sets, pool)
    result = {
        "pairs": pairs,
        "serial_pairs_per_s": pairs / serial_s,
        "serial_cpu_ms_per_pair": 1e3 * serial_cpu / pairs,
        "pool_pairs_per_s": pairs / pool_s,
        "max_abs_diff": float(np.abs(pooled - reference).max()),
    }
    for matcher in matchers:
        semantic_rsm(reps[:4], matcher=matcher)  # warm-up (thread pool, BLAS, numba cache)
        engine_s, engine_cpu, engine = _timed(
            lambda m=matcher: semantic_rsm(reps, matcher=m).numpy(), repeats=2
        )
        result[matcher] = {
            "pairs_per_s": pairs / engine_s,
            "speedup_vs_serial": serial_s / engine_s,
            "speedup_vs_pool": pool_s / engine_s,
            "cpu_ms_per_pair": 1e3 * engine_cpu / pairs,
            "cpu_ratio_vs_serial": serial_cpu / engine_cpu,
        }
        result["max_abs_diff"] = max(result["max_abs_diff"], float(np.abs(engine - reference).max()))
    return result


def _whole_tile_scores(spec, sets: torch.Tensor, tile: Tile, position_norms: np.ndarray) -> np.ndarray:
    """The previous engine's exact path, as a reference: a tile's products as ONE matrix product (a pair's
    values then depend on the tile's shape), then its pairs solved."""
    a_idx, b_idx = tile.local_pairs()
    left = sets[tile.rows.start : tile.rows.stop].flatten(0, 1).numpy()
    products = left @ sets[tile.cols.start : tile.cols.stop].flatten(0, 1).numpy().T
    rows, cols = tile.global_pairs()
    perms = spec.pair_solver(products, a_idx, b_idx, position_norms[rows], position_norms[cols])
    return matched_values(products, a_idx, b_idx, perms)


def tiling_independence_cost(
    n: int = 48,
    shapes: Iterable[tuple[int, int]] = ((16, 512), (49, 512), (196, 512), (784, 128)),
    repeats: int = 3,
) -> list:
    """CPU ms per pair of the engine's exact tiles (products of aligned sample blocks: results independent of
    the tiling) against the same tiles computed as one product each (the previous engine), one thread each,
    the same lapjv solver, median of ``repeats`` alternating runs; rows (S, C, reference ms, engine ms, ratio
    reference/engine: above 1 = the engine is faster) per (S, C) of ``shapes``."""
    spec = get_matcher("lapjv")
    rows = []
    for size, channels in shapes:
        sets = as_sets(smooth_relu_features(n, channels, math.isqrt(size), seed=size))
        norms = torch.linalg.vector_norm(sets, dim=2).numpy()
        tiles = plan_tiles(n, sets.element_size() * size * size, align=block_side(size))
        pairs = n * (n - 1) // 2
        times = {"reference": [], "engine": []}
        with threadpool_limits(1, user_api="blas"):
            for _ in range(repeats):
                for name, solve in (("reference", _whole_tile_scores), ("engine", _exact_tile)):
                    start = time.process_time()
                    for tile in tiles:
                        solve(spec, sets, tile, norms)
                    times[name].append(1e3 * (time.process_time() - start) / pairs)
        reference, engine = (float(np.median(times[name])) for name in ("reference", "engine"))
        rows.append((size, channels, reference, engine, reference / engine))
    return rows


def _pair_batch(features: torch.Tensor, n_pairs: int):
    sets = as_sets(features).numpy()
    left, right = sets[0 : 2 * n_pairs : 2], sets[1 : 2 * n_pairs : 2]
    scores = np.ascontiguousarray(np.matmul(left, right.transpose(0, 2, 1)), dtype=np.float32)
    return scores, np.linalg.norm(left, axis=2), np.linalg.norm(right, axis=2)


def matcher_table(
    features_by_size: Mapping[int, torch.Tensor],
    matchers: Mapping[str, Mapping] | None = None,
    n_pairs: int = 4,
    reference: str = "lapjv",
) -> list[dict]:
    """Per spatial size and matcher: seconds per pair and matched score / optimum (mean, min over pairs).

    ``features_by_size``: S -> (>= 2 * n_pairs, C, H, W) or (N, T, D) features; pairs are (0, 1), (2, 3), ...
    ``matchers``: name -> options (default: every registered matcher with default options). Also reports the
    certificate's slack: the upper bound's ratio to the optimum.
    """
    matchers = {name: {} for name in MATCHERS} if matchers is None else matchers
    rows = []
    for size, features in features_by_size.items():
        scores, norms_x, norms_y = _pair_batch(features, n_pairs)
        best_perms = get_matcher(reference).batch(scores, norms_x, norms_y)
        optimum = np.take_along_axis(scores, best_perms[:, :, None], 2).sum(axis=(1, 2), dtype=np.float64)
        bound_ratio = float(np.mean(upper_bound_batch(scores) / optimum))
        for name, options in matchers.items():
            spec = get_matcher(name)
            options = spec.check_options(options)
            spec.batch(scores[:1], norms_x[:1], norms_y[:1], **options)  # compile / warm up
            seconds, _, perms = _timed(spec.batch, scores, norms_x, norms_y, **options)
            ratio = (
                np.take_along_axis(scores, perms[:, :, None], 2).sum(axis=(1, 2), dtype=np.float64) / optimum
            )
            rows.append(
                {
                    "size": size,
                    "matcher": name,
                    "options": dict(options),
                    "ms_per_pair": 1e3 * seconds / len(scores),
                    "ratio_mean": float(ratio.mean()),
                    "ratio_min": float(ratio.min()),
                    "bound_ratio": bound_ratio,
                }
            )
    return rows


def raw_solver(name: str):
    """The batched solver of matcher ``name`` without the fallback to the identity (what is measured)."""
    batch = get_matcher(name).batch
    return getattr(batch, "__wrapped__", batch)


def matcher_pairs(
    features: torch.Tensor,
    matchers: Mapping[str, Mapping],
    n_pairs: int,
    reference: str = "lapjv",
    repeats: int = 1,
) -> list[dict]:
    """Per matcher and pair (0, 1), (2, 3), ... of ``features``: CPU milliseconds of the raw matcher on that
    one pair (the least of ``repeats`` calls, after a warm-up), its matched score, the identity's score and
    the optimum of ``reference``, the shift-invariant quality (m - m_identity) / (m_opt - m_identity) (NaN
    where the identity is optimal) and ``fallback``: whether the registered matcher would keep the identity
    instead. The certificate's ``bound``: an upper bound of the optimum."""
    scores, norms_x, norms_y = _pair_batch(features, n_pairs)
    optimum = _matched(scores, get_matcher(reference).batch(scores, norms_x, norms_y))
    identity = np.trace(scores, axis1=1, axis2=2, dtype=np.float64)
    bound = upper_bound_batch(scores)
    gap = optimum - identity
    rows = []
    threads = numba.get_num_threads()
    # one thread for BLAS and numba while timing: idle worker threads spinning after a parallel region would
    # otherwise count as CPU time of whichever matcher ran last (about 8 ms per pair, measured)
    with threadpool_limits(1):
        numba.set_num_threads(1)
        try:
            for name, options in matchers.items():
                rows += _timed_pairs(name, options, scores, norms_x, norms_y, repeats)
        finally:
            numba.set_num_threads(threads)
    for row in rows:
        pair = row["pair"]
        row |= {
            "identity_score": float(identity[pair]),
            "optimum": float(optimum[pair]),
            "bound": float(bound[pair]),
            "quality": (row["score"] - identity[pair]) / gap[pair] if gap[pair] > 0 else math.nan,
            "fallback": bool(row["score"] < identity[pair]),
        }
    return rows


def _timed_pairs(name, options, scores, norms_x, norms_y, repeats: int) -> list[dict]:
    """Per pair: the raw matcher's least CPU time over ``repeats`` calls on that pair alone, and its score."""
    options = get_matcher(name).check_options(options)
    solve = raw_solver(name)
    solve(scores[:1], norms_x[:1], norms_y[:1], **options)  # compile / warm up
    rows = []
    for pair in range(len(scores)):
        args = (scores[pair : pair + 1], norms_x[pair : pair + 1], norms_y[pair : pair + 1])
        cpu = math.inf
        for _ in range(repeats):
            start = time.process_time()
            perms = solve(*args, **options)
            cpu = min(cpu, time.process_time() - start)
        rows.append(
            {
                "matcher": name,
                "options": dict(options),
                "pair": pair,
                "cpu_ms": 1e3 * cpu,
                "score": float(_matched(args[0], perms)[0]),
            }
        )
    return rows


def _matched(scores: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Matched inner product of each pair of a batch under ``perms``, float64."""
    return np.take_along_axis(scores, perms[:, :, None], 2).sum(axis=(1, 2), dtype=np.float64)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="samples for the engine-vs-reference comparison")
    parser.add_argument("--pairs", type=int, default=4, help="pairs per spatial size in the matcher table")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(RESNET_STAGES), choices=list(RESNET_STAGES)
    )
    args = parser.parse_args(argv)

    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a busy machine slows wall times)"
    )
    for kind in FEATURES:
        result = engine_vs_reference(n=args.n, features=kind)
        print(
            f"\nengine vs per-pair reference (numpy products + scipy), {kind} ReLU features, N={args.n}, S=196, C=512:"
        )
        print(
            f"  reference: serial {result['serial_pairs_per_s']:.0f} pairs/s "
            f"({result['serial_cpu_ms_per_pair']:.2f} ms CPU/pair), 2-process pool {result['pool_pairs_per_s']:.0f} "
            f"pairs/s ({result['pairs']} pairs, cosine)"
        )
        for matcher in ("lapjv", "hungarian"):
            row = result[matcher]
            print(
                f"  engine ({matcher}): {row['pairs_per_s']:.0f} pairs/s = x{row['speedup_vs_serial']:.2f} serial, "
                f"x{row['speedup_vs_pool']:.2f} pool (wall); {row['cpu_ms_per_pair']:.2f} ms CPU/pair = "
                f"x{row['cpu_ratio_vs_serial']:.2f} less CPU than serial, "
                f"~x{2 * row['cpu_ratio_vs_serial']:.1f} on 2 idle cores (CPU-time estimate, perfect scaling)"
            )
        print(f"  max |engine or pool - serial reference| = {result['max_abs_diff']:.2e}")
    print(
        f"\nexact tiles, one thread, N={args.n}: engine (aligned block products, tiling-independent) vs one "
        "product per tile (the previous engine), CPU ms per pair:"
    )
    for size, channels, reference, engine, ratio in tiling_independence_cost(args.n):
        print(
            f"  S={size:>4} C={channels:>3}: previous {reference:.3f}, engine {engine:.3f}, ratio x{ratio:.3f}"
        )
    features = {
        size: smooth_relu_features(2 * args.pairs, RESNET_STAGES[size], math.isqrt(size), seed=size)
        for size in args.sizes
    }
    print(f"\nmatcher table ({args.pairs} pairs per size; ratio = matched score / optimum):")
    print(f"  {'S':>5} {'matcher':<16} {'ms/pair':>10} {'ratio':>8} {'min':>8} {'bound':>7}")
    for row in matcher_table(features, n_pairs=args.pairs):
        print(
            f"  {row['size']:>5} {row['matcher']:<16} {row['ms_per_pair']:>10.2f} {row['ratio_mean']:>8.4f} "
            f"{row['ratio_min']:>8.4f} {row['bound_ratio']:>7.3f}"
        )


if __name__ == "__main__":
    main()
