"""The synthetic embedded default: deterministic bytes, atomic idempotent generation, read by the real loaders."""

import json

import numpy as np
import pytest
from PIL import Image

import semrsm.data.synthetic as synthetic
from semrsm.data import (
    Cityscapes,
    EgoObjects,
    TinyImageNet,
    ensure_synthetic,
    synthetic_cityscapes,
    synthetic_egoobjects,
    synthetic_tinyimagenet,
)
from semrsm.data.synthetic.categories import MAX_CATEGORIES, make_categories

SMALL = {
    "tinyimagenet": {"num_classes": 3, "train_per_class": 3, "val_per_class": 2, "image_size": 32},
    "egoobjects": {"num_classes": 4, "num_images": 6, "image_size": 48},
    "cityscapes": {"num_images": 4, "width": 64, "height": 32},
}


def tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", sorted(SMALL))
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, fmt):
    a = ensure_synthetic(tmp_path / "a", fmt, seed=3, **SMALL[fmt])
    b = ensure_synthetic(tmp_path / "b", fmt, seed=3, **SMALL[fmt])
    assert a.name == b.name and tree_bytes(a) == tree_bytes(b)
    c = ensure_synthetic(tmp_path / "a", fmt, seed=4, **SMALL[fmt])
    assert c != a and tree_bytes(c).keys() == tree_bytes(a).keys() and tree_bytes(c) != tree_bytes(a)


def test_generation_is_reused_and_leaves_no_temporaries(tmp_path):
    path = ensure_synthetic(tmp_path, "egoobjects", **SMALL["egoobjects"])
    stamp = (path / "EgoObjectsV1_unified_eval.json").stat().st_mtime_ns
    assert ensure_synthetic(tmp_path, "egoobjects", **SMALL["egoobjects"]) == path
    assert (path / "EgoObjectsV1_unified_eval.json").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert json.loads((path / "synthetic.json").read_text())["params"]["num_images"] == 6
    other = ensure_synthetic(tmp_path, "egoobjects", **{**SMALL["egoobjects"], "num_images": 5})
    assert other != path and len(EgoObjects(other)) == 5


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    def broken(out, seed, num_images=1):
        out.mkdir(parents=True)
        (out / "half.json").write_text("{")
        raise RuntimeError("disk full")

    monkeypatch.setitem(synthetic.WRITERS, "egoobjects", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_synthetic(tmp_path, "egoobjects")
    assert list(tmp_path.iterdir()) == []


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic format 'coco'"):
        ensure_synthetic(tmp_path, "coco")
    with pytest.raises(ValueError, match="num_scenes"):
        ensure_synthetic(tmp_path, "egoobjects", num_scenes=3)
    with pytest.raises(ValueError, match="image_size"):
        ensure_synthetic(tmp_path, "tinyimagenet", image_size=0)
    with pytest.raises(ValueError, match="max_objects"):
        ensure_synthetic(tmp_path, "cityscapes", min_objects=3, max_objects=2)
    assert list(tmp_path.iterdir()) == []


def test_categories_are_distinct():
    categories = make_categories(MAX_CATEGORIES)
    assert len({c.name for c in categories}) == MAX_CATEGORIES
    assert len({(c.shape, c.texture, c.hue) for c in categories}) == MAX_CATEGORIES
    assert len({c.shape for c in categories[:12]}) == 12 and len({c.hue for c in categories[:12]}) == 12
    with pytest.raises(ValueError, match="categories"):
        make_categories(MAX_CATEGORIES + 1)


def test_tinyimagenet_format_through_real_loader(tmp_path):
    path = ensure_synthetic(tmp_path, "tinyimagenet", **SMALL["tinyimagenet"])
    train, val = TinyImageNet(path, "train"), TinyImageNet(path, "val")
    assert len(train) == 9 and len(val) == 6 and len(train.classes) == 3
    assert sorted(val[i]["label"] for i in range(6)) == [0, 0, 1, 1, 2, 2]
    for ds in (train, val):
        for i in range(len(ds)):
            sample = ds[i]
            x0, y0, x1, y1 = sample["meta"]["bbox"]
            assert sample["image"].size == (32, 32) and 0 <= x0 <= x1 < 32 and 0 <= y0 <= y1 < 32
            assert (x1 - x0 + 1) * (y1 - y0 + 1) >= 16  # objects are clearly visible
    pixels = np.stack([np.asarray(train[i]["image"], dtype=float) for i in range(9)])
    assert pixels.std() > 20  # textured, not blank


def test_egoobjects_format_through_real_loader(tmp_path):
    path = ensure_synthetic(tmp_path, "egoobjects", **SMALL["egoobjects"])
    ds = EgoObjects(path)
    data = json.loads((path / "EgoObjectsV1_unified_eval.json").read_text())
    assert len(ds) == 6 and len(ds.classes) == 5 and ds.classes[0] == ""
    for i in range(len(ds)):
        sample = ds[i]
        anns = [a for a in data["annotations"] if a["image_id"] == sample["meta"]["image_id"]]
        assert sample["objects"] == tuple(sorted({a["category_id"] for a in anns}))
        assert 1 <= len(anns) <= 5 and set(sample["objects"]) <= {1, 2, 3, 4}
        assert all(a["bbox"][0] + a["bbox"][2] <= 48 and a["bbox"][1] + a["bbox"][3] <= 48 for a in anns)
    assert len({ds[i]["objects"] for i in range(len(ds))}) > 1


def test_cityscapes_format_through_real_loader(tmp_path):
    path = ensure_synthetic(tmp_path, "cityscapes", **SMALL["cityscapes"])
    polygons, instances = Cityscapes(path), Cityscapes(path, objects_from="instance_ids")
    assert len(polygons) == 4 and polygons[0]["image"].size == (32, 32)  # the centre square
    assert Cityscapes(path, square=False)[0]["image"].size == (64, 32)
    assert [polygons[i]["objects"] for i in range(4)] == [instances[i]["objects"] for i in range(4)]
    assert all(polygons[i]["objects"] for i in range(4))
    assert {polygons[i]["meta"]["city"] for i in range(4)} == {"synthcity0", "synthcity1"}
    ids = Image.open(next(path.glob("gtFine/val/*/*_instanceIds.png")))
    assert np.asarray(ids).max() >= 24000  # instances encoded as label_id * 1000 + k


def test_factories_generate_then_load(tmp_path):
    tin = synthetic_tinyimagenet(tmp_path, split="train", subset=4, **SMALL["tinyimagenet"])
    assert isinstance(tin, TinyImageNet) and tin.name == "synthetic" and len(tin) == 4
    ego = synthetic_egoobjects(tmp_path, **SMALL["egoobjects"])
    assert isinstance(ego, EgoObjects) and ego.name == "synthetic_scenes" and len(ego) == 6
    city = synthetic_cityscapes(tmp_path, subset=2, **SMALL["cityscapes"])
    assert isinstance(city, Cityscapes) and city.name == "synthetic_cityscapes" and len(city) == 2
    assert len(list(tmp_path.iterdir())) == 3
