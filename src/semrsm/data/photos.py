"""Natural photos bundled with scikit-image, scikit-learn and matplotlib: small real-image sets, no download.

``BundledPhotos``: the photos themselves. ``PhotoViews``: many distinct seeded views (random square crops of
random scale and position, random horizontal flips) of every bundled photo, for studies that need hundreds of
real images; ``meta["group"]`` names the source photo, so views of one photo can be told apart.
"""

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


def _matplotlib_photo(file_name: str) -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data(file_name) as handle, Image.open(handle) as image:
        return np.asarray(image.convert("RGB"))


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
# Every other photograph the installed packages bundle (not drawings, silhouettes or synthetic patterns).
MORE_PHOTO_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "brick": skdata.brick,
    "cell": skdata.cell,
    "clock": skdata.clock,
    "grass": skdata.grass,
    "gravel": skdata.gravel,
    "immunohistochemistry": skdata.immunohistochemistry,
    "microaneurysms": skdata.microaneurysms,
    "moon": skdata.moon,
    "page": skdata.page,
    "retina": skdata.retina,
    "text": skdata.text,
    "grace_hopper": lambda: _matplotlib_photo("grace_hopper.jpg"),
    "present": lambda: _matplotlib_photo("Minduka_Present_Blue_Pack.png"),
}
ALL_PHOTO_LOADERS = {**PHOTO_LOADERS, **MORE_PHOTO_LOADERS}


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


class PhotoViews(Dataset):
    """``num_views`` distinct views of the bundled photos (default: all of ALL_PHOTO_LOADERS): view k shows photo
    k % P (every photo in turn), a square crop whose side is a uniform fraction in [min_scale, 1] of the
    photo's shorter side at a uniform position, mirrored with probability 1/2, all drawn from (seed, k) — so a
    view does not depend on ``num_views`` and fewer views are a prefix of more. Label -1, no objects; meta:
    group (source photo index), photo, crop_box, flipped."""

    def __init__(
        self,
        num_views: int = 500,
        seed: int = 0,
        min_scale: float = 0.35,
        names: list[str] | None = None,
        name: str = "photo_views",
    ) -> None:
        self.photo_names = list(names) if names is not None else list(ALL_PHOTO_LOADERS)
        unknown = [n for n in self.photo_names if n not in ALL_PHOTO_LOADERS]
        if unknown or not self.photo_names:
            raise ValueError(f"unknown or empty photo names {unknown}; valid: {sorted(ALL_PHOTO_LOADERS)}")
        if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
            raise ValueError(f"num_views must be a positive integer, got {num_views!r}")
        if not 0.0 < min_scale <= 1.0:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale!r}")
        self.num_views, self.seed, self.min_scale, self.name = num_views, seed, min_scale, name
        self.classes: list[str] = []
        self._photos: dict[str, Image.Image] = {}

    def __len__(self) -> int:
        return self.num_views

    def _photo(self, photo: str) -> Image.Image:
        if photo not in self._photos:
            pixels = np.asarray(ALL_PHOTO_LOADERS[photo](), dtype=np.uint8)
            self._photos[photo] = Image.fromarray(pixels).convert("RGB")
        return self._photos[photo]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_views:
            raise IndexError(f"PhotoViews index {index} out of range [0, {self.num_views})")
        group = index % len(self.photo_names)
        photo = self.photo_names[group]
        image = self._photo(photo)
        rng = np.random.default_rng([self.seed, index])
        side = max(1, round(rng.uniform(self.min_scale, 1.0) * min(image.size)))
        x0 = int(rng.integers(0, image.width - side + 1))
        y0 = int(rng.integers(0, image.height - side + 1))
        flipped = bool(rng.random() < 0.5)
        view = image.crop((x0, y0, x0 + side, y0 + side))
        if flipped:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        meta = {
            "group": group,
            "photo": photo,
            "crop_box": [x0, y0, x0 + side, y0 + side],
            "flipped": flipped,
        }
        return make_sample(view, f"{photo}#view{index}", meta=meta)
