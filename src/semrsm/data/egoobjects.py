"""EgoObjects v1 (LVIS-style unified annotation JSON + metadata JSON + images/)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from torch.utils.data import Dataset

from semrsm.data.common import load_rgb, make_sample, require_path, select_subset

SOURCE = "https://github.com/facebookresearch/EgoObjects (images zip, unified annotations and metadata JSON)"


def image_file_name(image: dict[str, Any]) -> str:
    """The image's file name inside images/: `file_name` if given, else the last path component of `url`."""
    if "file_name" in image:
        return str(image["file_name"])
    if "url" in image:
        return PurePosixPath(urlparse(str(image["url"])).path).name
    raise ValueError(f"EgoObjects image entry {image.get('id')!r} has neither 'file_name' nor 'url'")


def _read_json(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return json.load(f)


class EgoObjects(Dataset):
    """EgoObjects images with the set of annotated category ids per image.

    Reads `root/annotations` (e.g. EgoObjectsV1_unified_eval.json: images[], annotations[] with image_id,
    bbox, category_id and/or instance_id) and category names from `root/metadata` (`cat_det_cats`), or from
    the annotation file's own `categories` when metadata=None. `split` keeps the images whose `subset` field
    equals it ("val", "test"). Images without any category annotation are dropped (as for category
    detection). `classes[id]` is the name of category id (empty where an id is unused); label is -1.
    """

    def __init__(
        self,
        root: str | Path,
        annotations: str = "EgoObjectsV1_unified_eval.json",
        metadata: str | None = "EgoObjectsV1_unified_metadata.json",
        images_dir: str = "images",
        split: str | None = None,
        subset: int | None = None,
        seed: int = 0,
        name: str = "egoobjects",
    ) -> None:
        self.root = Path(root)
        self.name = name
        key = "dataset.root"
        data = _read_json(require_path(self.root / annotations, "EgoObjects", SOURCE, key))
        self.images_dir = require_path(self.root / images_dir, "EgoObjects", SOURCE, key)
        if metadata is not None:
            categories = _read_json(require_path(self.root / metadata, "EgoObjects", SOURCE, key))[
                "cat_det_cats"
            ]
        elif "categories" in data:
            categories = data["categories"]
        else:
            raise ValueError(f"EgoObjects: metadata=None but {self.root / annotations} has no 'categories'")
        self.classes = self._class_names(categories)
        objects: dict[Any, set[int]] = defaultdict(set)
        for ann in data["annotations"]:
            if "category_id" in ann:
                category = int(ann["category_id"])
                if not 0 <= category < len(self.classes) or not self.classes[category]:
                    raise ValueError(
                        f"EgoObjects: annotation {ann.get('id')!r} has unknown category {category}"
                    )
                objects[ann["image_id"]].add(category)
        images = [
            img
            for img in sorted(data["images"], key=lambda img: img["id"])
            if objects[img["id"]] and (split is None or img.get("subset") == split)
        ]
        if not images:
            raise ValueError(
                f"EgoObjects: no annotated images in {self.root / annotations} for split={split!r}"
            )
        self._entries = [
            (img["id"], image_file_name(img), tuple(sorted(objects[img["id"]])))
            for img in (images[i] for i in select_subset(len(images), subset, seed))
        ]

    @staticmethod
    def _class_names(categories: list[dict[str, Any]]) -> list[str]:
        ids = [int(c["id"]) for c in categories]
        if not ids or min(ids) < 0:
            raise ValueError(f"EgoObjects: category ids must be non-negative and non-empty, got {ids[:5]}...")
        names = [""] * (max(ids) + 1)
        for category in categories:
            names[int(category["id"])] = str(category["name"])
        return names

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id, file_name, objects = self._entries[index]
        meta = {"image_id": image_id, "path": f"{self.images_dir.name}/{file_name}"}
        return make_sample(load_rgb(self.images_dir / file_name), str(image_id), -1, objects, meta)
