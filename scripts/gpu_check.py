"""GPU check (``make bench-gpu``): the semantic RSM with its products on a CUDA device against the CPU.

Two levels, each timed against the CPU in the same run and compared value by value:
1. the engine: ``matched_scores`` of smooth ReLU maps on the CPU and on ``cuda:0`` (products on the GPU, the exact
   solver on the CPU threads, overlapping one pair block's products with another's solving);
2. the pipeline: one layer's matching predicted by the Lightning Trainer with ``accelerator=gpu, devices=1``
   (the module's features on the GPU) against ``accelerator=cpu``, from a feature store entry in a temporary
   directory.
The values agree to float32 rounding, not bit for bit (the GPU sums products in another order); the check fails
(exit 1) when the largest relative difference of a matched score exceeds ``--rtol``. Without a CUDA device it says
so and exits with status 2.

    python scripts/gpu_check.py [--n 200] [--side 14] [--channels 512] [--matcher lapjv]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from semrsm.pipeline.feature_store import ShardedFeatureWriter
from semrsm.pipeline.rsm_cache import RSMSpec, cache_entry
from semrsm.pipeline.rsm_predict import match_layer
from semrsm.similarity import matched_scores
from semrsm.similarity.workloads import smooth_relu_features


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| / max(|a|, tiny) over the pairs (off the diagonal, which both copy from the norms)."""
    a, b = a.double().numpy(), b.double().numpy()
    off = ~np.eye(len(a), dtype=bool)
    return float((np.abs(a - b)[off] / np.maximum(np.abs(a)[off], 1e-30)).max())


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def check_engine(reps: torch.Tensor, matcher: str, device: str = "cuda") -> tuple[float, float, float]:
    """(CPU seconds, ``device`` seconds, largest relative difference) of ``matched_scores`` on both devices."""
    cpu, cpu_s = _timed(lambda: matched_scores(reps, matcher))
    matched_scores(reps[:4].to(device), matcher)  # CUDA context and kernels warmed up outside the timing
    gpu, gpu_s = _timed(lambda: matched_scores(reps.to(device), matcher))
    return cpu_s, gpu_s, _relative_difference(cpu.scores, gpu.scores)


def check_pipeline(
    reps: torch.Tensor, matcher: str, root: Path, accelerator: str = "gpu"
) -> tuple[float, float, float]:
    """(CPU seconds, ``accelerator`` seconds, largest relative difference) of one layer predicted by the
    Trainer on the CPU and with ``accelerator``."""
    n = len(reps)
    writer = ShardedFeatureWriter(root / "features", {"gpu_check": 1}, n, {"maps": "NCHW"})
    samples = [{"id": f"s{i}", "label": 0, "objects": [], "meta": {}} for i in range(n)]
    writer.add(np.arange(n), {"maps": reps.numpy()}, samples)
    features = writer.finalize()
    results = []
    for name, choice in (("cpu", "cpu"), ("other", accelerator)):
        entry = cache_entry(RSMSpec(root / name, matcher), features, "maps", True)
        results.append(_timed(match_layer, entry, features, None, {"accelerator": choice}))
    (cpu, cpu_s), (gpu, gpu_s) = results
    return cpu_s, gpu_s, _relative_difference(cpu.scores, gpu.scores)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="samples (default 200)")
    parser.add_argument("--side", type=int, default=14, help="spatial side: S = side^2 (default 14: S=196)")
    parser.add_argument("--channels", type=int, default=512, help="channels C (default 512)")
    parser.add_argument("--matcher", default="lapjv", help="matcher (default lapjv)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="largest relative difference allowed")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (run this on a machine with a GPU)")
        return 2
    reps = smooth_relu_features(args.n, args.channels, args.side)
    print(
        f"{torch.cuda.get_device_name(0)}; N={args.n}, S={args.side**2}, C={args.channels}, {args.matcher}, "
        f"{len(os.sched_getaffinity(0))} CPU threads"
    )
    failed = False
    with tempfile.TemporaryDirectory() as root:
        for level, check in (
            ("engine", lambda: check_engine(reps, args.matcher)),
            ("pipeline (Lightning Trainer)", lambda: check_pipeline(reps, args.matcher, Path(root))),
        ):
            cpu_s, gpu_s, difference = check()
            ok = difference <= args.rtol
            failed |= not ok
            print(
                f"{level}: CPU {cpu_s:.2f} s, GPU products {gpu_s:.2f} s (x{cpu_s / gpu_s:.2f}); largest relative "
                f"difference {difference:.2e} {'<=' if ok else '>'} {args.rtol:g}: {'ok' if ok else 'FAILED'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
