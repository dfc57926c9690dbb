"""Datasets in their real on-disk formats, bundled photos, translated crops, the synthetic embedded default.

Sample contract: every dataset is a torch Dataset whose `ds[i]` is a dict
    {"image": PIL.Image (RGB), "id": str (unique, stable), "label": int (-1: none),
     "objects": tuple[int, ...] (sorted category ids present; () when none), "meta": dict (JSON-serialisable)}
with attributes `name: str`, `classes: list[str]` (names indexed by label / category id) and `__len__`.

Batching: datasets return PIL images; batch them with `collate_samples(samples, transform)`, e.g.
    DataLoader(ds, batch_size=64, collate_fn=functools.partial(collate_samples, transform=preprocess))
which gives {"images": Tensor(B, 3, H, W), "ids": list[str], "labels": LongTensor(B), "objects": list[tuple],
"meta": list[dict]}. The transform (the backbone's preprocessing, PIL -> tensor) runs in the loader workers.

Missing data raises FileNotFoundError at construction naming the missing path, where the data is distributed
and the config key to set (`dataset.root` or `paths.data_dir`).
"""

from semrsm.data.cityscapes import Cityscapes
from semrsm.data.common import collate_samples, make_sample, select_subset
from semrsm.data.crops import TranslatedCrops, crop_boxes
from semrsm.data.egoobjects import EgoObjects
from semrsm.data.imagenet_val import ImageNetVal
from semrsm.data.photos import BundledPhotos, PhotoViews
from semrsm.data.synthetic import (
    ensure_synthetic,
    synthetic_cityscapes,
    synthetic_egoobjects,
    synthetic_tinyimagenet,
)
from semrsm.data.tinyimagenet import TinyImageNet

__all__ = [
    "BundledPhotos",
    "Cityscapes",
    "EgoObjects",
    "ImageNetVal",
    "PhotoViews",
    "TinyImageNet",
    "TranslatedCrops",
    "collate_samples",
    "crop_boxes",
    "ensure_synthetic",
    "make_sample",
    "select_subset",
    "synthetic_cityscapes",
    "synthetic_egoobjects",
    "synthetic_tinyimagenet",
]
