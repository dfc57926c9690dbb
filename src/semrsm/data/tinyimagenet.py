"""Tiny ImageNet (tiny-imagenet-200) in its distributed layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from semrsm.data.common import load_rgb, make_sample, require_path, select_subset

SOURCE = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
SPLITS = ("train", "val")


def _read_boxes(path: Path) -> dict[str, list[int]]:
    """Map file name -> [x0, y0, x1, y1] from a tab-separated `<file> x0 y0 x1 y1` boxes file."""
    boxes = {}
    for line in path.read_text().splitlines():
        if line.strip():
            name, *coords = line.split()
            boxes[name] = [int(c) for c in coords[-4:]]
    return boxes


class TinyImageNet(Dataset):
    """Tiny ImageNet from `root` (the folder holding wnids.txt, words.txt, train/ and val/).

    Labels are the class index in sorted wnid order (the ImageFolder convention); `classes[label]` is the
    first name of the class in words.txt. Each sample's objects are (label,); meta holds the file path and,
    where the distribution provides it, the object's bounding box [x0, y0, x1, y1].
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        subset: int | None = None,
        seed: int = 0,
        name: str = "tinyimagenet",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"TinyImageNet split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.name = name
        self.split = split
        key = "dataset.root"
        wnids_file = require_path(self.root / "wnids.txt", "TinyImageNet", SOURCE, key)
        words_file = require_path(self.root / "words.txt", "TinyImageNet", SOURCE, key)
        self.wnids = sorted(w.strip() for w in wnids_file.read_text().splitlines() if w.strip())
        if not self.wnids:
            raise ValueError(f"TinyImageNet: {wnids_file} lists no classes")
        words = dict(line.split("\t", 1) for line in words_file.read_text().splitlines() if "\t" in line)
        self.classes = [words.get(w, w).split(",")[0].strip() for w in self.wnids]
        entries = self._train_entries(key) if split == "train" else self._val_entries(key)
        self._entries = [entries[i] for i in select_subset(len(entries), subset, seed)]

    def _train_entries(self, key: str) -> list[tuple[Path, int, list[int] | None]]:
        entries = []
        for label, wnid in enumerate(self.wnids):
            class_dir = require_path(self.root / "train" / wnid / "images", "TinyImageNet", SOURCE, key)
            boxes_file = self.root / "train" / wnid / f"{wnid}_boxes.txt"
            boxes = _read_boxes(boxes_file) if boxes_file.exists() else {}
            for path in sorted(class_dir.glob("*.JPEG")):
                entries.append((path, label, boxes.get(path.name)))
        return entries

    def _val_entries(self, key: str) -> list[tuple[Path, int, list[int] | None]]:
        annotations = require_path(self.root / "val" / "val_annotations.txt", "TinyImageNet", SOURCE, key)
        label_of = {w: i for i, w in enumerate(self.wnids)}
        entries = []
        for line in annotations.read_text().splitlines():
            if not line.strip():
                continue
            file_name, wnid, *coords = line.split("\t")
            if wnid not in label_of:
                raise ValueError(f"TinyImageNet: {annotations} names class {wnid!r} missing from wnids.txt")
            path = self.root / "val" / "images" / file_name
            entries.append((path, label_of[wnid], [int(c) for c in coords] if coords else None))
        return sorted(entries, key=lambda e: e[0].name)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label, box = self._entries[index]
        meta: dict[str, Any] = {"path": str(path.relative_to(self.root))}
        if box is not None:
            meta["bbox"] = box
        return make_sample(load_rgb(path), f"{self.split}/{path.stem}", label, (label,), meta)
