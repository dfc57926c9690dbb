"""Writers of synthetic datasets in the real distributed formats (tiny-imagenet-200, EgoObjects, Cityscapes).

Every image draws from its own generator seeded by (seed, part, index), so outputs are byte-identical for the
same arguments and independent of generation order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semrsm.data.cityscapes import INSTANCE_CATEGORIES, LABEL_BY_NAME
from semrsm.data.synthetic.categories import make_categories
from semrsm.data.synthetic.render import background, draw_object, place_objects, to_image, visible_box

JPEG_QUALITY = 90
MIN_VISIBLE_PIXELS = 16  # objects hidden below this many pixels are not annotated


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


def _scene(
    size: tuple[int, int], categories: list[int], radius_range: tuple[float, float], rng: np.random.Generator
) -> tuple[Image.Image, list[dict[str, Any]]]:
    """Render `categories` (indices into the category list) at random places on a textured background.

    Returns the image and per drawn object its category, visible box [x0, y0, x1, y1] and visible area.
    """
    height, width = size
    all_categories = make_categories(max(categories) + 1)
    canvas = background(height, width, rng)
    instance_map = np.zeros((height, width), dtype=np.int32)
    placements = place_objects(categories, height, width, radius_range, rng)
    for k, place in enumerate(placements, start=1):
        draw_object(canvas, instance_map, k, all_categories[place.category], place, rng)
    objects = []
    for k, place in enumerate(placements, start=1):
        box = visible_box(instance_map, k)
        if box is not None:
            objects.append({"category": place.category, "instance": k, "box": box[0], "area": box[1]})
    return to_image(canvas), objects


def write_tinyimagenet(
    out: Path,
    seed: int,
    num_classes: int = 10,
    train_per_class: int = 100,
    val_per_class: int = 20,
    image_size: int = 64,
) -> None:
    """A tiny-imagenet-200 tree of single-object images: wnids.txt, words.txt, train/, val/."""
    _check_positive(
        num_classes=num_classes,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        image_size=image_size,
    )
    categories = make_categories(num_classes)
    wnids = [f"s{k:08d}" for k in range(num_classes)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (out / "words.txt").write_text(
        "".join(f"{w}\t{c.name}\n" for w, c in zip(wnids, categories, strict=True))
    )
    size = (image_size, image_size)
    for label, wnid in enumerate(wnids):
        image_dir = out / "train" / wnid / "images"
        image_dir.mkdir(parents=True)
        lines = []
        for i in range(train_per_class):
            image, (obj,) = _scene(size, [label], (0.22, 0.4), np.random.default_rng([seed, 0, label, i]))
            image.save(image_dir / f"{wnid}_{i}.JPEG", quality=JPEG_QUALITY)
            lines.append("\t".join([f"{wnid}_{i}.JPEG", *map(str, obj["box"])]))
        (out / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(f"{line}\n" for line in lines))
    val_labels = np.random.default_rng([seed, 1]).permutation(
        np.repeat(np.arange(num_classes), val_per_class)
    )
    (out / "val" / "images").mkdir(parents=True)
    lines = []
    for j, label in enumerate(val_labels.tolist()):
        image, (obj,) = _scene(size, [label], (0.22, 0.4), np.random.default_rng([seed, 2, j]))
        image.save(out / "val" / "images" / f"val_{j}.JPEG", quality=JPEG_QUALITY)
        lines.append("\t".join([f"val_{j}.JPEG", wnids[label], *map(str, obj["box"])]))
    (out / "val" / "val_annotations.txt").write_text("".join(f"{line}\n" for line in lines))


def write_egoobjects(
    out: Path,
    seed: int,
    num_classes: int = 10,
    num_images: int = 200,
    image_size: int = 128,
    min_objects: int = 1,
    max_objects: int = 5,
) -> None:
    """EgoObjects-style multi-object scenes: images/*.jpg, unified eval JSON, metadata JSON (ids from 1)."""
    _check_positive(
        num_classes=num_classes, num_images=num_images, image_size=image_size, min_objects=min_objects
    )
    if max_objects < min_objects:
        raise ValueError(f"max_objects ({max_objects}) must be >= min_objects ({min_objects})")
    categories = make_categories(num_classes)
    (out / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(num_images):
        rng = np.random.default_rng([seed, 3, i])
        chosen = rng.integers(0, num_classes, size=rng.integers(min_objects, max_objects + 1)).tolist()
        image, objects = _scene((image_size, image_size), chosen, (0.09, 0.2), rng)
        file_name = f"scene_{i:06d}.jpg"
        image.save(out / "images" / file_name, quality=JPEG_QUALITY)
        images.append(
            {"id": i + 1, "url": file_name, "height": image_size, "width": image_size, "subset": "val"}
        )
        for obj in objects:
            if obj["area"] >= MIN_VISIBLE_PIXELS:
                x0, y0, x1, y1 = obj["box"]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i + 1,
                        "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1],
                        "area": obj["area"],
                        "category_id": obj["category"] + 1,
                        "instance_id": f"{i + 1}_{obj['instance']}",
                    }
                )
    cats = [{"id": k + 1, "name": c.name} for k, c in enumerate(categories)]
    info = {"description": f"semrsm synthetic scenes, seed {seed}"}
    data = {"info": info, "images": images, "annotations": annotations}
    (out / "EgoObjectsV1_unified_eval.json").write_text(json.dumps(data, sort_keys=True))
    (out / "EgoObjectsV1_unified_metadata.json").write_text(
        json.dumps({"cat_det_cats": cats}, sort_keys=True)
    )


def _street_scene(
    height: int, width: int, num_objects: int, rng: np.random.Generator
) -> tuple[Image.Image, np.ndarray, list[dict[str, Any]]]:
    """Sky above a random horizon, road below, instance-class objects on it: image, instanceIds, polygons."""
    categories = make_categories(len(INSTANCE_CATEGORIES))
    horizon = int(rng.uniform(0.3, 0.45) * height)
    canvas = background(height, width, rng)
    canvas[:horizon] = 0.5 * canvas[:horizon] + 0.5 * np.array([0.55, 0.7, 0.9])
    canvas[horizon:] = 0.5 * canvas[horizon:] + 0.5 * np.array([0.35, 0.35, 0.37])
    instance_map = np.full((height, width), LABEL_BY_NAME["road"].id, dtype=np.int32)
    instance_map[:horizon] = LABEL_BY_NAME["sky"].id
    polygons: list[dict[str, Any]] = [
        {"label": "sky", "polygon": [[0, 0], [width - 1, 0], [width - 1, horizon - 1], [0, horizon - 1]]},
        {
            "label": "road",
            "polygon": [[0, horizon], [width - 1, horizon], [width - 1, height - 1], [0, height - 1]],
        },
    ]
    chosen = rng.integers(0, len(categories), size=num_objects).tolist()
    counts: dict[str, int] = {}
    drawn = []
    for place in place_objects(chosen, height, width, (0.1, 0.25), rng, top=horizon / height):
        name = INSTANCE_CATEGORIES[place.category]
        counts[name] = counts.get(name, 0) + 1
        value = LABEL_BY_NAME[name].id * 1000 + counts[name] - 1
        drawn.append(
            (name, value, draw_object(canvas, instance_map, value, categories[place.category], place, rng))
        )
    polygons += [  # integer pixel coordinates, as in Cityscapes; fully occluded objects are not annotated
        {"label": name, "polygon": np.round(polygon).astype(int).tolist()}
        for name, value, polygon in drawn
        if visible_box(instance_map, value) is not None
    ]
    return to_image(canvas), instance_map, polygons


def write_cityscapes(
    out: Path,
    seed: int,
    num_images: int = 100,
    width: int = 256,
    height: int = 128,
    min_objects: int = 2,
    max_objects: int = 6,
    num_cities: int = 2,
) -> None:
    """A Cityscapes-style val split: leftImg8bit/val/<city>/*.png and gtFine polygons JSON + instanceIds PNG.

    The eight evaluated instance classes are drawn as synthetic categories 0..7 at random places on the road
    of a sky/road street layout and annotated under their Cityscapes names and label ids.
    """
    _check_positive(
        num_images=num_images, width=width, height=height, min_objects=min_objects, num_cities=num_cities
    )
    if max_objects < min_objects:
        raise ValueError(f"max_objects ({max_objects}) must be >= min_objects ({min_objects})")
    for i in range(num_images):
        rng = np.random.default_rng([seed, 4, i])
        city = f"synthcity{i % num_cities}"
        stem = f"{city}_{i:06d}_000019"
        image, instance_map, polygons = _street_scene(
            height, width, int(rng.integers(min_objects, max_objects + 1)), rng
        )
        image_dir = out / "leftImg8bit" / "val" / city
        gt_dir = out / "gtFine" / "val" / city
        image_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        image.save(image_dir / f"{stem}_leftImg8bit.png")
        Image.fromarray(instance_map.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
        gt = {"imgHeight": height, "imgWidth": width, "objects": polygons}
        (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps(gt, sort_keys=True))
