"""The sample contract shared by every dataset, batching, subset selection and missing-data errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


def make_sample(
    image: Image.Image,
    sample_id: str,
    label: int = -1,
    objects: Sequence[int] = (),
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One sample dict of the contract: RGB image, unique id, label (-1: none), sorted object ids, meta."""
    return {
        "image": image.convert("RGB") if image.mode != "RGB" else image,
        "id": sample_id,
        "label": int(label),
        "objects": tuple(sorted({int(o) for o in objects})),
        "meta": dict(meta or {}),
    }


def load_rgb(path: Path) -> Image.Image:
    """Read an image file fully into memory as RGB."""
    with Image.open(path) as image:
        return image.convert("RGB")


def collate_samples(
    samples: Sequence[dict[str, Any]], transform: Callable[[Image.Image], torch.Tensor]
) -> dict:
    """Batch samples: apply `transform` (PIL -> (3, H, W) tensor) to every image and stack.

    Use as ``DataLoader(ds, collate_fn=functools.partial(collate_samples, transform=t))``.
    """
    if not samples:
        raise ValueError("collate_samples: empty list of samples")
    return {
        "images": torch.stack([transform(s["image"]) for s in samples]),
        "ids": [s["id"] for s in samples],
        "labels": torch.tensor([s["label"] for s in samples], dtype=torch.long),
        "objects": [s["objects"] for s in samples],
        "meta": [s["meta"] for s in samples],
    }


def select_subset(n: int, subset: int | None, seed: int, option: str = "subset") -> list[int]:
    """Indices of a seeded random subset of size `subset` of range(n), in ascending order (all when None).

    `option` names the user-facing argument in the error message.
    """
    if subset is None:
        return list(range(n))
    if isinstance(subset, bool) or not isinstance(subset, int) or not 1 <= subset <= n:
        raise ValueError(f"{option} must be None or an integer in [1, {n}], got {subset!r}")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n, size=subset, replace=False))


def require_path(path: Path, dataset: str, source: str, config_key: str) -> Path:
    """`path` if it exists, else FileNotFoundError saying where to get the data and which key to set."""
    if not path.exists():
        raise FileNotFoundError(
            f"{dataset}: missing {path}. Get the dataset from {source} and point `{config_key}` "
            f"(or `paths.data_dir`) at it."
        )
    return path
