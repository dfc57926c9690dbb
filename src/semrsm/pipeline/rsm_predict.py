"""One layer's semantic matching as a Lightning prediction over pair tiles, spread by a ``Trainer``.

A ``TileDataset`` holds the pair tiles of the layer still to compute (``semrsm.pipeline.tiles``); the
``PairTileMatcher`` module's ``predict_step`` matches one tile's pairs (the engine, on this rank's CPU threads);
the ``PartWriter`` callback stores each finished tile as a part file of the layer's RSM cache entry; after a
barrier, rank zero assembles the entry. The same code runs on one process (``devices=1``, the default) or on
several: ``strategy=ddp_spawn`` with ``devices=2`` on one machine (CPU processes talking over gloo). Each rank
takes every ``world_size``-th tile, so no tile is computed twice; the results are bit-identical to a whole
computation (the engine's products do not depend on the tiling).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from semrsm.pipeline.feature_store import FeatureSet
from semrsm.pipeline.rsm_cache import CacheEntry, assemble_entry, compute_scores, load_scores
from semrsm.pipeline.tiles import Tile, finished_tiles, save_part
from semrsm.similarity import MatchedScores

log = logging.getLogger(__name__)

TRAINER_OPTIONS = ("accelerator", "devices", "num_nodes", "strategy")


class TileDataset(Dataset):
    """Pair tiles, one per item (a tile is the unit of work and of storage)."""

    def __init__(self, tiles: Sequence[Tile]):
        self.tiles = list(tiles)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> Tile:
        return self.tiles[index]


class PairTileMatcher(pl.LightningModule):
    """Matches the pairs of one tile per prediction step for the cache entry ``entry`` of the feature set at
    ``features_dir``; each rank predicts every ``world_size``-th of ``tiles``."""

    def __init__(self, entry: CacheEntry, features_dir: Path, tiles: Sequence[Tile]):
        super().__init__()
        self.entry, self.features_dir, self.tiles = entry, Path(features_dir), list(tiles)
        self._features: FeatureSet | None = None

    @property
    def features(self) -> FeatureSet:
        """The feature set, opened once per process (ranks started by ``ddp_spawn`` open their own)."""
        if self._features is None:
            self._features = FeatureSet(self.features_dir)
        return self._features

    def __getstate__(self) -> dict[str, Any]:  # a spawned rank reopens the memory-mapped features
        return {**super().__getstate__(), "_features": None}

    def predict_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        return DataLoader(TileDataset(self.tiles[rank::world]), batch_size=None)

    def transfer_batch_to_device(self, batch: Tile, device: torch.device, dataloader_idx: int) -> Tile:
        return batch  # a tile names pairs; the features it reads stay memory-mapped on the host

    def predict_step(self, tile: Tile, batch_idx: int = 0) -> tuple[Tile, MatchedScores]:
        workers = max(1, len(os.sched_getaffinity(0)) // max(1, self.trainer.num_devices))
        log.info(
            "rank %d: layer %s, %s: tile %d of %d (%d pairs)",
            self.trainer.global_rank,
            self.entry.layer,
            self.entry.matcher,
            tile.index,
            tile.num_tiles,
            tile.num_pairs,
        )
        return tile, compute_scores(self.entry, self.features, [tile], progress=False, workers=workers)


class PartWriter(BasePredictionWriter):
    """Stores every predicted tile as a part file of the module's cache entry (atomic, under its lock)."""

    def __init__(self) -> None:
        super().__init__(write_interval="batch")

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0
    ):
        tile, matched = prediction
        with pl_module.entry.lock():
            save_part(pl_module.entry.parts_dir, tile, matched)


def check_trainer_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The Trainer options for the tile prediction (``accelerator``, ``devices``, ``num_nodes``, ``strategy``);
    ValueError naming unknown keys."""
    unknown = sorted(set(options) - set(TRAINER_OPTIONS))
    if unknown:
        raise ValueError(f"unknown trainer option(s) {unknown}; valid: {list(TRAINER_OPTIONS)}")
    return dict(options)


def predict_tiles(
    entry: CacheEntry,
    features: FeatureSet,
    tiles: Sequence[Tile],
    trainer_options: Mapping[str, Any] | None = None,
) -> pl.Trainer:
    """Compute the part files of ``tiles`` (of one partition of ``entry``'s pairs) with a Lightning ``Trainer``
    built from ``trainer_options``; returns the Trainer (after its processes' barrier: every part is written)."""
    options = {"accelerator": "cpu", "devices": 1, **check_trainer_options(trainer_options or {})}
    trainer = pl.Trainer(
        **options,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=[PartWriter()],
    )
    with (
        warnings.catch_warnings()
    ):  # the writer stores tiles, not batch indices, which Lightning cannot infer here
        warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
        trainer.predict(PairTileMatcher(entry, features.path, tiles), return_predictions=False)
    trainer.strategy.barrier("rsm-tiles-written")
    return trainer


def match_layer(
    entry: CacheEntry,
    features: FeatureSet,
    num_tiles: int,
    trainer_options: Mapping[str, Any] | None = None,
    *,
    force: bool = False,
) -> MatchedScores:
    """The entry's matched scores, computed as ``num_tiles`` tiles spread over the Trainer's processes (the tiles
    already finished are kept unless ``force``), then assembled and cached; a cached entry is returned as is."""
    with entry.lock():
        if force:
            entry.path.unlink(missing_ok=True)
            for part in entry.parts_dir.glob("*.npz"):
                part.unlink()
        if entry.path.is_file() and (cached := load_scores(entry.path, len(features))) is not None:
            return cached
        done = {tile.index for tile in finished_tiles(entry.parts_dir, len(features)).get(num_tiles, [])}
    missing = [Tile(len(features), i, num_tiles) for i in range(num_tiles) if i not in done]
    trainer = predict_tiles(entry, features, missing, trainer_options) if missing else None
    leader = trainer is None or trainer.is_global_zero
    if leader:
        with entry.lock():
            assembled = assemble_entry(entry, features, progress=False)
            if assembled is None and entry.path.is_file():  # assembled meanwhile by another process
                assembled = load_scores(entry.path, len(features))
        if assembled is None:
            raise RuntimeError(f"no tile parts of layer {entry.layer} were written to {entry.parts_dir}")
    if trainer is not None:
        trainer.strategy.barrier("rsm-entry-assembled")  # the other ranks then load rank zero's entry
    if leader:
        return assembled
    loaded = load_scores(entry.path, len(features))
    if loaded is None:
        raise RuntimeError(f"rank {trainer.global_rank}: no assembled entry at {entry.path}")
    return loaded
