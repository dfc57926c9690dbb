"""Benchmark (not a test): Lightning feature extraction into the store vs a bare ``torch.no_grad()`` forward loop
over the same data loader. Target: ratio <= 1.10.

    python -m semrsm.bench.extraction [--backbone resnet18] [--images 200] [--batch-size 32] [--repeats 5]

The ratio is that of the medians over ``repeats`` alternating runs of each; the range of the ratios of adjacent
pairs is printed beside it, since on a shared 2-core machine one pair can be 5 % off in either direction.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import torch
from torch.utils.data import Dataset

from semrsm.pipeline.extraction import extract_features, make_dataloader


def bare_forward_seconds(
    dataset: Dataset, backbone: torch.nn.Module, batch_size: int, num_workers: int
) -> float:
    """Seconds for one pass of the backbone over ``dataset`` (same loader and preprocessing as extraction)."""
    loader = make_dataloader(
        dataset, backbone.preprocess.transform(), batch_size=batch_size, num_workers=num_workers
    )
    backbone.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for batch in loader:
            backbone(batch["image"])
    return time.perf_counter() - start


def extraction_seconds(
    dataset: Dataset, backbone: torch.nn.Module, batch_size: int, num_workers: int, dtype: str
) -> float:
    """Seconds for ``extract_features`` of ``dataset`` into a fresh temporary store (Lightning + store; the
    temporary store's removal afterwards is not timed)."""
    with tempfile.TemporaryDirectory() as store:
        start = time.perf_counter()
        extract_features(
            dataset,
            backbone,
            store,
            {"benchmark": True},
            dtype=dtype,
            batch_size=batch_size,
            num_workers=num_workers,
            progress_bar=False,
        )
        seconds = time.perf_counter() - start
    return seconds


def benchmark_extraction(
    dataset: Dataset,
    backbone: torch.nn.Module,
    batch_size: int = 32,
    num_workers: int = 0,
    dtype: str = "float32",
    repeats: int = 5,
) -> dict[str, Any]:
    """Time a bare forward loop and ``extract_features`` (into a fresh temporary store) on the same data,
    ``repeats`` times each, alternating (after one warm-up batch).

    Returns the median seconds of both, ``ratio`` = extraction / bare of the medians and ``pair_ratios``, the
    ratio of each adjacent (bare, extraction) pair."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    warmup = make_dataloader(
        dataset, backbone.preprocess.transform(), indices=range(min(len(dataset), batch_size))
    )
    with torch.no_grad():
        backbone.eval()(next(iter(warmup))["image"])
    bare, lightning = [], []
    for _ in range(repeats):
        bare.append(bare_forward_seconds(dataset, backbone, batch_size, num_workers))
        lightning.append(extraction_seconds(dataset, backbone, batch_size, num_workers, dtype))
    bare_s, extract_s = statistics.median(bare), statistics.median(lightning)
    return {
        "samples": len(dataset),
        "bare_s": bare_s,
        "extract_s": extract_s,
        "ratio": extract_s / bare_s,
        "pair_ratios": [after / before for before, after in zip(bare, lightning, strict=True)],
    }


def main(argv: list[str] | None = None) -> None:
    from semrsm.data import synthetic_tinyimagenet
    from semrsm.models import build_backbone

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18", help="backbone name (random init)")
    parser.add_argument("--images", type=int, default=200, help="synthetic validation images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs of each")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        per_class = -(-args.images // 10)
        dataset = synthetic_tinyimagenet(root, split="val", train_per_class=1, val_per_class=per_class)
        torch.manual_seed(0)
        backbone = build_backbone(args.backbone, pretrained=False)
        result = benchmark_extraction(
            dataset, backbone, args.batch_size, args.num_workers, args.dtype, args.repeats
        )
    pairs = result["pair_ratios"]
    print(
        f"extraction {args.backbone} x {result['samples']} images: bare forward {result['bare_s']:.2f} s, "
        f"Lightning + store {result['extract_s']:.2f} s (medians of {args.repeats}), "
        f"ratio {result['ratio']:.3f} (target <= 1.10; adjacent pairs {min(pairs):.3f} to {max(pairs):.3f})"
    )


if __name__ == "__main__":
    main()
