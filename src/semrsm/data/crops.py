"""Translated crops: overlapping square crops of the same images on a regular grid of positions."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from semrsm.data.common import make_sample, select_subset


def check_geometry(crop_fraction: float, grid: int) -> None:
    """Raise ValueError unless 0 < crop_fraction <= 1 and grid is a positive integer."""
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be a positive integer, got {grid!r}")


def crop_boxes(width: int, height: int, crop_fraction: float, grid: int) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) of grid x grid square crops, side round(crop_fraction * min(width, height)).

    Positions are evenly spaced from the top-left to the bottom-right corner, row-major; grid=1 gives the
    centre crop. Neighbouring crops are shifted by (extent - side) / (grid - 1) pixels and overlap while that
    shift is smaller than the side.
    """
    check_geometry(crop_fraction, grid)
    side = max(1, round(crop_fraction * min(width, height)))

    def starts(extent: int) -> list[int]:
        if grid == 1:
            return [(extent - side) // 2]
        return [round(k * (extent - side) / (grid - 1)) for k in range(grid)]

    return [(x, y, x + side, y + side) for y in starts(height) for x in starts(width)]


class TranslatedCrops(Dataset):
    """Overlapping crops of `num_images` images of `base` (a seeded choice; all when None).

    Sample i is crop i % grid**2 of source image i // grid**2. Label and objects are the source image's; meta
    holds `group` (index of the source image within this view), `source_id`, `source_index` (index in base),
    `crop_box` [x0, y0, x1, y1] in source pixels, `source_size` [width, height] and the source's meta under
    `source_meta`.
    """

    def __init__(
        self,
        base: Dataset,
        crop_fraction: float = 0.75,
        grid: int = 3,
        num_images: int | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        check_geometry(crop_fraction, grid)
        self.base = base
        self.crop_fraction = crop_fraction
        self.grid = grid
        self.name = name or f"{base.name}_crops"
        self.classes = base.classes
        self._sources = select_subset(len(base), num_images, seed, option="num_images")

    def __len__(self) -> int:
        return len(self._sources) * self.grid**2

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"TranslatedCrops index {index} out of range [0, {len(self)})")
        group, crop = divmod(index, self.grid**2)
        source = self.base[self._sources[group]]
        image = source["image"]
        box = crop_boxes(image.width, image.height, self.crop_fraction, self.grid)[crop]
        meta = {
            "group": group,
            "source_id": source["id"],
            "source_index": self._sources[group],
            "crop_box": list(box),
            "source_size": [image.width, image.height],
            "source_meta": source["meta"],
        }
        return make_sample(
            image.crop(box), f"{source['id']}#crop{crop}", source["label"], source["objects"], meta
        )
