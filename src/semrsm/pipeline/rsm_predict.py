"""A layer's RSMs for the stages: from the RSM cache, or matched as a Lightning prediction over tiles.

Every stage gets its RSMs from ``layer_rsms`` (``layer_scores`` for the matched scores). A layer's matching that is
not cached yet is cut into tiles (``semrsm.pipeline.tiles``): a ``TileDataset`` holds the tiles still to compute,
the ``TileMatcher`` module's ``predict_step`` matches one tile's pairs (products on the module's device, the
exact solver on this rank's CPU threads, overlapping one pair block's products with another's solving), the
``PartWriter`` callback stores each finished tile as a part file of the layer's cache entry, and after a barrier
rank zero assembles the entry, which the other ranks then load.

The ``Trainer`` comes from the spec's options (``rsm.trainer`` in the config): one CPU process by default;
``devices=2 strategy=ddp_spawn`` runs two CPU processes talking over gloo; under ``torchrun`` or SLURM's ``srun``
every launched process runs the same stage and the Trainer joins them (``strategy=ddp``); ``accelerator=gpu``
computes the products on each rank's GPU. Each rank takes every ``world_size``-th tile, so no tile is computed
twice, and the results are bit-identical to one process's on the same machine and BLAS (a pair's products do not
depend on the tiling; on a GPU they agree to float32 rounding). Each rank matches on its share of the cores
(cores // devices), or on ``threads`` threads when ``match_layer`` is given them (e.g. 1 per rank for a strong
scaling benchmark).
"""

from __future__ import annotations

import logging
import numbers
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from semrsm.pipeline import lineage
from semrsm.pipeline.feature_store import FeatureSet
from semrsm.pipeline.rsm_cache import (
    CacheEntry,
    RSMSpec,
    assemble_entry,
    cache_entry,
    check_trainer_options,
    compute_scores,
    load_scores,
    tiles_to_compute,
)
from semrsm.pipeline.tiles import Tile, save_part
from semrsm.similarity import MatchedScores, rsms_from_scores

log = logging.getLogger(__name__)

DEFAULT_TRAINER = {"accelerator": "cpu", "devices": 1, "num_nodes": 1}  # what an option left out means


class TileDataset(Dataset):
    """Tiles, one per item (a tile is the unit of work and of storage)."""

    def __init__(self, tiles: Sequence[Tile]):
        self.tiles = list(tiles)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> Tile:
        return self.tiles[index]


def check_threads(threads: Any) -> int | None:
    """``threads`` (matching threads per rank; None = the rank's share of the cores) checked; ValueError naming
    it unless None or a positive integer."""
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1
    ):
        raise ValueError(
            f"threads (matching threads per rank) must be a positive integer or None (cores // devices), "
            f"got threads={threads!r}"
        )
    return None if threads is None else int(threads)


class TileMatcher(pl.LightningModule):
    """Matches the pairs of one tile per prediction step for the cache entry ``entry`` of the feature set at
    ``features_dir``; each rank predicts every ``world_size``-th of ``tiles`` (rank zero with a bar over its pairs
    if ``progress``) on ``threads`` threads (None: the process's cores divided by the Trainer's devices)."""

    def __init__(
        self,
        entry: CacheEntry,
        features_dir: Path,
        tiles: Sequence[Tile],
        progress: bool = False,
        threads: int | None = None,
    ):
        super().__init__()
        self.entry, self.features_dir, self.tiles = entry, Path(features_dir), list(tiles)
        self.progress, self.threads = progress, check_threads(threads)
        self._features: FeatureSet | None = None
        self._reps: torch.Tensor | None = None

    @property
    def features(self) -> FeatureSet:
        """The feature set, opened once per process (ranks started by ``ddp_spawn`` open their own)."""
        if self._features is None:
            self._features = FeatureSet(self.features_dir)
        return self._features

    @property
    def reps(self) -> torch.Tensor:
        """The layer's features, read into memory once per process and put on the module's device."""
        if self._reps is None:
            array = np.array(self.features.layer(self.entry.layer))
            self._reps = torch.from_numpy(array).to(self.device)
        return self._reps

    def __getstate__(self) -> dict[str, Any]:  # a spawned rank reopens the memory-mapped features
        return {**super().__getstate__(), "_features": None, "_reps": None}

    def predict_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        return DataLoader(TileDataset(self.tiles[rank::world]), batch_size=None)

    def transfer_batch_to_device(self, batch: Tile, device: torch.device, dataloader_idx: int) -> Tile:
        return batch  # a tile names pairs; the features are on the device already (``reps``)

    def predict_step(self, tile: Tile, batch_idx: int = 0) -> tuple[Tile, MatchedScores]:
        workers = self.threads or max(1, len(os.sched_getaffinity(0)) // max(1, self.trainer.num_devices))
        log.info(
            "rank %d: layer %s, %s: tile %d of %d (%d pairs)",
            self.trainer.global_rank,
            self.entry.layer,
            self.entry.matcher,
            tile.index,
            tile.num_tiles,
            tile.num_pairs,
        )
        bar = self.progress and self.trainer.is_global_zero
        matched = compute_scores(
            self.entry, self.features, [tile], progress=bar, workers=workers, reps=self.reps
        )
        return tile, matched


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


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's set-up lines ("GPU available: ...") once per prediction would drown the stage's log."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = rank_zero.level
    rank_zero.setLevel(logging.WARNING)
    try:
        with (
            warnings.catch_warnings()
        ):  # the writer stores tiles, not batch indices, which Lightning cannot infer
            warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
            warnings.filterwarnings("ignore", message=r"The '\w+_dataloader' does not have many workers")
            yield
    finally:
        rank_zero.setLevel(level)


def make_trainer(trainer_options: Mapping[str, Any] | None = None) -> pl.Trainer:
    """The Lightning ``Trainer`` of a layer's prediction, from ``trainer_options`` (``TRAINER_OPTIONS``; default
    one CPU process): no logger, checkpoints or progress bar of its own (the engine shows one over the pairs)."""
    options = {**DEFAULT_TRAINER, **check_trainer_options(trainer_options or {})}
    with _quiet_lightning():
        return pl.Trainer(
            **options,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            use_distributed_sampler=False,
            callbacks=[PartWriter()],
        )


def predict_tiles(
    trainer: pl.Trainer,
    entry: CacheEntry,
    features: FeatureSet,
    tiles: Sequence[Tile],
    *,
    progress: bool = False,
    threads: int | None = None,
) -> None:
    """Compute the part files of ``tiles`` (of one partition of ``entry``'s pairs) on ``trainer``'s processes;
    returns after their barrier (every part is written). ``progress``: rank zero shows a bar over its pairs;
    ``threads``: each rank's matching threads (None: cores // devices)."""
    module = TileMatcher(entry, features.path, tiles, progress, threads)
    with _quiet_lightning():
        trainer.predict(module, return_predictions=False)
    trainer.strategy.barrier("rsm-tiles-written")


def match_layer(
    entry: CacheEntry,
    features: FeatureSet,
    num_tiles: int | None = None,
    trainer_options: Mapping[str, Any] | None = None,
    *,
    force: bool = False,
    progress: bool = False,
    threads: int | None = None,
) -> MatchedScores:
    """The entry's matched scores: cached, else its missing tiles (of finished parts' partition, else
    ``num_tiles`` tiles; None = one per process) predicted by the Trainer's processes on ``threads`` matching
    threads each (None: cores // devices), then assembled and cached by rank zero; ``force`` drops the entry and
    its parts first. Every rank of a distributed Trainer calls this and gets the scores. A one-process
    computation holds the entry's compute lock throughout, so a parallel job needing the same entry waits for
    it."""
    options = {**DEFAULT_TRAINER, **check_trainer_options(trainer_options or {})}
    threads = check_threads(threads)
    with entry.compute_lock() if _one_process(options) else nullcontext():
        return _match_layer(
            entry, features, num_tiles, options, force=force, progress=progress, threads=threads
        )


def _one_process(options: Mapping[str, Any]) -> bool:
    """Whether a Trainer with these options runs in this process alone (no launcher started others)."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return str(options["devices"]) == "1" and int(options["num_nodes"]) == 1 and not launched


def _match_layer(entry, features, num_tiles, options, *, force, progress, threads) -> MatchedScores:
    with entry.lock():
        if force:
            entry.path.unlink(missing_ok=True)
            shutil.rmtree(entry.parts_dir, ignore_errors=True)
        if entry.path.is_file() and (cached := load_scores(entry.path, len(features))) is not None:
            log.info("layer %s, %s: cached scores %s", entry.layer, entry.matcher, entry.path.name)
            return cached
    trainer = make_trainer(options)
    # every rank plans the same tiles: none writes a part before all have planned (the process group's first
    # barrier is its set-up inside the first prediction)
    trainer.strategy.barrier("rsm-tiles-planned")
    with entry.lock():
        missing = tiles_to_compute(entry, len(features), num_tiles or trainer.world_size)
    if not missing:  # every part finished: each rank assembles (or loads) the entry under its lock
        trainer = None
    else:
        predict_tiles(trainer, entry, features, missing, progress=progress, threads=threads)
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


def layer_scores(
    spec: RSMSpec,
    features: FeatureSet,
    layer: str,
    semantic: bool,
    *,
    force: bool | None = None,
    progress: bool | None = None,
) -> MatchedScores:
    """Matched scores of ``layer`` (semantic with ``spec.matcher`` if ``semantic``, else spatio-semantic), from
    the cache or predicted into it (``match_layer`` with the spec's tiles and Trainer). ``force`` (default
    ``spec.force``) recomputes every pair and drops the parts; ``progress`` (default ``spec.progress``) shows a
    bar over the tiles."""
    entry = cache_entry(spec, features, layer, semantic)
    lineage.note_rsm(entry.path, entry.key, features.key, layer=layer, matcher=entry.matcher)
    return match_layer(
        entry,
        features,
        spec.num_tiles,
        spec.trainer,
        force=spec.force if force is None else force,
        progress=spec.progress if progress is None else progress,
        threads=spec.threads,
    )


def layer_rsms(
    spec: RSMSpec,
    features: FeatureSet,
    layer: str,
    semantic: bool,
    kernels: Sequence[str] | None = None,
    *,
    force: bool | None = None,
    progress: bool | None = None,
) -> dict[str, np.ndarray]:
    """RSMs (N, N) float64 of ``layer`` per kernel name (default ``[spec.kernel]``), all from one cached
    matching: semantic (``spec.matcher``) if ``semantic``, else spatio-semantic. RBF uses ``spec.sigma`` when
    set, else the median heuristic."""
    names = [spec.kernel] if kernels is None else list(kernels)
    if not names:
        raise ValueError("kernels: empty list of kernel names")
    matched = layer_scores(spec, features, layer, semantic, force=force, progress=progress)
    result = rsms_from_scores(matched, names, spec.sigma)
    return {name: rsm.numpy() for name, rsm in result.rsms.items()}
