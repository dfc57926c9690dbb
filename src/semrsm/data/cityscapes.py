"""Cityscapes (leftImg8bit + gtFine) with the set of present instance categories per image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from semrsm.data.common import load_rgb, make_sample, require_path, select_subset

SOURCE = (
    "https://www.cityscapes-dataset.com/downloads/ (leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip)"
)


class CityscapesLabel(NamedTuple):
    name: str
    id: int
    has_instances: bool
    ignore_in_eval: bool


# The official Cityscapes label table (name, id, hasInstances, ignoreInEval).
LABELS = tuple(
    CityscapesLabel(*row)
    for row in [
        ("unlabeled", 0, False, True),
        ("ego vehicle", 1, False, True),
        ("rectification border", 2, False, True),
        ("out of roi", 3, False, True),
        ("static", 4, False, True),
        ("dynamic", 5, False, True),
        ("ground", 6, False, True),
        ("road", 7, False, False),
        ("sidewalk", 8, False, False),
        ("parking", 9, False, True),
        ("rail track", 10, False, True),
        ("building", 11, False, False),
        ("wall", 12, False, False),
        ("fence", 13, False, False),
        ("guard rail", 14, False, True),
        ("bridge", 15, False, True),
        ("tunnel", 16, False, True),
        ("pole", 17, False, False),
        ("polegroup", 18, False, True),
        ("traffic light", 19, False, False),
        ("traffic sign", 20, False, False),
        ("vegetation", 21, False, False),
        ("terrain", 22, False, False),
        ("sky", 23, False, False),
        ("person", 24, True, False),
        ("rider", 25, True, False),
        ("car", 26, True, False),
        ("truck", 27, True, False),
        ("bus", 28, True, False),
        ("caravan", 29, True, True),
        ("trailer", 30, True, True),
        ("train", 31, True, False),
        ("motorcycle", 32, True, False),
        ("bicycle", 33, True, False),
        ("license plate", -1, False, True),
    ]
)
LABEL_BY_NAME = {label.name: label for label in LABELS}
# The classes of the instance-level benchmark: instance classes that are evaluated.
INSTANCE_CATEGORIES = tuple(
    label.name for label in LABELS if label.has_instances and not label.ignore_in_eval
)
SPLITS = ("train", "val", "test")
OBJECT_SOURCES = ("polygons", "instance_ids")


def polygon_label_id(name: str) -> int:
    """Label id of a polygon label; "<name>group" (a crowd of instances, e.g. "cargroup") maps to <name>."""
    if name in LABEL_BY_NAME:
        return LABEL_BY_NAME[name].id
    if name.endswith("group") and name[: -len("group")] in LABEL_BY_NAME:
        return LABEL_BY_NAME[name[: -len("group")]].id
    raise ValueError(f"unknown Cityscapes label {name!r}")


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels, x1/y1 exclusive
UNDRAWN = 255  # canvas value where no polygon is drawn (label ids are 0..33)


def centre_square(width: int, height: int) -> Box:
    """The centred square of side min(width, height): what a square-input backbone sees of the frame."""
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    return (x0, y0, x0 + side, y0 + side)


def label_ids_in_polygons(path: Path, box: Box | None = None) -> set[int]:
    """Label ids of the non-deleted objects in a *_gtFine_polygons.json file; with ``box``, only those visible
    in it: the polygons are drawn in file order (later ones occlude earlier ones, as Cityscapes' own
    json2labelImg does) on a canvas of the box, and the ids left on it are returned."""
    with path.open() as f:
        objects = [obj for obj in json.load(f)["objects"] if not obj.get("deleted")]
    if box is None:
        return {polygon_label_id(obj["label"]) for obj in objects}
    canvas = Image.new("L", (box[2] - box[0], box[3] - box[1]), UNDRAWN)
    draw = ImageDraw.Draw(canvas)
    for obj in objects:
        points = [(x - box[0], y - box[1]) for x, y in obj["polygon"]]
        if len(points) >= 2:
            draw.polygon(points, fill=polygon_label_id(obj["label"]))
    return {int(v) for v in np.unique(np.asarray(canvas))} - {UNDRAWN}


def label_ids_in_instance_map(path: Path, box: Box | None = None) -> set[int]:
    """Label ids in a *_instanceIds.png (instances are label_id * 1000 + k, everything else the label id),
    within ``box`` when given."""
    with Image.open(path) as image:
        values = np.unique(np.asarray(image if box is None else image.crop(box), dtype=np.int64))
    return {int(v) // 1000 if v >= 1000 else int(v) for v in values}


class Cityscapes(Dataset):
    """Cityscapes images of one split under `root` (holding leftImg8bit/ and gtFine/).

    objects = ids (official label ids, e.g. car = 26) of the `categories` present in the image, read from the
    gtFine polygons JSON (`objects_from="polygons"`, crowd "...group" polygons count for their class) or the
    instanceIds PNG (`objects_from="instance_ids"`). Default categories: the eight evaluated instance classes.
    `classes[id]` is the label name of id 0..33; label is -1.

    `square=True` (default): the image is the frame's centre square (side = frame height, `meta["crop_box"]`)
    and the objects are those visible in it, so that a backbone's square input and the labels agree (the 2:1
    frames would otherwise lose half their width to the backbone's centre crop while its objects still count).
    `square=False`: the whole frame and all its objects, for backbones that take the full frame.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        subset: int | None = None,
        seed: int = 0,
        objects_from: str = "polygons",
        categories: list[str] | None = None,
        name: str = "cityscapes",
        square: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"Cityscapes split must be one of {SPLITS}, got {split!r}")
        if objects_from not in OBJECT_SOURCES:
            raise ValueError(f"Cityscapes objects_from must be one of {OBJECT_SOURCES}, got {objects_from!r}")
        unknown = [c for c in categories or () if c not in LABEL_BY_NAME]
        if unknown:
            raise ValueError(f"unknown Cityscapes categories {unknown}; valid: {sorted(LABEL_BY_NAME)}")
        self.root = Path(root)
        self.name = name
        self.split = split
        self.square = square
        self.classes = [label.name for label in sorted(LABELS, key=lambda lb: lb.id) if label.id >= 0]
        wanted = {LABEL_BY_NAME[c].id for c in (categories or INSTANCE_CATEGORIES)}
        key = "dataset.root"
        image_dir = require_path(self.root / "leftImg8bit" / split, "Cityscapes", SOURCE, key)
        images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
        if not images:
            raise FileNotFoundError(
                f"Cityscapes: no */*_leftImg8bit.png under {image_dir}; get them from {SOURCE}"
            )
        self._entries = []
        for path in (images[i] for i in select_subset(len(images), subset, seed)):
            stem = path.name[: -len("_leftImg8bit.png")]
            gt_dir = self.root / "gtFine" / split / path.parent.name
            box = None
            if square:
                with Image.open(path) as frame:
                    box = centre_square(*frame.size)
            if objects_from == "polygons":
                gt = require_path(gt_dir / f"{stem}_gtFine_polygons.json", "Cityscapes", SOURCE, key)
                present = label_ids_in_polygons(gt, box)
            else:
                gt = require_path(gt_dir / f"{stem}_gtFine_instanceIds.png", "Cityscapes", SOURCE, key)
                present = label_ids_in_instance_map(gt, box)
            self._entries.append((path, stem, box, tuple(sorted(present & wanted))))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, stem, box, objects = self._entries[index]
        meta = {"city": path.parent.name, "path": str(path.relative_to(self.root))}
        image = load_rgb(path)
        if box is not None:
            image = image.crop(box)
            meta["crop_box"] = list(box)
        return make_sample(image, stem, -1, objects, meta)
