"""The embedded default: synthetic datasets written once in the real formats, then read by the real loaders.

`ensure_synthetic(root, fmt, seed, **sizes)` generates a dataset under `root/<fmt>-seed<seed>-<key>` (the
key hashes format, seed, sizes and generator version), atomically, and reuses it afterwards. The factories
below are what the Hydra configs instantiate: generate if needed, then load with the real loader.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path

from semrsm.data.cityscapes import Cityscapes
from semrsm.data.egoobjects import EgoObjects
from semrsm.data.synthetic.formats import write_cityscapes, write_egoobjects, write_tinyimagenet
from semrsm.data.tinyimagenet import TinyImageNet

GENERATOR_VERSION = 1
WRITERS = {"tinyimagenet": write_tinyimagenet, "egoobjects": write_egoobjects, "cityscapes": write_cityscapes}


def ensure_synthetic(root: str | Path, fmt: str = "tinyimagenet", seed: int = 0, **sizes: int) -> Path:
    """Path of the synthetic `fmt` dataset for (seed, sizes) under `root`, generating it first if absent.

    `sizes` are the keyword arguments of the format's writer (defaults filled in). Generation writes into a
    temporary folder renamed into place, so concurrent callers and killed runs never see a partial dataset.
    """
    if fmt not in WRITERS:
        raise ValueError(f"unknown synthetic format {fmt!r}; valid: {sorted(WRITERS)}")
    writer = WRITERS[fmt]
    params = {
        name: p.default
        for name, p in inspect.signature(writer).parameters.items()
        if name not in ("out", "seed")
    }
    unknown = sorted(set(sizes) - set(params))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for synthetic {fmt}; valid: {sorted(params)}")
    params.update(sizes)
    spec = json.dumps(
        {"fmt": fmt, "seed": seed, "params": params, "version": GENERATOR_VERSION}, sort_keys=True
    )
    target = Path(root) / f"{fmt}-seed{seed}-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        writer(tmp / "data", seed, **params)
        (tmp / "data" / "synthetic.json").write_text(spec)
        os.rename(tmp / "data", target)
    except OSError:
        if not target.exists():  # a concurrent caller finishing first is fine; anything else is not
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def synthetic_tinyimagenet(
    root: str | Path,
    split: str = "train",
    subset: int | None = None,
    seed: int = 0,
    generator_seed: int = 0,
    num_classes: int = 10,
    train_per_class: int = 100,
    val_per_class: int = 20,
    image_size: int = 64,
    name: str = "synthetic",
) -> TinyImageNet:
    """Synthetic single-object classification data in tiny-imagenet-200 format, loaded by TinyImageNet."""
    path = ensure_synthetic(
        root,
        "tinyimagenet",
        generator_seed,
        num_classes=num_classes,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        image_size=image_size,
    )
    return TinyImageNet(path, split=split, subset=subset, seed=seed, name=name)


def synthetic_egoobjects(
    root: str | Path,
    subset: int | None = None,
    seed: int = 0,
    generator_seed: int = 0,
    num_classes: int = 10,
    num_images: int = 200,
    image_size: int = 128,
    min_objects: int = 1,
    max_objects: int = 5,
    name: str = "synthetic_scenes",
) -> EgoObjects:
    """Synthetic multi-object scenes in EgoObjects format, loaded by EgoObjects."""
    path = ensure_synthetic(
        root,
        "egoobjects",
        generator_seed,
        num_classes=num_classes,
        num_images=num_images,
        image_size=image_size,
        min_objects=min_objects,
        max_objects=max_objects,
    )
    return EgoObjects(path, subset=subset, seed=seed, name=name)


def synthetic_cityscapes(
    root: str | Path,
    subset: int | None = None,
    seed: int = 0,
    generator_seed: int = 0,
    num_images: int = 100,
    width: int = 256,
    height: int = 128,
    min_objects: int = 2,
    max_objects: int = 6,
    objects_from: str = "polygons",
    name: str = "synthetic_cityscapes",
    square: bool = True,
) -> Cityscapes:
    """Synthetic street scenes in Cityscapes format (val split), loaded by Cityscapes (``square``: its centre
    square and the objects visible there)."""
    path = ensure_synthetic(
        root,
        "cityscapes",
        generator_seed,
        num_images=num_images,
        width=width,
        height=height,
        min_objects=min_objects,
        max_objects=max_objects,
    )
    return Cityscapes(
        path, split="val", subset=subset, seed=seed, objects_from=objects_from, name=name, square=square
    )
