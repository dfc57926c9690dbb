"""The ``train`` stage: train a classifier backbone on a TinyImageNet-format dataset and save its checkpoint.

Training starts from a seeded random init, uses the dataset's train split (random crop + flip) and validates on its
val split after every epoch. The weights go to ``<paths.checkpoint_dir>/<experiment.checkpoint_name>`` (by
default ``<backbone.name>_<dataset.name>.pt``), where backbone configs such as ``resnet18_synthetic`` load them.
Logs tables/history.csv (epoch, train_loss, val_loss, val_acc), a history figure and the final val_acc.

The checkpoint is named by file name, not path, on purpose: the stage fingerprint hashes every existing file the
config names, so naming its own output file would make each finished run look stale.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from omegaconf import DictConfig
from torch.utils.data import Dataset, Subset

from semrsm.data import select_subset
from semrsm.pipeline import lineage
from semrsm.pipeline.config import build
from semrsm.pipeline.stage_common import config_choice
from semrsm.pipeline.stages import RunContext, StageOptions, register_stage
from semrsm.pipeline.training import TrainSettings, save_checkpoint, train_classifier
from semrsm.reporting.figures import metric_lines

log = logging.getLogger(__name__)

SETTINGS = ("epochs", "lr", "weight_decay", "optimizer", "batch_size")


def dataset_splits(cfg: DictConfig, max_train_samples: int | None) -> tuple[Dataset, Dataset, list[str]]:
    """(train split, val split, class names) of ``cfg.dataset``; a seeded subset of ``max_train_samples``
    training images when set."""
    if "split" not in cfg.dataset:
        raise ValueError(
            f"the train stage needs a dataset with train/val splits (TinyImageNet format, e.g. dataset=synthetic "
            f"or dataset=tinyimagenet); dataset '{cfg.dataset.get('name')}' has no `split` option"
        )
    train_set, val_set = build(cfg.dataset, split="train"), build(cfg.dataset, split="val")
    classes = list(train_set.classes)
    if max_train_samples is not None:
        indices = select_subset(len(train_set), max_train_samples, cfg.seed, "experiment.max_train_samples")
        train_set = Subset(train_set, indices)
    return train_set, val_set, classes


def checkpoint_path(cfg: DictConfig) -> Path:
    """``<paths.checkpoint_dir>/<experiment.checkpoint_name>``; the name must be a plain file name."""
    name = cfg.experiment.checkpoint_name
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"experiment.checkpoint_name must be a plain file name (no directory), got {name!r}")
    return Path(cfg.paths.checkpoint_dir) / name


def history_figure(history: pd.DataFrame) -> Figure:
    """Loss (train and val) and val accuracy per epoch, in two panels."""
    long = history.melt(id_vars="epoch", value_vars=["train_loss", "val_loss", "val_acc"], var_name="series")
    long["panel"] = long["series"].map(lambda s: "accuracy" if s.endswith("acc") else "cross-entropy loss")
    return metric_lines(
        long,
        x="epoch",
        y="value",
        hue="series",
        facet="panel",
        title="training history",
        y_label="loss (nats) or accuracy (fraction)",
    )


@dataclass
class TrainOptions(StageOptions):
    """The ``experiment`` options of training (conf/experiment/train.yaml holds their defaults; ``TrainSettings``
    checks the ranges)."""

    epochs: int
    lr: float
    weight_decay: float
    optimizer: str
    batch_size: int
    max_train_samples: int | None  # null: the whole train split
    checkpoint_name: str


@register_stage("train", options=TrainOptions, uses=("dataset", "backbone"))
def train(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Train ``cfg.backbone`` from scratch on ``cfg.dataset``; save the checkpoint; log the history."""
    options = cfg.experiment
    target = checkpoint_path(cfg)
    settings = TrainSettings(**{key: options[key] for key in SETTINGS})
    train_set, val_set, classes = dataset_splits(cfg, options.max_train_samples)
    torch.manual_seed(cfg.seed)
    backbone = build(cfg.backbone, pretrained=False)
    if backbone.num_classes != len(classes):
        raise ValueError(
            f"backbone '{backbone.name}' has a head of {backbone.num_classes} classes but dataset "
            f"'{cfg.dataset.get('name')}' has {len(classes)}: set backbone.num_classes={len(classes)}"
        )
    log.info(
        "training %s on %d images (%d classes, validating on %d) for %d epochs",
        backbone.name,
        len(train_set),
        len(classes),
        len(val_set),
        settings.epochs,
    )
    start = time.perf_counter()
    history = pd.DataFrame(
        train_classifier(
            backbone,
            train_set,
            val_set,
            settings,
            seed=cfg.seed,
            num_workers=cfg.features.num_workers,
            progress_bar=cfg.features.progress_bar,
            logger=ctx.logger.lightning_logger(),
        )
    )
    seconds = time.perf_counter() - start
    checkpoint = save_checkpoint(backbone, target)
    log.info("checkpoint written to %s", checkpoint)
    lineage.note_checkpoint(
        checkpoint,
        backbone=config_choice(cfg, "backbone"),
        dataset=config_choice(cfg, "dataset"),
        seed=int(cfg.seed),
        val_acc=float(history.iloc[-1]["val_acc"]),
    )
    ctx.logger.log_table("history", history)
    if history["epoch"].nunique() > 1:
        ctx.logger.log_figure("history", history_figure(history))
    else:
        log.info("train: no history figure for a single epoch (see tables/history.csv)")
    last = history.iloc[-1]
    return {
        "val_acc": float(last["val_acc"]),
        "val_loss": float(last["val_loss"]),
        "train_loss": float(last["train_loss"]),
        "train_time_s": seconds,
        "num_train_samples": len(train_set),
        "num_val_samples": len(val_set),
        "num_classes": len(classes),
        "checkpoint": str(checkpoint),
    }
