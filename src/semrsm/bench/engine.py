"""Benchmark of the similarity engine: ratios against a per-pair scipy reference run in the same process, the cost
of tiling-independent products, and the matcher table (time per pair, matched-score ratio to the optimum) per
spatial size.

    python -m semrsm.bench.engine [--n 48] [--pairs 4] [--sizes 49 196]
"""

import argparse
import math
import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from semrsm.similarity import PairBlock, get_matcher, plan_blocks, semantic_rsm
from semrsm.similarity.engine import _exact_block, block_side
from semrsm.similarity.exact import matched_values
from semrsm.similarity.inputs import as_sets
from semrsm.similarity.matcher_quality import best_of, matcher_table
from semrsm.similarity.workloads import FEATURES, RESNET_STAGES, smooth_relu_features


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
        serial_s, serial_cpu, reference = best_of(reference_rsm, sets)
    with ProcessPoolExecutor(2, initializer=_init_worker, initargs=(sets,)) as pool:
        reference_rsm(sets[:4], pool)  # start the workers outside the timing
        pool_s, _, pooled = best_of(reference_rsm, sets, pool)
    result = {
        "pairs": pairs,
        "serial_pairs_per_s": pairs / serial_s,
        "serial_cpu_ms_per_pair": 1e3 * serial_cpu / pairs,
        "pool_pairs_per_s": pairs / pool_s,
        "max_abs_diff": float(np.abs(pooled - reference).max()),
    }
    for matcher in matchers:
        semantic_rsm(reps[:4], matcher=matcher)  # warm-up (thread pool, BLAS, numba cache)
        engine_s, engine_cpu, engine = best_of(
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


def _whole_block_scores(spec, sets: torch.Tensor, block: PairBlock, position_norms: np.ndarray) -> np.ndarray:
    """The previous engine's exact path, as a reference: a block's products as ONE matrix product (a pair's
    values then depend on the block's shape), then its pairs solved."""
    a_idx, b_idx = block.local_pairs()
    left = sets[block.rows.start : block.rows.stop].flatten(0, 1).numpy()
    products = left @ sets[block.cols.start : block.cols.stop].flatten(0, 1).numpy().T
    rows, cols = block.global_pairs()
    perms = spec.pair_solver(products, a_idx, b_idx, position_norms[rows], position_norms[cols])
    return matched_values(products, a_idx, b_idx, perms)


def tiling_independence_cost(
    n: int = 48,
    shapes: Iterable[tuple[int, int]] = ((16, 512), (49, 512), (196, 512), (784, 128)),
    repeats: int = 3,
) -> list:
    """CPU ms per pair of the engine's exact blocks (products of aligned sample blocks: results independent of
    the tiling) against the same blocks computed as one product each (the previous engine), one thread each,
    the same lapjv solver, median of ``repeats`` alternating runs; rows (S, C, reference ms, engine ms, ratio
    reference/engine: above 1 = the engine is faster) per (S, C) of ``shapes``."""
    spec = get_matcher("lapjv")
    rows = []
    for size, channels in shapes:
        sets = as_sets(smooth_relu_features(n, channels, math.isqrt(size), seed=size))
        norms = torch.linalg.vector_norm(sets, dim=2).numpy()
        blocks = plan_blocks(n, sets.element_size() * size * size, align=block_side(size))
        pairs = n * (n - 1) // 2
        times = {"reference": [], "engine": []}
        with threadpool_limits(1, user_api="blas"):
            for _ in range(repeats):
                for name, solve in (("reference", _whole_block_scores), ("engine", _exact_block)):
                    start = time.process_time()
                    for block in blocks:
                        solve(spec, sets, block, norms)
                    times[name].append(1e3 * (time.process_time() - start) / pairs)
        reference, engine = (float(np.median(times[name])) for name in ("reference", "engine"))
        rows.append((size, channels, reference, engine, reference / engine))
    return rows


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
        f"\nexact blocks, one thread, N={args.n}: engine (aligned block products, tiling-independent) vs one "
        "product per block (the previous engine), CPU ms per pair:"
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
