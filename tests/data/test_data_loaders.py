"""The real-format loaders on tiny fixture trees: counts, labels, object sets, subsets, errors, batching."""

import functools
import json

import numpy as np
import pytest
import torch
from data_fixtures import write_imagenet_flat, write_imagenet_folders
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from semrsm.data import (
    BundledPhotos,
    Cityscapes,
    EgoObjects,
    ImageNetVal,
    PhotoViews,
    TinyImageNet,
    collate_samples,
)
from semrsm.data.photos import ALL_PHOTO_LOADERS


def check_contract(ds):
    ids = []
    for i in range(len(ds)):
        s = ds[i]
        assert set(s) == {"image", "id", "label", "objects", "meta"}
        assert isinstance(s["image"], Image.Image) and s["image"].mode == "RGB"
        assert isinstance(s["label"], int) and isinstance(s["objects"], tuple)
        assert list(s["objects"]) == sorted(set(s["objects"]))
        json.dumps(s["meta"])
        ids.append(s["id"])
    assert len(set(ids)) == len(ids)
    assert isinstance(ds.name, str) and isinstance(ds.classes, list)


def test_tiny_imagenet_train_and_val(tiny_imagenet):
    train = TinyImageNet(tiny_imagenet, "train")
    check_contract(train)
    assert train.classes == ["goldfish", "tabby", "espresso"]  # sorted wnids, first name in words.txt
    assert [train[i]["label"] for i in range(len(train))] == [0, 0, 1, 1, 2, 2]
    assert train[2]["objects"] == (1,) and train[2]["id"] == "train/n02000002_0"
    assert train[1]["meta"]["bbox"] == [1, 2, 5, 6] and "bbox" not in train[0]["meta"]
    val = TinyImageNet(tiny_imagenet, "val")
    check_contract(val)
    assert [(val[i]["id"], val[i]["label"]) for i in range(4)] == [
        ("val/val_0", 2), ("val/val_1", 0), ("val/val_2", 1), ("val/val_3", 2)
    ]  # fmt: skip
    assert val[0]["meta"] == {"path": "val/images/val_0.JPEG", "bbox": [0, 1, 7, 6]}


def test_subset_is_seeded_sorted_and_validated(tiny_imagenet):
    ids = lambda ds: [ds[i]["id"] for i in range(len(ds))]  # noqa: E731
    a = TinyImageNet(tiny_imagenet, "train", subset=3, seed=1)
    assert len(a) == 3 and ids(a) == ids(TinyImageNet(tiny_imagenet, "train", subset=3, seed=1))
    assert ids(a) == sorted(ids(a))
    others = {tuple(ids(TinyImageNet(tiny_imagenet, "train", subset=3, seed=s))) for s in range(8)}
    assert len(others) > 1
    for bad in (0, 7, 2.5, True):
        with pytest.raises(ValueError, match="subset"):
            TinyImageNet(tiny_imagenet, "train", subset=bad)
    with pytest.raises(ValueError, match="split"):
        TinyImageNet(tiny_imagenet, "test")


def test_egoobjects_object_sets_and_splits(egoobjects):
    ds = EgoObjects(egoobjects)
    check_contract(ds)
    assert [ds[i]["id"] for i in range(len(ds))] == ["1", "2", "4"]  # image 3 has no category annotation
    assert [ds[i]["objects"] for i in range(len(ds))] == [(3, 5), (7,), (7,)]
    assert ds.classes == ["", "", "", "mug", "", "laptop", "", "plant"]
    assert ds[0]["meta"] == {"image_id": 1, "path": "images/frame_a.jpg"}  # file name taken from the url
    assert ds[0]["label"] == -1
    assert len(EgoObjects(egoobjects, split="test")) == 1
    assert EgoObjects(egoobjects, metadata=None).classes == ds.classes


def test_egoobjects_rejects_unknown_category(egoobjects):
    path = egoobjects / "EgoObjectsV1_unified_eval.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 4
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown category 4"):
        EgoObjects(egoobjects)


@pytest.mark.parametrize("objects_from", ["polygons", "instance_ids"])
def test_cityscapes_instance_categories(cityscapes, objects_from):
    ds = Cityscapes(cityscapes, "val", objects_from=objects_from, square=False)  # whole frames
    check_contract(ds)
    assert [ds[i]["id"] for i in range(3)] == [
        "aachen_000000_000019",
        "aachen_000001_000019",
        "bremen_000000_000019",
    ]
    # person 24, car 26 (deleted bus ignored); crowd "bicyclegroup" -> bicycle 33; rider 25
    assert [ds[i]["objects"] for i in range(3)] == [(24, 26), (33,), (25,)]
    assert ds.classes[26] == "car" and len(ds.classes) == 34
    assert ds[2]["meta"]["city"] == "bremen"
    assert len(Cityscapes(cityscapes, "train", objects_from=objects_from)) == 1
    assert ds[0]["image"].size == (16, 12) and "crop_box" not in ds[0]["meta"]


def write_street(root, stem="aachen_000000_000019"):
    """A 32x16 frame: a car only in the left margin, a person in the centre square, a bus in it hidden behind
    a later truck polygon, a rider straddling the square's right edge (left of it: x 24..31)."""
    city = root / "leftImg8bit" / "val" / "aachen"
    city.mkdir(parents=True)
    Image.new("RGB", (32, 16), (9, 9, 9)).save(city / f"{stem}_leftImg8bit.png")
    box = lambda x0, y0, x1, y1: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]  # noqa: E731
    objects = [
        {"label": "car", "polygon": box(0, 2, 5, 8)},
        {"label": "person", "polygon": box(14, 4, 18, 12)},
        {"label": "bus", "polygon": box(10, 1, 12, 3)},
        {"label": "truck", "polygon": box(9, 0, 13, 4)},
        {"label": "rider", "polygon": box(22, 5, 28, 9)},
    ]
    gt = root / "gtFine" / "val" / "aachen"
    gt.mkdir(parents=True)
    (gt / f"{stem}_gtFine_polygons.json").write_text(
        json.dumps({"imgHeight": 16, "imgWidth": 32, "objects": objects})
    )
    ids = np.full((16, 32), 7, dtype=np.uint16)  # road
    for value, (x0, y0, x1, y1) in [(26000, (0, 2, 5, 8)), (24000, (14, 4, 18, 12)), (27000, (9, 0, 13, 4)),
                                    (25000, (22, 5, 28, 9))]:  # fmt: skip
        ids[y0 : y1 + 1, x0 : x1 + 1] = value
    Image.fromarray(ids).save(gt / f"{stem}_gtFine_instanceIds.png")
    return root


@pytest.mark.parametrize("objects_from", ["polygons", "instance_ids"])
def test_cityscapes_labels_come_from_the_centre_square_the_model_sees(tmp_path, objects_from):
    root = write_street(tmp_path)
    square = Cityscapes(root, objects_from=objects_from)[0]
    assert square["image"].size == (16, 16) and square["meta"]["crop_box"] == [8, 0, 24, 16]
    # car: outside the square; bus: hidden behind the truck; rider: partly inside
    assert square["objects"] == (24, 25, 27)
    frame = Cityscapes(root, objects_from=objects_from, square=False)[0]
    assert frame["image"].size == (32, 16) and frame["objects"] == (
        (24, 25, 26, 27, 28) if objects_from == "polygons" else (24, 25, 26, 27)
    )


def test_cityscapes_category_choice_and_errors(cityscapes):
    ds = Cityscapes(cityscapes, "val", categories=["sky", "car"], square=False)
    assert [ds[i]["objects"] for i in range(3)] == [(23, 26), (), ()]
    with pytest.raises(ValueError, match="unicorn"):
        Cityscapes(cityscapes, categories=["unicorn"])
    with pytest.raises(ValueError, match="objects_from"):
        Cityscapes(cityscapes, objects_from="masks")
    (cityscapes / "gtFine" / "val" / "bremen" / "bremen_000000_000019_gtFine_polygons.json").unlink()
    with pytest.raises(FileNotFoundError, match="bremen_000000_000019_gtFine_polygons.json"):
        Cityscapes(cityscapes)


def test_imagenet_val_class_folders(tmp_path):
    ds = ImageNetVal(write_imagenet_folders(tmp_path / "imagenet"))
    check_contract(ds)
    assert [ds[i]["label"] for i in range(3)] == [1, 1, 281]  # standard sorted-wnid class indices
    assert len(ds.classes) == 1000 and ds.classes[1] == "goldfish" and ds[2]["objects"] == (281,)


def test_imagenet_val_flat_with_ground_truth(tmp_path):
    root = write_imagenet_flat(tmp_path / "imagenet")
    ds = ImageNetVal(root, subset=2, seed=0)
    assert len(ds) == 2
    full = ImageNetVal(root)
    assert [(full[i]["id"], full[i]["label"]) for i in range(3)] == [
        ("ILSVRC2012_val_00000001", 0), ("ILSVRC2012_val_00000002", 1), ("ILSVRC2012_val_00000003", 0)
    ]  # fmt: skip
    (root / "LOC_val_solution.csv").unlink()
    with pytest.raises(FileNotFoundError, match="LOC_val_solution.csv.*kaggle"):
        ImageNetVal(root)


@pytest.mark.parametrize(
    ("cls", "missing", "source"),
    [
        (TinyImageNet, "wnids.txt", "tiny-imagenet-200.zip"),
        (EgoObjects, "EgoObjectsV1_unified_eval.json", "facebookresearch/EgoObjects"),
        (Cityscapes, "leftImg8bit", "cityscapes-dataset.com"),
        (ImageNetVal, "val", "image-net.org"),
    ],
)
def test_missing_root_names_path_source_and_key(tmp_path, cls, missing, source):
    with pytest.raises(FileNotFoundError) as err:
        cls(tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and missing in message and source in message
    assert "dataset.root" in message and "paths.data_dir" in message


def test_bundled_photos():
    ds = BundledPhotos(["chelsea", "camera", "china"])
    check_contract(ds)
    assert [ds[i]["id"] for i in range(3)] == ["chelsea", "camera", "china"]
    assert ds[1]["image"].size == (512, 512) and ds[0]["label"] == -1 and ds[0]["objects"] == ()
    assert len(BundledPhotos()) == 10
    with pytest.raises(ValueError, match="lena"):
        BundledPhotos(["lena"])


def test_photo_views_are_distinct_seeded_views_of_every_photo():
    views = PhotoViews(num_views=2 * len(ALL_PHOTO_LOADERS) + 3, seed=1)
    check_contract(views)
    assert {views[i]["meta"]["photo"] for i in range(len(views))} == set(ALL_PHOTO_LOADERS)
    assert len(ALL_PHOTO_LOADERS) >= 20  # scikit-image, scikit-learn and matplotlib photos
    groups = [views[i]["meta"]["group"] for i in range(len(views))]
    assert groups[: len(ALL_PHOTO_LOADERS)] == list(range(len(ALL_PHOTO_LOADERS)))
    first, again = views[3], PhotoViews(num_views=4, seed=1)[3]  # a view does not depend on num_views
    assert first["id"] == again["id"] and first["meta"] == again["meta"]
    np.testing.assert_array_equal(np.asarray(first["image"]), np.asarray(again["image"]))
    boxes = {tuple(views[i]["meta"]["crop_box"]) + (views[i]["meta"]["photo"],) for i in range(len(views))}
    assert len(boxes) == len(views)  # distinct views
    for i in range(len(views)):
        x0, y0, x1, y1 = views[i]["meta"]["crop_box"]
        assert x1 - x0 == y1 - y0 and views[i]["image"].size == (x1 - x0, y1 - y0)
    assert PhotoViews(num_views=3, seed=2)[0]["meta"] != views[0]["meta"]
    with pytest.raises(ValueError, match="num_views"):
        PhotoViews(num_views=0)
    with pytest.raises(ValueError, match="lena"):
        PhotoViews(names=["lena"])


def test_collate_samples(tiny_imagenet):
    ds = TinyImageNet(tiny_imagenet, "train")
    collate = functools.partial(collate_samples, transform=pil_to_tensor)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["images"].shape == (4, 3, 8, 8)
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 0, 1, 1]
    assert batch["ids"][0] == "train/n01000001_0" and batch["objects"][3] == (1,) and len(batch["meta"]) == 4
    with pytest.raises(ValueError, match="empty"):
        collate_samples([], pil_to_tensor)
