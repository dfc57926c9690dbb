"""Cost model of one layer's exact semantic RSM, for sizing a run before starting it (pure arithmetic).

Every pair i < j of N samples (S positions x C channels each) costs its products, 2 * S^2 * C flop at a GEMM
rate, plus its assignment problem, a power law ``solver_coef * S ** solver_exponent`` fitted to solver times
measured at a few S (``fit_power_law``). The N(N-1)/2 pairs spread evenly over k nodes x c cores, after a
fixed start-up (processes, imports, rendezvous):

    total = start-up + N(N-1)/2 * (products + solver) / (k * c)

With the products on one GPU per node instead (``gpu_tflops``), each node computes its N(N-1)/2 / k pairs'
products on its GPU and solves them on its c cores, the two not overlapped (an upper bound):

    total = start-up + N(N-1)/2 / k * (products on the GPU + solver / c)

The model ignores the rest of the work (the features copied into each rank, the rescaling, the part files, the
products recomputed for tiles smaller than an aligned block) and assumes perfectly balanced tiles and cores
that scale linearly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from semrsm.pipeline.tiles import pair_count


def product_flop(size: int, channels: int) -> float:
    """Flop of one pair's inner products: an (S, C) x (C, S) matrix product, 2 * S^2 * C."""
    return 2.0 * size * size * channels


def fit_power_law(sizes: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """(coef, exponent) of ``seconds = coef * size ** exponent``, least squares on the logarithms; at least
    two distinct positive sizes and positive times, else ValueError."""
    if len(sizes) != len(seconds) or len(set(sizes)) < 2:
        raise ValueError(f"need times at two or more distinct sizes, got sizes={list(sizes)}")
    if min(sizes) <= 0 or min(seconds) <= 0:
        raise ValueError(f"sizes and times must be positive, got {list(sizes)} and {list(seconds)}")
    xs, ys = [math.log(s) for s in sizes], [math.log(t) for t in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    exponent = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return math.exp(mean_y - exponent * mean_x), exponent


def relative_error(predicted: float, measured: float) -> float:
    """(predicted - measured) / measured: positive when the model overestimates."""
    return (predicted - measured) / measured


@dataclass(frozen=True)
class CostModel:
    """Per-core rates measured on one machine: ``gflops`` (the products' GEMM rate on one core, GFLOP/s), the
    solver's power law (seconds per pair = ``solver_coef * S ** solver_exponent`` on one core) and the fixed
    ``startup_s`` of a run (seconds)."""

    gflops: float
    solver_coef: float
    solver_exponent: float
    startup_s: float = 0.0

    def __post_init__(self) -> None:
        if not (self.gflops > 0 and self.solver_coef > 0 and self.startup_s >= 0):
            raise ValueError(
                f"gflops and solver_coef must be positive and startup_s >= 0, got gflops={self.gflops}, "
                f"solver_coef={self.solver_coef}, startup_s={self.startup_s}"
            )

    def product_seconds(self, size: int, channels: int, gpu_tflops: float | None = None) -> float:
        """Seconds of one pair's products on one core, or on a GPU at ``gpu_tflops`` TFLOP/s."""
        rate = self.gflops * 1e9 if gpu_tflops is None else gpu_tflops * 1e12
        return product_flop(size, channels) / rate

    def solver_seconds(self, size: int) -> float:
        """Seconds of one pair's assignment problem on one core."""
        return self.solver_coef * size**self.solver_exponent

    def pair_seconds(self, size: int, channels: int) -> float:
        """Seconds of one pair on one core: products + solver."""
        return self.product_seconds(size, channels) + self.solver_seconds(size)

    def matching_seconds(
        self,
        num_samples: int,
        size: int,
        channels: int,
        nodes: int = 1,
        cores: int = 1,
        gpu_tflops: float | None = None,
    ) -> float:
        """Seconds of the matching alone (no start-up) of ``num_samples`` samples on ``nodes`` x ``cores``
        cores, with the products on one GPU per node when ``gpu_tflops`` is given."""
        if nodes < 1 or cores < 1:
            raise ValueError(f"nodes and cores must be >= 1, got nodes={nodes}, cores={cores}")
        pairs = pair_count(num_samples)
        if gpu_tflops is None:
            return pairs * self.pair_seconds(size, channels) / (nodes * cores)
        per_pair = self.product_seconds(size, channels, gpu_tflops) + self.solver_seconds(size) / cores
        return pairs / nodes * per_pair

    def total_seconds(
        self, num_samples: int, size: int, channels: int, *spread: Any, **options: Any
    ) -> float:
        """Start-up + ``matching_seconds`` (same arguments: nodes, cores, gpu_tflops)."""
        return self.startup_s + self.matching_seconds(num_samples, size, channels, *spread, **options)
