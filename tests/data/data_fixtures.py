"""Writers of tiny fixture trees in the real on-disk formats of every dataset (a few solid-colour images each)."""

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image


def solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def write_tiny_imagenet(root: Path) -> Path:
    """3 classes (listed unsorted in wnids.txt) x 2 train images; 4 val images; one train boxes file."""
    wnids = ["n03000003", "n01000001", "n02000002"]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text(
        "n01000001\tgoldfish, Carassius auratus\nn02000002\ttabby, tabby cat\nn03000003\tespresso\nn09\tunused\n"
    )
    for k, wnid in enumerate(sorted(wnids)):
        for i in range(2):
            solid(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", (80 * k, 0, 0), (8, 8))
    (root / "train" / "n01000001" / "n01000001_boxes.txt").write_text("n01000001_1.JPEG\t1\t2\t5\t6\n")
    val = [("val_0.JPEG", "n03000003"), ("val_1.JPEG", "n01000001"), ("val_2.JPEG", "n02000002"),
           ("val_3.JPEG", "n03000003")]  # fmt: skip
    for name, _ in val:
        solid(root / "val" / "images" / name, (0, 90, 0), (8, 8))
    (root / "val" / "val_annotations.txt").write_text("".join(f"{n}\t{w}\t0\t1\t7\t6\n" for n, w in val))
    return root


def write_egoobjects(root: Path) -> Path:
    """4 images: #1 two categories (one twice), #2 one category + an instance-only box, #3 instance-only (dropped),
    #4 category 7 in subset test. Category ids are sparse (3, 5, 7)."""
    images = [
        {"id": 1, "url": "https://example.org/data/frame_a.jpg", "height": 12, "width": 16, "subset": "val"},
        {"id": 2, "url": "frame_b.jpg", "height": 12, "width": 16, "subset": "val"},
        {"id": 3, "url": "frame_c.jpg", "height": 12, "width": 16, "subset": "val"},
        {"id": 4, "file_name": "frame_d.jpg", "height": 12, "width": 16, "subset": "test"},
    ]
    annotations = [
        {"id": 1, "image_id": 1, "bbox": [0, 0, 4, 4], "category_id": 5, "instance_id": "a"},
        {"id": 2, "image_id": 1, "bbox": [4, 4, 4, 4], "category_id": 3, "instance_id": "b"},
        {"id": 3, "image_id": 1, "bbox": [8, 4, 4, 4], "category_id": 5, "instance_id": "c"},
        {"id": 4, "image_id": 2, "bbox": [0, 0, 4, 4], "category_id": 7, "instance_id": "d"},
        {"id": 5, "image_id": 2, "bbox": [2, 2, 4, 4], "instance_id": "e"},
        {"id": 6, "image_id": 3, "bbox": [2, 2, 4, 4], "instance_id": "f"},
        {"id": 7, "image_id": 4, "bbox": [2, 2, 4, 4], "category_id": 7},
    ]
    categories = [{"id": 3, "name": "mug"}, {"id": 5, "name": "laptop"}, {"id": 7, "name": "plant"}]
    root.mkdir(parents=True)
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "EgoObjectsV1_unified_eval.json").write_text(json.dumps(data))
    (root / "EgoObjectsV1_unified_metadata.json").write_text(json.dumps({"cat_det_cats": categories}))
    for i, name in enumerate(["frame_a.jpg", "frame_b.jpg", "frame_c.jpg", "frame_d.jpg"]):
        solid(root / "images" / name, (40 * i, 40, 40))
    return root


# stem -> polygon labels (with a deleted car and a crowd "bicyclegroup") and the instanceIds values.
CITYSCAPES_VAL = {
    "aachen_000000_000019": (["road", "sky", "car", "person", ("bus", True)], [7, 23, 26000, 26001, 24000]),
    "aachen_000001_000019": (["road", "bicyclegroup", "polegroup"], [7, 33, 18]),
    "bremen_000000_000019": (["road", "rider", "license plate", "ego vehicle"], [7, 25000, 1]),
}


def write_cityscapes(root: Path) -> Path:
    """3 val images in 2 cities, 1 train image; polygons JSON and instanceIds PNG per image."""
    stems = {**{s: "val" for s in CITYSCAPES_VAL}, "cologne_000000_000019": "train"}
    for stem, split in stems.items():
        city = stem.split("_")[0]
        solid(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", (10, 20, 30))
        labels, values = CITYSCAPES_VAL.get(stem, (["road"], [7]))
        objects = [
            {"label": lb[0], "polygon": [[0, 0], [4, 0], [4, 4]], "deleted": 1}
            if isinstance(lb, tuple)
            else {"label": lb, "polygon": [[0, 0], [4, 0], [4, 4]]}
            for lb in labels
        ]
        gt_dir = root / "gtFine" / split / city
        gt_dir.mkdir(parents=True, exist_ok=True)
        (gt_dir / f"{stem}_gtFine_polygons.json").write_text(
            json.dumps({"imgHeight": 12, "imgWidth": 16, "objects": objects})
        )
        ids = np.resize(np.array(values, dtype=np.uint16), (12, 16))
        Image.fromarray(ids).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
    return root


def write_imagenet_folders(root: Path) -> Path:
    """val/<wnid>/ for goldfish (label 1) x 2 and tabby (label 281) x 1."""
    for wnid, count in [("n01443537", 2), ("n02123045", 1)]:
        for i in range(count):
            solid(root / "val" / wnid / f"ILSVRC2012_val_{wnid}_{i}.JPEG", (5, 5, 5))
    return root


def write_imagenet_flat(root: Path) -> Path:
    """Flat val/ with 3 images and the Kaggle LOC_val_solution.csv (tench=0, goldfish=1)."""
    rows = [("ILSVRC2012_val_00000001", "n01440764"), ("ILSVRC2012_val_00000002", "n01443537"),
            ("ILSVRC2012_val_00000003", "n01440764")]  # fmt: skip
    for image_id, _ in rows:
        solid(root / "val" / f"{image_id}.JPEG", (5, 5, 5))
    with (root / "LOC_val_solution.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        writer.writerows((image_id, f"{wnid} 1 2 3 4 {wnid} 5 6 7 8") for image_id, wnid in rows)
    return root
