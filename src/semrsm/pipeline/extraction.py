"""Feature extraction as a Lightning predict loop writing shards into the feature store."""

from __future__ import annotations

import logging
import re
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from semrsm.pipeline.feature_store import (
    DTYPES,
    FORMAT_VERSION,
    FeatureSet,
    ShardedFeatureWriter,
    feature_key,
    open_feature_set,
    store_lock,
)
from semrsm.storage import CorruptFileError

log = logging.getLogger(__name__)


class IndexedSamples(Dataset):
    """A contract dataset (``ds[i]`` -> dict with a PIL "image") seen through ``transform``, with sample indices."""

    def __init__(self, dataset: Dataset, transform: Callable[[Any], torch.Tensor], indices: Sequence[int]):
        self.dataset = dataset
        self.transform = transform
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, Any]:
        index = self.indices[position]
        sample = self.dataset[index]
        return {
            "index": index,
            "image": self.transform(sample["image"]),
            "id": sample["id"],
            "label": sample["label"],
            "objects": tuple(sample["objects"]),
            "meta": sample["meta"],
        }


def collate_indexed(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images and indices; keep ids, labels, objects and meta as per-sample lists.

    Not ``semrsm.data.collate_samples``: the store needs global sample indices and per-sample records."""
    return {
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.int64),
        "image": torch.stack([s["image"] for s in samples]),
        "samples": [{k: s[k] for k in ("id", "label", "objects", "meta")} for s in samples],
    }


def make_dataloader(
    dataset: Dataset,
    transform: Callable[[Any], torch.Tensor],
    indices: Sequence[int] | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
) -> DataLoader:
    """Ordered (unshuffled) loader over ``indices`` (default: all) of ``dataset`` with ``transform`` applied."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    indices = range(len(dataset)) if indices is None else indices
    return DataLoader(
        IndexedSamples(dataset, transform, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_indexed,
    )


class ExtractionDataModule(pl.LightningDataModule):
    """Predict-only data module: the dataset's samples ``indices`` through the backbone's preprocessing."""

    def __init__(
        self,
        dataset: Dataset,
        transform: Callable[[Any], torch.Tensor],
        indices: Sequence[int] | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
    ):
        super().__init__()
        self.dataset = dataset
        self.transform = transform
        self.indices = indices
        self.batch_size = batch_size
        self.num_workers = num_workers

    def predict_dataloader(self) -> DataLoader:
        return make_dataloader(self.dataset, self.transform, self.indices, self.batch_size, self.num_workers)


class FeatureExtractor(pl.LightningModule):
    """Runs the backbone on a batch and returns its tapped layers (and logits when it has a head)."""

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone
        self.layers = tuple(backbone.layers)

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        outputs = self.backbone(batch["image"])
        return {
            "features": {layer: outputs[layer] for layer in self.layers},
            "logits": outputs.get("logits") if self.backbone.has_head else None,
        }


class ShardWriterCallback(BasePredictionWriter):
    """Hands every predicted batch to a ``ShardedFeatureWriter``, which writes its rows into the final arrays and
    marks each full shard finished."""

    def __init__(self, writer: ShardedFeatureWriter):
        super().__init__(write_interval="batch")
        self.writer = writer

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        logits = prediction["logits"]
        self.writer.add(
            batch["index"].cpu().numpy(),
            {layer: _to_numpy(array) for layer, array in prediction["features"].items()},
            batch["samples"],
            logits=None if logits is None else _to_numpy(logits),
        )


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def describe_transform(transform: Callable[..., Any]) -> str:
    """Readable, run-independent description of a preprocessing transform (memory addresses removed)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transform))


def store_key_config(key_config: Mapping[str, Any], dtype: str) -> dict[str, Any]:
    """What the store entry of an extraction is keyed by: the caller's description, dtype and store format."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return {"format": FORMAT_VERSION, "dtype": dtype, "source": dict(key_config)}


def extract_features(
    dataset: Dataset | Callable[[], Dataset],
    backbone: torch.nn.Module | Callable[[], torch.nn.Module],
    store_root: str | Path,
    key_config: Mapping[str, Any],
    *,
    dtype: str = "float32",
    batch_size: int = 32,
    num_workers: int = 0,
    shard_size: int = 256,
    force: bool = False,
    progress_bar: bool = True,
) -> FeatureSet:
    """Features of every sample of ``dataset`` at ``backbone.layers``, from the store or computed into it.

    ``key_config`` must describe everything that determines the features: dataset config and subset, backbone
    name, weights identity and layers (the stage passes the resolved dataset and backbone configs). With ``dtype``
    and the store format it is hashed into the entry's key under ``store_root``. ``dataset`` and ``backbone`` may
    be zero-argument factories, called only when something has to be computed: a cache hit builds nothing. A
    complete entry is returned as is unless ``force``; an interrupted one resumes with its unfinished shards.
    The result's ``computed_samples`` says how many samples this call computed (0: cache hit).
    """
    full_config = store_key_config(key_config, dtype)
    root = Path(store_root)
    key = feature_key(full_config)
    with store_lock(root, key):
        if not force and (existing := _open_verified(root, key)) is not None:
            return existing
        # the backbone first: missing weights fail at once, before a (possibly generated) dataset is built
        backbone = backbone if isinstance(backbone, torch.nn.Module) else backbone()
        dataset = dataset if isinstance(dataset, Dataset) else dataset()
        if len(dataset) == 0:
            raise ValueError(f"dataset {getattr(dataset, 'name', dataset)!r} is empty")
        missing = [layer for layer in backbone.layers if layer not in backbone.layouts]
        if missing:
            raise ValueError(f"backbone declares no layout for layers {missing}; layouts: {backbone.layouts}")
        writer = ShardedFeatureWriter(
            root,
            full_config,
            num_samples=len(dataset),
            layouts={layer: backbone.layouts[layer] for layer in backbone.layers},
            dtype=dtype,
            shard_size=shard_size,
            has_logits=bool(backbone.has_head),
            details={"preprocess": describe_transform(backbone.preprocess.transform())},
        )
        if force:
            writer.discard_partial()
        pending = writer.pending_indices()
        if pending:
            _predict(dataset, backbone, writer, pending, batch_size, num_workers, progress_bar)
        features = writer.finalize()
        features.computed_samples = len(pending)
        return features


def _open_verified(root: Path, key: str) -> FeatureSet | None:
    """The complete entry ``key``, or None when there is none or it is corrupt (then it is removed, with a
    warning naming the bad file, to be computed again)."""
    try:
        return open_feature_set(root, key)
    except CorruptFileError as error:
        log.warning("feature store: %s; computing the feature set %s again", error, root / key)
        shutil.rmtree(root / key)
        return None


def _predict(dataset, backbone, writer, indices, batch_size, num_workers, progress_bar) -> None:
    data = ExtractionDataModule(dataset, backbone.preprocess.transform(), indices, batch_size, num_workers)
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress_bar,
        callbacks=[ShardWriterCallback(writer)],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.predict(FeatureExtractor(backbone), datamodule=data, return_predictions=False)
