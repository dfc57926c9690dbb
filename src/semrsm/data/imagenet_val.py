"""ImageNet-1k validation images with labels in the standard (sorted-wnid) class order."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from semrsm.data.common import load_rgb, make_sample, require_path, select_subset

SOURCE = (
    "https://image-net.org/download.php (ILSVRC2012_img_val.tar, sorted into val/<wnid>/) or "
    "https://www.kaggle.com/c/imagenet-object-localization-challenge "
    "(ILSVRC/Data/CLS-LOC/val + LOC_val_solution.csv)"
)
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class ImageNetVal(Dataset):
    """ImageNet-1k validation set under `root`, in one of two layouts:

    - class folders: `root/<images_dir>/<wnid>/*.JPEG` (as left by the usual valprep script);
    - flat: `root/<images_dir>/*.JPEG` plus the Kaggle ground truth `root/<ground_truth>` (CSV with columns
      ImageId, PredictionString whose first token is the wnid).

    The layout is detected from the folder: any sub-folder named like a wnid means class folders. Labels are
    the standard class indices 0..999 (sorted wnids, as used by torchvision/timm classifiers);
    `classes[label]` is the first name of the class; objects = (label,).
    """

    def __init__(
        self,
        root: str | Path,
        subset: int | None = None,
        seed: int = 0,
        images_dir: str = "val",
        ground_truth: str = "LOC_val_solution.csv",
        name: str = "imagenet_val",
    ) -> None:
        self.root = Path(root)
        self.name = name
        from timm.data import ImageNetInfo  # imported here: importing timm takes seconds

        info = ImageNetInfo()
        self.wnids = list(info.label_names())
        self.classes = [d.split(",")[0].strip() for d in info.label_descriptions()]
        label_of = {w: i for i, w in enumerate(self.wnids)}
        folder = require_path(self.root / images_dir, "ImageNetVal", SOURCE, "dataset.root")
        class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and p.name in label_of)
        if class_dirs:
            entries = [(path, label_of[d.name]) for d in class_dirs for path in _images_in(d)]
        else:
            truth = require_path(self.root / ground_truth, "ImageNetVal", SOURCE, "dataset.root")
            wnid_of = self._read_ground_truth(truth, label_of)
            entries = []
            for path in _images_in(folder):
                if path.stem not in wnid_of:
                    raise ValueError(f"ImageNetVal: {path.name} has no entry in {truth}")
                entries.append((path, label_of[wnid_of[path.stem]]))
        if not entries:
            raise FileNotFoundError(f"ImageNetVal: no images under {folder}; get them from {SOURCE}")
        self._entries = [entries[i] for i in select_subset(len(entries), subset, seed)]

    @staticmethod
    def _read_ground_truth(path: Path, label_of: dict[str, int]) -> dict[str, str]:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"ImageId", "PredictionString"} <= rows[0].keys():
            raise ValueError(f"ImageNetVal: {path} needs columns ImageId,PredictionString")
        wnid_of = {row["ImageId"]: row["PredictionString"].split()[0] for row in rows}
        unknown = sorted({w for w in wnid_of.values() if w not in label_of})
        if unknown:
            raise ValueError(f"ImageNetVal: {path} names unknown wnids {unknown[:5]}")
        return wnid_of

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label = self._entries[index]
        meta = {"path": str(path.relative_to(self.root))}
        return make_sample(load_rgb(path), path.stem, label, (label,), meta)
