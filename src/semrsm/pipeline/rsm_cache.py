"""RSM cache: the engine's matched scores per (feature set, layer, matcher), reused by every stage and sweep.

One entry ``<cache_dir>/rsm/<key>.npz`` holds the matched inner products (N, N) and squared norms (N,) of one
layer under one matcher (``identity`` for the spatio-semantic RSM), so every kernel comes from one matching.
Entries are written atomically under an inter-process lock (parallel sweep jobs wait instead of recomputing),
keyed by the checksum of the layer's features as well as their config, and recomputed when ``force`` is set or
when the file is corrupt or truncated (a warning names it). An entry is assembled from its tile parts
``<cache_dir>/rsm/<key>.tiles/<i>-of-<n>.npz`` (see ``semrsm.pipeline.tiles``), which the Lightning prediction
of ``semrsm.pipeline.rsm_predict`` writes.

Every function takes an ``RSMSpec`` (where the cache is, the matcher of the semantic RSM, the kernel, how the
prediction is spread), which the stages build from their config (``semrsm.pipeline.stage_common.rsm_spec``): no
config object below this line.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semrsm.pipeline.feature_store import FeatureSet, feature_key, store_lock
from semrsm.pipeline.tiles import Tile, assemble_parts, most_complete_partition, pair_count
from semrsm.similarity import MatchedScores, get_matcher, matched_scores
from semrsm.similarity.engine import block_side
from semrsm.storage import CorruptFileError, atomic_save_npz, read_npz

log = logging.getLogger(__name__)

CACHE_FORMAT = (
    3  # 2: keyed by the layer's feature checksum, tiling-independent; 3: diagonal blocks triangular
)
SPATIO_SEMANTIC = "identity"
TRAINER_OPTIONS = ("accelerator", "devices", "num_nodes", "strategy")


def check_trainer_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The Trainer options of a layer's prediction (``accelerator``, ``devices``, ``num_nodes``, ``strategy``);
    ValueError naming unknown keys."""
    unknown = sorted(set(options) - set(TRAINER_OPTIONS))
    if unknown:
        raise ValueError(f"unknown trainer option(s) {unknown}; valid: {list(TRAINER_OPTIONS)}")
    return dict(options)


@dataclass(frozen=True)
class RSMSpec:
    """What the RSM cache needs to know of a run: the cache directory (entries under ``<cache_dir>/rsm``), the
    matcher of the semantic RSM with its options, the configured kernel (and RBF ``sigma``, None = median
    heuristic), whether to recompute cached entries (``force``) and to show progress bars, and how a layer's
    matching is spread: ``num_tiles`` tiles (None: one per process) predicted by a Lightning Trainer with the
    ``trainer`` options (``TRAINER_OPTIONS``; default one CPU process) on ``threads`` matching threads per process
    (None: its cores divided by its devices)."""

    cache_dir: Path
    matcher: str = "lapjv"
    matcher_options: Mapping[str, Any] = field(default_factory=dict)
    kernel: str = "cosine"
    sigma: float | None = None
    force: bool = False
    progress: bool = True
    num_tiles: int | None = None
    threads: int | None = None
    trainer: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        resolved = get_matcher(self.matcher).check_options(dict(self.matcher_options))
        object.__setattr__(self, "matcher_options", resolved)
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "trainer", check_trainer_options(self.trainer))
        tiles = self.num_tiles
        if tiles is not None and (isinstance(tiles, bool) or not isinstance(tiles, int) or tiles < 1):
            raise ValueError(f"num_tiles must be a positive integer or None (one per process), got {tiles!r}")

    @property
    def root(self) -> Path:
        """Directory of the RSM cache entries."""
        return self.cache_dir / "rsm"


def matcher_choice(spec: RSMSpec, semantic: bool) -> tuple[str, dict[str, Any]]:
    """(matcher name, resolved options): the spec's matcher for the semantic RSM, identity for the
    spatio-semantic."""
    if not isinstance(semantic, bool):
        raise ValueError(f"semantic must be True or False, got {semantic!r}")
    if not semantic:
        return SPATIO_SEMANTIC, {}
    return spec.matcher, dict(spec.matcher_options)


def rsm_cache_key(
    features_key: str, layer: str, matcher: str, options: Mapping[str, Any], layer_checksum: str
) -> str:
    """Cache key of one layer's matched scores: a hash of the feature set, the layer and its content checksum,
    the matcher and its options."""
    return feature_key(
        {
            "format": CACHE_FORMAT,
            "features": features_key,
            "layer": layer,
            "layer_checksum": layer_checksum,
            "matcher": matcher,
            "options": dict(options),
        }
    )


@dataclass(frozen=True)
class CacheEntry:
    """One layer's matched scores under one matcher: ``<root>/<key>.npz`` and its tile parts ``<key>.tiles/``."""

    root: Path
    key: str
    layer: str
    matcher: str
    options: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.root / f"{self.key}.npz"

    @property
    def parts_dir(self) -> Path:
        return self.root / f"{self.key}.tiles"

    def lock(self) -> AbstractContextManager[None]:
        """The inter-process lock every write of this entry or of its parts holds."""
        return store_lock(self.root, self.key)

    def compute_lock(self) -> AbstractContextManager[None]:
        """The lock a single-process computation of this entry holds throughout, so that parallel jobs needing
        the same entry wait for it instead of computing it again (the ranks of a distributed one share the work
        through their Trainer instead)."""
        return store_lock(self.root, f"{self.key}.compute")


def cache_entry(spec: RSMSpec, features: FeatureSet, layer: str, semantic: bool) -> CacheEntry:
    """The cache entry of ``layer``'s semantic (``spec.matcher``, if ``semantic``) or spatio-semantic scores."""
    if layer not in features.layers:
        raise ValueError(
            f"unknown layer {layer!r}; the feature set {features.key} has {list(features.layers)}"
        )
    matcher, options = matcher_choice(spec, semantic)
    key = rsm_cache_key(features.key, layer, matcher, options, features.layer_checksum(layer))
    return CacheEntry(spec.root, key, layer, matcher, options)


def save_scores(path: Path, matched: MatchedScores) -> None:
    """Atomically write ``matched`` (scores and squared norms) to the cache file ``path``."""
    atomic_save_npz(path, scores=matched.scores.numpy(), sq_norms=matched.sq_norms.numpy())


def load_scores(path: Path, num_samples: int) -> MatchedScores | None:
    """The cached scores, or None (with a warning naming the file) when it is corrupt or does not fit."""
    try:
        data = read_npz(path, ("scores", "sq_norms"))
        scores, sq_norms = data["scores"], data["sq_norms"]
        if scores.shape != (num_samples, num_samples) or sq_norms.shape != (num_samples,):
            raise CorruptFileError(path, f"scores of shape {scores.shape} for {num_samples} samples")
    except CorruptFileError as error:
        log.warning("RSM cache: %s; computing it again", error)
        return None
    return MatchedScores(torch.from_numpy(scores), torch.from_numpy(sq_norms))


def compute_scores(
    entry: CacheEntry,
    features: FeatureSet,
    tiles: Sequence[Tile] | None = None,
    *,
    progress: bool = True,
    workers: int | None = None,
    reps: torch.Tensor | None = None,
) -> MatchedScores:
    """The entry's matched scores of every pair, or only of the pairs of ``tiles`` (NaN elsewhere), on
    ``workers`` threads (default: every core). ``reps``: the layer's features already in memory (on the device
    to compute the products on), else read from ``features``."""
    if reps is None:
        reps = torch.from_numpy(np.array(features.layer(entry.layer)))  # the engine wants a writable array
    pair_blocks = None
    if tiles is not None:
        size = features.spatial_size(entry.layer)
        bytes_per_pair = size * size * max(4, reps.element_size())  # float16 is matched in float32
        align = block_side(size)
        pair_blocks = [block for tile in tiles for block in tile.pair_blocks(bytes_per_pair, align=align)]
    return matched_scores(
        reps, entry.matcher, blocks=pair_blocks, progress=progress, workers=workers, **entry.options
    )


def _log_missing(entry: CacheEntry, finished: Sequence[Tile], missing: Sequence[Tile]) -> None:
    if missing:
        log.info(
            "layer %s, %s: %d of %d tile parts finished; computing the missing tiles %s here",
            entry.layer,
            entry.matcher,
            len(finished),
            finished[0].num_tiles,
            [tile.index for tile in missing],
        )


def tiles_to_compute(entry: CacheEntry, num_samples: int, num_tiles: int) -> list[Tile]:
    """The tiles still missing: of the partition whose finished parts cover the most pairs, else all
    ``num_tiles`` tiles (at most one per pair). Hold ``entry.lock()``."""
    finished, missing = most_complete_partition(entry.parts_dir, num_samples)
    if finished:
        _log_missing(entry, finished, missing)
        return missing
    count = min(num_tiles, pair_count(num_samples))
    log.info("layer %s, %s: matching %d samples in %d tiles", entry.layer, entry.matcher, num_samples, count)
    return [Tile(num_samples, index, count) for index in range(count)]


def assemble_entry(entry: CacheEntry, features: FeatureSet, *, progress: bool = True) -> MatchedScores | None:
    """Save the entry assembled from its tile parts (those of the partition covering the most pairs; its
    missing tiles are computed here) and remove the parts; None when there are none. Hold ``entry.lock()``."""
    finished, missing = most_complete_partition(entry.parts_dir, len(features))
    if not finished:
        return None
    merged = assemble_parts(entry.parts_dir, finished)
    num_tiles = finished[0].num_tiles
    if missing:
        _log_missing(entry, finished, missing)
        merged = merged.merge(compute_scores(entry, features, missing, progress=progress))
    else:
        log.info("layer %s, %s: merging %d tile parts", entry.layer, entry.matcher, num_tiles)
    save_scores(entry.path, merged)
    shutil.rmtree(entry.parts_dir)
    return merged
