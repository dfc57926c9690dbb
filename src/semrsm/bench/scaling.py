"""Strong scaling of one layer's semantic RSM through the Lightning tile prediction (``match_layer``).

The same tiles on devices=1 vs devices=2 CPU processes (DDP over gloo, started by torchrun), one matching
thread per rank, checked bit for bit; then a cost model fitted on this machine, checked against those runs and
extrapolated to the paper's EgoObjects x DINOv2-giant retrieval RSM. Target: matching speed-up >= 1.7 at 2.

    python -m semrsm.bench.scaling [--n 200] [--size 196] [--channels 512] [--tiles 2] [--devices 1 2]
    python -m semrsm.bench.scaling --quick      # N=48, S=49, C=128: start-up dominates

Each configuration runs as ``python -m torch.distributed.run --standalone --nproc_per_node=<devices>`` on a
feature store written here (smooth synthetic features, ``semrsm.similarity.workloads``), every rank with
OMP_NUM_THREADS=1 and ``match_layer(..., threads=1)``. Two times per configuration:

- whole: the launcher's wall time, start to exit (interpreters, imports, rendezvous, matching, assembly);
- matching: on rank zero, between a barrier of all ranks just before ``match_layer`` (features open, numba
  kernels loaded by a warm-up) and one just after it returns (every tile predicted, written, assembled).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from semrsm.bench.cost_model import CostModel, fit_power_law, product_flop, relative_error
from semrsm.pipeline.feature_store import FeatureSet, ShardedFeatureWriter
from semrsm.pipeline.rsm_cache import RSMSpec, cache_entry, load_scores
from semrsm.pipeline.tiles import pair_count
from semrsm.similarity import get_matcher
from semrsm.similarity.engine import block_products, block_side
from semrsm.similarity.exact import matched_values
from semrsm.similarity.inputs import as_sets
from semrsm.similarity.workloads import smooth_relu_features

LAYER = "features"
MATCHER = "lapjv"  # the default exact matcher; the cosine RSM follows from its matched scores
SOLVER_SIZES = (49, 196, 400)
QUICK = {"n": 48, "size": 49, "channels": 128, "tiles": 2, "solver_sizes": (16, 49, 100)}

# The paper's retrieval RSM the model is extrapolated to (assumptions printed with the prediction).
PAPER_N = 5000
# DINOv2 ViT-g/14 at 224 x 224 (conf/backbone/dinov2_giant.yaml): 16 x 16 patch tokens
PAPER_SIZE = (224 // 14) ** 2
PAPER_CHANNELS = 1536
PAPER_NODES = (1, 4, 16)
PAPER_CORES = (2, 32)
GPU_TFLOPS = 50.0


def write_features(root: Path, n: int, size: int, channels: int, seed: int = 0) -> FeatureSet:
    """A finished feature store entry under ``root`` with one layer of ``n`` smooth post-ReLU-like maps
    (channels, sqrt(size), sqrt(size))."""
    side = math.isqrt(size)
    if side * side != size:
        raise ValueError(f"size must be a square number of positions (side x side), got size={size}")
    reps = smooth_relu_features(n, channels, side, seed=seed).numpy()
    config = {"benchmark": "scaling", "n": n, "size": size, "channels": channels, "seed": seed}
    writer = ShardedFeatureWriter(root, config, n, {LAYER: "NCHW"})
    samples = [{"id": f"s{i}", "label": 0, "objects": [], "meta": {}} for i in range(n)]
    writer.add(np.arange(n), {LAYER: reps}, samples)
    return writer.finalize()


def _rank_job(job: dict[str, Any]) -> None:
    """One rank (started by torchrun): ``match_layer`` between two barriers; rank zero writes the wall seconds
    and every rank's CPU seconds in between."""
    import torch.distributed as dist

    from semrsm.pipeline.rsm_predict import match_layer
    from semrsm.similarity import matched_scores

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    dist.init_process_group("gloo")  # from torchrun's environment; Lightning's DDP strategy reuses it
    rank, world = dist.get_rank(), dist.get_world_size()
    features = FeatureSet(job["features"])
    entry = cache_entry(RSMSpec(job["cache"], MATCHER, progress=False), features, LAYER, True)
    matched_scores(np.array(features.layer(LAYER)[:2]), MATCHER, workers=1)  # numba kernels, BLAS, threads
    options = {"accelerator": "cpu", "devices": world, "strategy": "ddp" if world > 1 else "auto"}
    dist.barrier()
    start, cpu_start = time.perf_counter(), time.process_time()
    match_layer(entry, features, job["tiles"], options, force=True, threads=job["threads"])
    dist.barrier()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    cpu_seconds = [0.0] * world
    dist.all_gather_object(cpu_seconds, cpu)
    if rank == 0:
        Path(job["out"]).write_text(json.dumps({"matching_s": seconds, "rank_cpu_s": cpu_seconds}))
    dist.destroy_process_group()


def run_devices(
    features: FeatureSet, cache_dir: Path, devices: int, tiles: int, threads: int = 1, timeout: float = 3600
) -> dict[str, Any]:
    """One layer's matched scores of ``features`` through ``match_layer`` on ``devices`` torchrun processes
    (``threads`` matching threads each) into the RSM cache at ``cache_dir``; returns the whole and the
    matching-phase seconds, the ranks' CPU seconds in that phase, the 1-minute load average after it and the
    scores. RuntimeError with the ranks'
    output if the launch fails."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / "rank0.json"
    job = {"features": str(features.path), "cache": str(cache_dir), "tiles": tiles, "threads": threads}
    job["out"] = str(out)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={devices}",
        "-m",
        "semrsm.bench.scaling",
        "--rank-job",
        json.dumps(job),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    whole = time.perf_counter() - start
    if done.returncode != 0 or not out.is_file():
        output = (done.stdout + done.stderr)[-4000:]
        raise RuntimeError(f"scaling bench: devices={devices} failed (exit {done.returncode}):\n{output}")
    matched = load_scores(cache_entry(RSMSpec(cache_dir, MATCHER), features, LAYER, True).path, len(features))
    if matched is None:
        raise RuntimeError(f"scaling bench: devices={devices} left no readable RSM entry in {cache_dir}")
    rank0 = json.loads(out.read_text())
    return {
        "whole_s": whole,
        "matching_s": rank0["matching_s"],
        "rank_cpu_s": rank0["rank_cpu_s"],
        "load": os.getloadavg()[0],
        "scores": matched.scores.numpy(),
    }


def gemm_gflops(size: int, channels: int, repeats: int = 5) -> float:
    """GFLOP/s of the engine's products on one core: one aligned block product (``block_products``, single-
    threaded BLAS) of smooth features, the median of ``repeats`` after a warm-up."""
    side = block_side(size)
    sets = as_sets(smooth_relu_features(2 * side, channels, math.isqrt(size), seed=1))
    times = []
    with threadpool_limits(1, user_api="blas"):
        block_products(sets, 0, 1, side)
        for _ in range(repeats):
            start = time.perf_counter()
            block_products(sets, 0, 1, side)
            times.append(time.perf_counter() - start)
    return side * side * product_flop(size, channels) / statistics.median(times) / 1e9


def solver_seconds(size: int, channels: int, min_pairs: int = 72, repeats: int = 3) -> float:
    """Seconds per pair of the exact solver (assignment + matched sum: the engine's work after the products)
    on one core at ``size`` positions: pairs of aligned blocks of smooth features, at least ``min_pairs``,
    median of ``repeats``."""
    spec = get_matcher(MATCHER)
    side = block_side(size)
    a_idx, b_idx = np.divmod(np.arange(side * side), side)
    problems = []
    for seed in range(max(1, math.ceil(min_pairs / (side * side)))):
        sets = as_sets(smooth_relu_features(2 * side, channels, math.isqrt(size), seed=100 + seed))
        with threadpool_limits(1, user_api="blas"):
            products = block_products(sets, 0, 1, side)
        norms = torch.linalg.vector_norm(sets, dim=2).numpy()
        problems.append((products, norms[a_idx], norms[side + b_idx]))
    spec.pair_solver(problems[0][0], a_idx[:1], b_idx[:1], problems[0][1][:1], problems[0][2][:1])  # load
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for products, norms_x, norms_y in problems:
            matched_values(products, a_idx, b_idx, spec.pair_solver(products, a_idx, b_idx, norms_x, norms_y))
        times.append((time.perf_counter() - start) / (len(problems) * side * side))
    return statistics.median(times)


def calibrate(channels: int, gemm_size: int, sizes: tuple[int, ...]) -> dict[str, Any]:
    """The model's per-core rates on this machine: GEMM GFLOP/s at (``gemm_size``, ``channels``) and at the
    paper's shape (PAPER_SIZE, PAPER_CHANNELS), solver seconds per pair at each of ``sizes`` and the power law
    fitted to them."""
    gflops = gemm_gflops(gemm_size, channels)
    paper_gflops = gemm_gflops(PAPER_SIZE, PAPER_CHANNELS, repeats=3)
    measured = {size: solver_seconds(size, channels) for size in sizes}
    coef, exponent = fit_power_law(list(measured), list(measured.values()))
    return {
        "gflops": gflops,
        "paper_gflops": paper_gflops,
        "solver_s": measured,
        "solver_coef": coef,
        "solver_exponent": exponent,
    }


def scaling_benchmark(
    n: int = 200,
    size: int = 196,
    channels: int = 512,
    tiles: int = 2,
    devices: tuple[int, ...] = (1, 2),
    solver_sizes: tuple[int, ...] = SOLVER_SIZES,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """Time one layer's semantic matching (lapjv) of ``n`` samples (``size`` positions x ``channels``) through
    ``match_layer`` as ``tiles`` tiles on each of ``devices`` process counts (one thread each), and fit the
    cost model; returns the runs (whole and matching seconds), the speed-ups over the first device count,
    whether every run's scores equal the first's bit for bit (and the first's scores), and the calibration and
    model."""
    if not devices or min(devices) < 1:
        raise ValueError(f"devices must list positive process counts, got {devices}")
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        features = write_features(Path(tmp) / "features", n, size, channels)
        runs = {d: run_devices(features, Path(tmp) / f"cache-{d}", d, tiles) for d in devices}
    calibration = calibrate(channels, size, tuple(solver_sizes))
    startup = statistics.mean(run["whole_s"] - run["matching_s"] for run in runs.values())
    model = CostModel(
        calibration["gflops"], calibration["solver_coef"], calibration["solver_exponent"], startup
    )
    first = runs[devices[0]]
    result = {
        "n": n,
        "size": size,
        "channels": channels,
        "tiles": tiles,
        "pairs": pair_count(n),
        "runs": {},
        "bit_identical": all(np.array_equal(run["scores"], first["scores"]) for run in runs.values()),
        "scores": first["scores"],
        "calibration": calibration,
        "model": model,
    }
    for d, run in runs.items():
        result["runs"][d] = {
            "whole_s": run["whole_s"],
            "matching_s": run["matching_s"],
            "rank_cpu_s": run["rank_cpu_s"],
            "load": run["load"],
            "speedup_whole": first["whole_s"] / run["whole_s"],
            "speedup_matching": first["matching_s"] / run["matching_s"],
            "predicted_matching_s": model.matching_seconds(n, size, channels, cores=d),
            "predicted_whole_s": model.total_seconds(n, size, channels, cores=d),
        }
    return result


def paper_predictions(model: CostModel, n: int = PAPER_N) -> list[dict[str, Any]]:
    """The model's total seconds for the paper's retrieval RSM (``n`` samples, DINOv2-giant: S=256, C=1536) on
    each of PAPER_NODES x PAPER_CORES, on CPU cores alone and with the products on a GPU per node (``model``'s
    GEMM rate should be the one measured at that shape)."""
    rows = []
    for nodes in PAPER_NODES:
        for cores in PAPER_CORES:
            cpu = model.total_seconds(n, PAPER_SIZE, PAPER_CHANNELS, nodes, cores)
            gpu = model.total_seconds(n, PAPER_SIZE, PAPER_CHANNELS, nodes, cores, GPU_TFLOPS)
            rows.append({"nodes": nodes, "cores": cores, "cpu_s": cpu, "gpu_s": gpu})
    return rows


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _error(predicted: float, measured: float) -> str:
    error = 100 * relative_error(predicted, measured)
    return f"predicted {predicted:.3g} s vs measured {measured:.3g} s ({error:+.0f} %)"


def report(result: dict[str, Any], paper_n: int = PAPER_N) -> None:
    """Print the runs, speed-ups, the calibration, the model's check and its prediction for the paper."""
    n, size, channels, runs = result["n"], result["size"], result["channels"], result["runs"]
    print(
        f"\nstrong scaling, match_layer (Lightning tile prediction), {MATCHER} (exact, cosine RSM), smooth "
        f"features N={n} ({result['pairs']} pairs), S={size}, C={channels}, {result['tiles']} tiles, "
        "1 thread per rank:"
    )
    first = next(iter(runs))  # the reference of the speed-ups
    for d, run in runs.items():
        busy = ", ".join(f"{100 * cpu / run['matching_s']:.0f}" for cpu in run["rank_cpu_s"])
        print(
            f"  devices={d}: whole {run['whole_s']:.1f} s, matching {run['matching_s']:.1f} s "
            f"({1e3 * sum(run['rank_cpu_s']) / result['pairs']:.2f} ms CPU/pair; ranks on a core {busy} % of "
            f"it; load {run['load']:.1f} after)"
        )
    for d, run in runs.items():
        if d != first:
            target = " (target >= 1.7)" if (first, d) == (1, 2) else ""
            print(
                f"  speed-up devices={d} vs {first}: matching x{run['speedup_matching']:.2f}{target}, "
                f"whole x{run['speedup_whole']:.2f}"
            )
    if len(runs) > 1:
        print(f"  scores bit-identical across device counts (np.array_equal): {result['bit_identical']}")

    cal, model = result["calibration"], result["model"]
    solver = ", ".join(f"S={s} {1e3 * t:.3f}" for s, t in cal["solver_s"].items())
    print("\ncost model, per pair = products + solver, total = start-up + N(N-1)/2 * per pair / (k * c):")
    print(
        f"  products: {cal['gflops']:.1f} GFLOP/s on one core (aligned block products at S={size}, "
        f"C={channels})"
    )
    print(
        f"  solver ms/pair on one core: {solver} -> fit {1e6 * model.solver_coef:.3g} us * "
        f"S^{model.solver_exponent:.2f}"
    )
    print(f"  start-up: {model.startup_s:.1f} s (mean of whole - matching over the runs)")
    print(
        f"  per pair at S={size}, C={channels}: "
        f"products {1e3 * model.product_seconds(size, channels):.3f} ms "
        f"+ solver {1e3 * model.solver_seconds(size):.3f} ms"
    )
    for d, run in runs.items():
        print(
            f"  devices={d}: matching {_error(run['predicted_matching_s'], run['matching_s'])}; "
            f"whole {_error(run['predicted_whole_s'], run['whole_s'])}"
        )

    model = dataclasses.replace(model, gflops=cal["paper_gflops"])
    print(
        f"\nprediction: EgoObjects x DINOv2-giant retrieval RSM, one layer, exact ({MATCHER}); assumptions:"
    )
    for line in (
        f"N={paper_n} images ({pair_count(paper_n):.3g} pairs): the paper's N is not stated in /work/shared "
        "(the paper suite takes every annotated image of the eval split); time grows as N^2",
        f"S={PAPER_SIZE} (224 px input / patch 14 = 16 x 16 tokens), C={PAPER_CHANNELS} (ViT-g/14)",
        f"products at this machine's per-core rate at that shape ({model.gflops:.1f} GFLOP/s), solver law "
        f"extrapolated to S={PAPER_SIZE}, linear in cores, tiles balanced, start-up {model.startup_s:.0f} s",
        f"GPU: products at {GPU_TFLOPS:.0f} TFLOP/s fp32 on one GPU per node, solver on the node's c cores, "
        "not overlapped",
    ):
        print(f"  - {line}")
    print(
        f"  per pair: products {1e3 * model.product_seconds(PAPER_SIZE, PAPER_CHANNELS):.2f} ms on a core "
        f"({1e6 * model.product_seconds(PAPER_SIZE, PAPER_CHANNELS, GPU_TFLOPS):.1f} us on the GPU), "
        f"solver {1e3 * model.solver_seconds(PAPER_SIZE):.2f} ms on a core"
    )
    print(f"  {'nodes k':>7} {'cores c':>7} {'CPU only':>10} {'GPU products':>13}")
    for row in paper_predictions(model, paper_n):
        cpu, gpu = _duration(row["cpu_s"]), _duration(row["gpu_s"])
        print(f"  {row['nodes']:>7} {row['cores']:>7} {cpu:>10} {gpu:>13}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="samples (default 200; --quick 48)")
    parser.add_argument("--size", type=int, default=None, help="spatial positions S, a square (default 196)")
    parser.add_argument("--channels", type=int, default=None, help="channels C (default 512; --quick 128)")
    parser.add_argument(
        "--tiles",
        type=int,
        default=None,
        help="tiles of the layer, the same for every device count (default 2)",
    )
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--paper-n", type=int, default=PAPER_N, help="N assumed for the paper's prediction")
    parser.add_argument("--quick", action="store_true", help="a small size (N=48, S=49, C=128): seconds")
    parser.add_argument("--rank-job", help=argparse.SUPPRESS)  # one torchrun rank (internal)
    args = parser.parse_args(argv)
    if args.rank_job is not None:
        _rank_job(json.loads(args.rank_job))
        return
    sizes = QUICK if args.quick else {"n": 200, "size": 196, "channels": 512, "tiles": 2}
    n, size, channels, tiles = (
        sizes[key] if getattr(args, key) is None else getattr(args, key)
        for key in ("n", "size", "channels", "tiles")
    )
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a busy machine slows wall times "
        "and lowers speed-ups)"
    )
    if args.quick:
        print("--quick: a smoke run; at this size start-up and per-tile overheads hide the scaling")
    result = scaling_benchmark(
        n,
        size,
        channels,
        tiles,
        tuple(args.devices),
        solver_sizes=sizes.get("solver_sizes", SOLVER_SIZES),
    )
    report(result, args.paper_n)


if __name__ == "__main__":
    main()
