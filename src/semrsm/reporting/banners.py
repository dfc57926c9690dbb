"""The banner over each part of the report: which data and which models its numbers rest on, and how many runs
behind it failed.

Data are named with what they stand in for (``synthetic_scenes``: a synthetic stand-in for EgoObjects), models
with where their weights come from; models trained here carry their training (epochs, images, seeds, validation
accuracy) as recorded by the train stage's runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from semrsm.reporting import provenance
from semrsm.reporting.report_scan import RunResult

STAND_INS = {
    "synthetic": "generated 10-class images, a synthetic stand-in for TinyImageNet",
    "synthetic_crops": "overlapping crops of generated images, a synthetic stand-in for TinyImageNet crops",
    "synthetic_scenes": "generated multi-object scenes in the EgoObjects format, a synthetic stand-in for EgoObjects",
    "synthetic_cityscapes": "generated street-like scenes in the Cityscapes format, a synthetic stand-in for Cityscapes",
}
REAL_DATA = {
    "photos": "real photos bundled with scikit-image, scikit-learn and matplotlib",
    "photo_views": "real photos (bundled with scikit-image, scikit-learn, matplotlib), random crops and flips",
    "photos_crops": "overlapping crops of real photos bundled with scikit-image, scikit-learn and matplotlib",
    "egoobjects": "EgoObjects",
    "cityscapes": "Cityscapes",
    "tinyimagenet": "TinyImageNet",
    "tinyimagenet_crops": "overlapping crops of TinyImageNet images",
    "imagenet_val": "ImageNet validation images",
}
_CHECKPOINT = re.compile(r"^(?P<model>.+)_seed(?P<seed>\d+)\.pt$")


@dataclass(frozen=True)
class Banner:
    """``kind``: synthetic, real, mixed or none (colours the banner); a headline, detail lines, failed runs."""

    kind: str
    headline: str
    lines: list[str] = field(default_factory=list)
    failed: str = ""


@dataclass(frozen=True)
class Training:
    """What the train runs under outputs/ record about one model trained here."""

    epochs: tuple[int, ...]
    images: tuple[int, ...]
    seeds: tuple[int, ...]
    val_acc: tuple[float, ...]

    def describe(self) -> str:
        parts = [
            f"{_span(self.epochs)} epoch(s)" if self.epochs else "",
            f"{_span(self.images)} training images" if self.images else "",
            f"seed(s) {', '.join(map(str, self.seeds))}" if self.seeds else "",
            f"validation accuracy {min(self.val_acc):.2f}-{max(self.val_acc):.2f}"
            if len(self.val_acc) > 1
            else (f"validation accuracy {self.val_acc[0]:.2f}" if self.val_acc else ""),
        ]
        return ", ".join(part for part in parts if part)


def _span(values: Sequence[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else f"{min(values)}-{max(values)}"


def trainings(runs: Iterable[RunResult]) -> dict[str, Training]:
    """Per model trained here (``resnet18_synthetic``), its finished train runs' epochs, images, seeds, accuracy."""
    found: dict[str, list[tuple[int, int, int, float]]] = {}
    for run in runs:
        if run.stage != "train" or not run.complete:
            continue
        experiment = run.config.get("experiment") or {}
        match = _CHECKPOINT.match(str(experiment.get("checkpoint_name") or ""))
        if match is None:
            continue
        epochs = experiment.get("epochs")
        images = run.summary.get("num_train_samples", experiment.get("max_train_samples"))
        accuracy = run.summary.get("val_acc")
        found.setdefault(match["model"], []).append(
            (
                int(epochs) if isinstance(epochs, int) else -1,
                int(images) if isinstance(images, int) else -1,
                int(match["seed"]),
                float(accuracy) if isinstance(accuracy, int | float) else float("nan"),
            )
        )
    return {
        model: Training(
            tuple(sorted({r[0] for r in rows if r[0] >= 0})),
            tuple(sorted({r[1] for r in rows if r[1] >= 0})),
            tuple(sorted({r[2] for r in rows})),
            tuple(r[3] for r in rows if r[3] == r[3]),
        )
        for model, rows in sorted(found.items())
    }


def describe_dataset(name: str) -> str:
    """``name (what it is)``."""
    what = STAND_INS.get(name) or REAL_DATA.get(name)
    if what is None:
        what = (
            "synthetic stand-in" if provenance.data_kind(name) == provenance.SYNTHETIC_DATA else "real data"
        )
    return f"{name} ({what})"


def describe_model(name: str, trained: dict[str, Training]) -> str:
    """``name (trained here on synthetic data: 3 epochs, ...)`` or ``name (real pretrained weights)``."""
    kind = provenance.model_kind(name)
    if kind == provenance.TRAINED_HERE:
        training = trained.get(name)
        detail = training.describe() if training else "no finished train run found under outputs/"
        return f"{name} ({kind}: {detail})"
    if kind == provenance.PRETRAINED:
        return f"{name} (real pretrained weights)"
    return "generated feature maps (no model)"


def pairs_of(frames: Iterable[pd.DataFrame]) -> set[tuple[str, str]]:
    """The (dataset, backbone) pairs of the rows of ``frames`` ("" where a row or table has none)."""
    pairs: set[tuple[str, str]] = set()
    for frame in frames:
        if frame.empty:
            continue
        if "dataset" not in frame and "backbone" not in frame:
            if "source" in frame:  # matcher tables: features:<dataset>/<backbone> or generated maps
                pairs |= {_source_pair(str(source)) for source in frame["source"].dropna().unique()}
            continue
        columns = [c for c in ("dataset", "backbone") if c in frame]
        for values in frame[columns].drop_duplicates().itertuples(index=False):
            found = dict(zip(columns, values, strict=True))
            pairs.add((_text(found.get("dataset")), _text(found.get("backbone"))))
    return pairs


def run_pairs(run: RunResult) -> set[tuple[str, str]]:
    """(dataset, backbone) of a run from its configuration (a train run: the model it trains)."""
    config = run.config
    dataset = _text((config.get("dataset") or {}).get("name"))
    backbone = _text((config.get("backbone") or {}).get("name"))
    match = _CHECKPOINT.match(str((config.get("experiment") or {}).get("checkpoint_name") or ""))
    if run.stage == "train" and match is not None:
        backbone = match["model"]
    return {(dataset, backbone)} if dataset or backbone else set()


def _source_pair(source: str) -> tuple[str, str]:
    kind, _, rest = source.partition(":")
    dataset, _, backbone = rest.partition("/")
    return (dataset, backbone) if kind == "features" and backbone else ("", "")


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def banner(
    pairs: set[tuple[str, str]], trained: dict[str, Training], failed: Sequence[RunResult] = ()
) -> Banner:
    """The banner naming the data and models of ``pairs`` ((dataset, backbone), "" where none) and the failed
    or unfinished runs ``failed``."""
    failed_text = ""
    if failed:
        names = ", ".join(f"{run.name} ({run.status})" for run in failed)
        failed_text = f"{len(failed)} run(s) failed or unfinished and are not in these numbers: {names}."
    datasets = sorted({d for d, _ in pairs if d})
    backbones = sorted({b for _, b in pairs if b})
    if not pairs:
        return Banner("none", "No finished results.", [], failed_text)
    if not datasets and not backbones:
        return Banner(
            "synthetic", "Generated post-ReLU feature maps (no dataset, no model).", [], failed_text
        )
    kinds = {provenance.data_kind(d) for d in datasets} or {provenance.SYNTHETIC_DATA}
    models = {provenance.model_kind(b) for b in backbones} or {provenance.GENERATED_MAPS}
    if any(not b for _, b in pairs):
        models.add(provenance.GENERATED_MAPS)
    if kinds == {provenance.SYNTHETIC_DATA}:
        kind, data = "synthetic", "Synthetic stand-in data"
    elif kinds == {provenance.REAL_DATA}:
        kind, data = "real", "Real data"
    else:
        kind, data = "mixed", "Synthetic stand-in and real data"
    headline = f"{data}; models: {', '.join(sorted(models))}."
    lines = []
    if datasets:
        lines.append("Data: " + "; ".join(describe_dataset(d) for d in datasets) + ".")
    if backbones:
        lines.append("Models: " + "; ".join(describe_model(b, trained) for b in backbones) + ".")
    if provenance.GENERATED_MAPS in models:
        lines.append("Also generated post-ReLU feature maps (no dataset, no model).")
    return Banner(kind, headline, lines, failed_text)
