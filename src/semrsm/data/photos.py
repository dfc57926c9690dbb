"""Natural photos bundled with scikit-image and scikit-learn: a small real-image set, no download."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image
from skimage import data as skdata
from torch.utils.data import Dataset

from semrsm.data.common import make_sample


def _sklearn_photo(file_name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image  # imported here: importing sklearn takes a second

    return load_sample_image(file_name)


# name -> loader returning an (H, W) or (H, W, 3) uint8 array; grey photos are replicated to RGB.
PHOTO_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skdata.astronaut,
    "camera": skdata.camera,
    "chelsea": skdata.chelsea,
    "coffee": skdata.coffee,
    "coins": skdata.coins,
    "hubble_deep_field": skdata.hubble_deep_field,
    "motorcycle": lambda: skdata.stereo_motorcycle()[0],
    "rocket": skdata.rocket,
    "china": lambda: _sklearn_photo("china.jpg"),
    "flower": lambda: _sklearn_photo("flower.jpg"),
}


class BundledPhotos(Dataset):
    """The photos named in `names` (default: all of PHOTO_LOADERS, in that order); label -1, no objects."""

    def __init__(self, names: list[str] | None = None, name: str = "photos") -> None:
        self.photo_names = list(names) if names is not None else list(PHOTO_LOADERS)
        unknown = [n for n in self.photo_names if n not in PHOTO_LOADERS]
        if unknown or not self.photo_names:
            raise ValueError(f"unknown or empty photo names {unknown}; valid: {sorted(PHOTO_LOADERS)}")
        self.name = name
        self.classes: list[str] = []

    def __len__(self) -> int:
        return len(self.photo_names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        photo = self.photo_names[index]
        pixels = np.asarray(PHOTO_LOADERS[photo](), dtype=np.uint8)
        return make_sample(Image.fromarray(pixels), photo, meta={"photo": photo})
