"""Translated crops: grid geometry, pixel content, labels/groups carried over from the source image."""

import numpy as np
import pytest
from PIL import Image

from semrsm.data import TranslatedCrops, crop_boxes, make_sample


class Gradients:
    """Two images whose pixels encode their own coordinates, so a crop's content reveals its position."""

    name = "gradients"
    classes = ["a", "b"]

    def __init__(self):
        ys, xs = np.mgrid[0:30, 0:40]
        self.images = [np.stack([xs, ys, np.full_like(xs, k)], axis=-1).astype(np.uint8) for k in (0, 1)]

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return make_sample(Image.fromarray(self.images[i]), f"img{i}", i, (i + 5,), {"file": f"img{i}.png"})


def test_crop_boxes_grid():
    assert crop_boxes(40, 30, 0.5, 3) == [
        (0, 0, 15, 15), (12, 0, 27, 15), (25, 0, 40, 15),
        (0, 8, 15, 23), (12, 8, 27, 23), (25, 8, 40, 23),
        (0, 15, 15, 30), (12, 15, 27, 30), (25, 15, 40, 30),
    ]  # fmt: skip
    assert crop_boxes(40, 30, 0.5, 1) == [(12, 7, 27, 22)]
    assert crop_boxes(40, 30, 1.0, 2) == [(0, 0, 30, 30), (10, 0, 40, 30)] * 2


@pytest.mark.parametrize(("fraction", "grid"), [(0.0, 3), (1.5, 3), (0.5, 0), (0.5, 2.0)])
def test_crop_boxes_rejects_bad_geometry(fraction, grid):
    with pytest.raises(ValueError, match="crop_fraction|grid"):
        crop_boxes(40, 30, fraction, grid)


def test_translated_crops_content_and_meta():
    crops = TranslatedCrops(Gradients(), crop_fraction=0.5, grid=3)
    assert len(crops) == 18 and crops.name == "gradients_crops" and crops.classes == ["a", "b"]
    s = crops[9 + 5]  # second image, crop 5: x0=25, y0=8
    assert s["id"] == "img1#crop5" and s["label"] == 1 and s["objects"] == (6,)
    assert s["meta"] == {
        "group": 1, "source_id": "img1", "source_index": 1, "crop_box": [25, 8, 40, 23], "source_size": [40, 30],
        "source_meta": {"file": "img1.png"},
    }  # fmt: skip
    pixels = np.asarray(s["image"])
    assert pixels.shape == (15, 15, 3)
    assert pixels[0, 0].tolist() == [25, 8, 1] and pixels[-1, -1].tolist() == [39, 22, 1]
    assert len({crops[i]["id"] for i in range(len(crops))}) == 18
    with pytest.raises(IndexError):
        crops[18]


def test_translated_crops_image_choice_is_seeded():
    def chosen(seed):
        return TranslatedCrops(Gradients(), grid=1, num_images=1, seed=seed)[0]["id"]

    assert chosen(0) == chosen(0)
    assert {chosen(s) for s in range(6)} == {"img0#crop0", "img1#crop0"}
    with pytest.raises(ValueError, match="num_images"):
        TranslatedCrops(Gradients(), num_images=3)
