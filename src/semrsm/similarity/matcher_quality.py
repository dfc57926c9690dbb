"""Runtime and quality of the matchers, measured on batches of pairs: seconds per pair and matched score over
the exact optimum (``matcher_table``), and per pair the raw matcher's CPU time, score, the identity's score, the
optimum and an upper bound (``matcher_pairs``, the matchers stage's table). ``matcher_table`` is reusable on real
features."""

import math
import time
from collections.abc import Mapping

import numba
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from semrsm.similarity.approximate import upper_bound_batch
from semrsm.similarity.inputs import as_sets
from semrsm.similarity.matchers import MATCHERS, get_matcher


def best_of(function, *args, repeats: int = 1, **kwargs):
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
            seconds, _, perms = best_of(spec.batch, scores, norms_x, norms_y, **options)
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
