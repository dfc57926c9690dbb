"""Classifier training with Lightning, and loading the trained weights back by backbone config.

``train_classifier`` trains a ``Backbone`` with a head on a train split (random crop + flip), validates after every
epoch and returns the per-epoch history; ``save_checkpoint`` writes the wrapped model's state dict atomically;
``build_trained_backbone`` is the ``_target_`` of the backbone configs that load such a checkpoint.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import Logger
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchvision import transforms

from semrsm.models import Backbone, Preprocess, build_backbone
from semrsm.models.preprocess import INTERPOLATIONS, ToRGB

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
TRAIN_COMMAND = "python experiments/run.py experiment=train backbone=<this backbone config>"


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings: epochs, peak learning rate (one-cycle schedule), weight decay, optimizer, batch."""

    epochs: int = 5
    lr: float = 2e-3
    weight_decay: float = 0.05
    optimizer: str = "adamw"
    batch_size: int = 64

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


def train_transform(preprocess: Preprocess) -> transforms.Compose:
    """The backbone's evaluation preprocessing plus a random shift (reflect-padded crop) and horizontal flip."""
    size = preprocess.image_size
    return transforms.Compose(
        [
            ToRGB(),
            transforms.Resize(preprocess.resize_size, interpolation=INTERPOLATIONS[preprocess.interpolation]),
            transforms.CenterCrop(size),
            transforms.RandomCrop(size, padding=max(1, size // 8), padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(preprocess.mean, preprocess.std),
        ]
    )


class LabeledImages(Dataset):
    """(image tensor, label) pairs of a contract dataset (``ds[i]`` -> dict with "image" and "label")."""

    def __init__(self, dataset: Dataset, transform: Callable[[Any], Tensor]):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        sample = self.dataset[index]
        return self.transform(sample["image"]), sample["label"]


class ClassifierModule(pl.LightningModule):
    """Cross-entropy training of a backbone's logits; records one history row per validation epoch."""

    def __init__(self, backbone: Backbone, settings: TrainSettings):
        super().__init__()
        self.backbone = backbone
        self.settings = settings
        self.history: list[dict[str, float]] = []
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()  # per-sample means over an epoch
        self.val_acc = MulticlassAccuracy(num_classes=backbone.num_classes, average="micro")

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone(images)["logits"]

    def _check_labels(self, labels: Tensor) -> None:
        bad = labels[(labels < 0) | (labels >= self.backbone.num_classes)]
        if bad.numel():
            raise ValueError(
                f"label {int(bad[0])} is outside the {self.backbone.num_classes} classes of the backbone's head"
            )

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        self._check_labels(labels)
        loss = F.cross_entropy(self(images), labels)
        self.train_loss.update(loss.detach(), weight=len(labels))
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        self._check_labels(labels)
        logits = self(images)
        self.val_loss.update(F.cross_entropy(logits, labels), weight=len(labels))
        self.val_acc.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        row = {
            "epoch": self.current_epoch + 1,
            "train_loss": float(self.train_loss.compute()) if self.train_loss.update_called else 0.0,
            "val_loss": float(self.val_loss.compute()),
            "val_acc": float(self.val_acc.compute()),
        }
        for metric in (self.train_loss, self.val_loss, self.val_acc):
            metric.reset()
        self.history.append(row)
        self.log("val_acc", row["val_acc"], prog_bar=True)
        self.log_dict({"val_loss": row["val_loss"], "train_loss_epoch": row["train_loss"]})
        log.info(
            "epoch %d: train_loss %.4f, val_loss %.4f, val_acc %.3f",
            row["epoch"],
            row["train_loss"],
            row["val_loss"],
            row["val_acc"],
        )

    def configure_optimizers(self) -> dict[str, Any]:
        settings = self.settings
        if settings.optimizer == "adamw":
            optimizer = torch.optim.AdamW(
                self.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
            )
        else:
            optimizer = torch.optim.SGD(
                self.parameters(),
                lr=settings.lr,
                momentum=0.9,
                nesterov=True,
                weight_decay=settings.weight_decay,
            )
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=settings.lr,
            total_steps=int(self.trainer.estimated_stepping_batches),
            pct_start=0.2,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def train_classifier(
    backbone: Backbone,
    train_set: Dataset,
    val_set: Dataset,
    settings: TrainSettings,
    seed: int = 0,
    num_workers: int = 0,
    progress_bar: bool = True,
    logger: Logger | None = None,
) -> list[dict[str, float]]:
    """Train ``backbone`` (with a head) on ``train_set``, validating on ``val_set`` after every epoch.

    Deterministic for a given ``seed`` (shuffling, augmentation, dropout). Returns the history: one dict per
    epoch with epoch, train_loss, val_loss, val_acc. Leaves the backbone in eval mode. ``logger`` (e.g. the
    run's ``WandbLogger``) also receives the history: ``train_loss`` per step (every step up to 50 per epoch),
    ``val_loss``, ``val_acc`` and ``train_loss_epoch`` per epoch, with ``epoch`` and the global step.
    """
    if not backbone.has_head:
        raise ValueError(f"backbone '{backbone.name}' has no classification head to train (set num_classes)")
    for name, dataset in (("train", train_set), ("val", val_set)):
        if len(dataset) == 0:
            raise ValueError(f"the {name} split is empty")
    pl.seed_everything(seed, workers=True, verbose=False)
    evaluate = backbone.preprocess.transform()
    loaders = [
        DataLoader(
            LabeledImages(dataset, transform),
            batch_size=settings.batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(seed) if shuffle else None,
        )
        for dataset, transform, shuffle in (
            (train_set, train_transform(backbone.preprocess), True),
            (val_set, evaluate, False),
        )
    ]
    module = ClassifierModule(backbone, settings)
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        max_epochs=settings.epochs,
        logger=logger if logger is not None else False,
        log_every_n_steps=max(1, min(50, len(loaders[0]))),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress_bar,
        num_sanity_val_steps=0,
    )
    backbone.train()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, *loaders)
    backbone.cpu().eval()
    return module.history


def save_checkpoint(backbone: Backbone, path: str | os.PathLike) -> Path:
    """Write the wrapped model's state dict to ``path`` atomically (loadable by ``build_backbone``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save({key: value.detach().cpu() for key, value in backbone.model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return path


def build_trained_backbone(
    name: str, pretrained: bool | str = False, layers: Sequence[str] | None = None, **options
) -> Backbone:
    """``build_backbone`` for weights trained by the train stage: ``pretrained`` is the checkpoint path.

    A missing checkpoint raises FileNotFoundError saying how to train it. The model is built with its
    architecture options (e.g. a ViT's patch_size) and the checkpoint loaded strictly. ``pretrained=False``
    gives the random-init model (what the train stage starts from)."""
    if pretrained is not False:
        if not isinstance(pretrained, (str, os.PathLike)) or str(pretrained) == "":
            raise ValueError(f"pretrained must be a checkpoint path or false, got {pretrained!r}")
        pretrained = str(Path(pretrained).expanduser())
        if not Path(pretrained).is_file():
            raise FileNotFoundError(
                f"No trained checkpoint for backbone '{name}' at {pretrained}. Train it first: "
                f"`{TRAIN_COMMAND}` (e.g. backbone=resnet18_synthetic) writes it there; add force=true if "
                "that run had finished and the file was removed since."
            )
    return build_backbone(name, pretrained=pretrained, layers=layers, **options)
