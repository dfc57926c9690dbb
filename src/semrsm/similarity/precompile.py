"""Compile every numba kernel once into numba's on-disk cache (``make install`` runs this).

Without it, the first process that uses a matcher spends 5-8 s per kernel family compiling it (about 25 s for all
of them on a 2-core machine), and processes started at once before the cache exists all compile the same kernels.
The kernels are reached through the public API on tiny inputs of the dtypes the pipeline uses, so the cached
specialisations are the ones real runs load.

    python -m semrsm.similarity.precompile
"""

import time

import numpy as np

from semrsm.similarity.api import match, semantic_rsm
from semrsm.similarity.approximate import upper_bound_batch
from semrsm.similarity.matchers import MATCHERS


def precompile() -> dict[str, float]:
    """Run every matcher (tiled RSM path and single-pair path) and both upper bounds once; seconds per step."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((4, 9, 8)).astype(np.float32)
    seconds = {}
    for name in MATCHERS:
        start = time.perf_counter()
        semantic_rsm(features, matcher=name)
        match(features[0], features[1], matcher=name)
        seconds[name] = time.perf_counter() - start
    scores = np.einsum("prc,psc->prs", features[:2], features[2:])
    for method in ("dual_descent", "auction"):
        start = time.perf_counter()
        upper_bound_batch(scores, method)
        seconds[f"upper_bound:{method}"] = time.perf_counter() - start
    return seconds


def main() -> None:
    start = time.perf_counter()
    seconds = precompile()
    slowest = max(seconds, key=seconds.get)
    print(
        f"numba kernels ready in {time.perf_counter() - start:.1f} s "
        f"({len(seconds)} entry points; slowest {slowest}: {seconds[slowest]:.1f} s)"
    )


if __name__ == "__main__":
    main()
