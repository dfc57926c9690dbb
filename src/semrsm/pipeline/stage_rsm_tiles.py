"""The ``rsm_tiles`` stage: the configured layers' semantic matching cut into tiles, spread either by a Lightning
``Trainer`` over processes (``experiment.tile_index=null``, the default) or by a launcher over jobs.

    python experiments/run.py experiment=rsm_tiles rsm.trainer.devices=2 rsm.trainer.strategy=ddp_spawn \
        dataset=... backbone=... matcher=...                                            # 2 CPU processes
    python experiments/run.py -m hydra/launcher=joblib experiment=rsm_tiles \
        experiment.tile_index=0,1,2,3 rsm.num_tiles=4 dataset=... backbone=... matcher=...

With the Trainer (``semrsm.pipeline.rsm_predict``, the same path every stage's RSMs take), every rank predicts every
world_size-th missing tile, each finished tile is stored as a part file, and rank zero assembles the layer's cache
entry. As a sweep, each job predicts its one tile (balanced and deterministic, see ``semrsm.pipeline.tiles``) with
a one-process Trainer into a part file of the layer's entry; a finished part or entry is not recomputed. The job
that writes a layer's last part assembles the whole entry, which every later stage (retrieval, layers_cka, ...) then
loads; a later stage also predicts the parts still missing itself. Jobs on different machines need a shared
``paths.cache_dir``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from semrsm.pipeline.feature_store import FeatureSet
from semrsm.pipeline.rsm_cache import RSMSpec, assemble_entry, cache_entry
from semrsm.pipeline.rsm_predict import make_trainer, match_layer, predict_tiles
from semrsm.pipeline.stage_common import result_keys, rsm_spec, select_layers
from semrsm.pipeline.stage_extract import load_features
from semrsm.pipeline.stages import RunContext, StageOptions, register_stage
from semrsm.pipeline.tiles import Tile, check_tile_choice, finished_tiles, pair_count

log = logging.getLogger(__name__)

CACHED, COMPUTED, MERGED = "cached", "computed", "merged"


def layer_tile(
    spec: RSMSpec,
    features: FeatureSet,
    layer: str,
    tile: Tile,
    *,
    force: bool = False,
    progress: bool = True,
) -> str:
    """Match ``tile``'s pairs of ``layer`` under ``spec.matcher`` into a part file of its cache entry; assemble
    the entry when this was its last missing part. Returns "cached" (part or entry already there: nothing
    done), "computed" (part written) or "merged" (part written, entry assembled). ``force`` recomputes the
    part and drops the finished entry, which the complete set of parts then replaces."""
    entry = cache_entry(spec, features, layer, True)
    part = entry.parts_dir / tile.file_name
    if not force and (entry.path.is_file() or part.is_file()):
        log.info(
            "layer %s, %s: tile %d of %d already finished", layer, entry.matcher, tile.index, tile.num_tiles
        )
        return CACHED
    if force:
        with entry.lock():
            entry.path.unlink(missing_ok=True)
            part.unlink(missing_ok=True)
    predict_tiles(make_trainer(), entry, features, [tile], progress=progress, threads=spec.threads)
    with entry.lock():
        if entry.path.is_file():  # assembled meanwhile by a stage that predicted the missing parts itself
            part.unlink(missing_ok=True)
            return CACHED
        finished = finished_tiles(entry.parts_dir, len(features)).get(tile.num_tiles, [])
        if len(finished) < tile.num_tiles:
            return COMPUTED
        assemble_entry(entry, features, progress=progress)
    return MERGED


@dataclass
class RSMTilesOptions(StageOptions):
    """The ``experiment`` options of this stage (conf/experiment/rsm_tiles.yaml holds their defaults)."""

    layers: Any  # null = every tapped layer, a name ("last" where the stage allows it) or a list
    tile_index: int | None  # null: every tile, spread by the Trainer


@register_stage(
    "rsm_tiles",
    options=RSMTilesOptions,
    uses=("dataset", "backbone", "matcher"),
)
def rsm_tiles(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Every tile of the chosen layers' semantic matching over the Trainer's processes (``tile_index`` null),
    or tile ``experiment.tile_index`` of ``rsm.num_tiles`` (one job of a sweep, which needs ``rsm.num_tiles``)."""
    experiment = cfg.experiment
    sweep_job = experiment.tile_index is not None
    spec = rsm_spec(cfg)
    num_tiles = spec.num_tiles
    if sweep_job:
        tile_index, num_tiles = check_tile_choice(experiment.tile_index, num_tiles, "experiment.", "rsm.")
    features = load_features(cfg, force=ctx.force)
    layers = select_layers(features, experiment.layers)
    keys = {group: name for group, name in result_keys(cfg).items() if group != "kernel"}
    rows = []
    for layer in layers:
        start = time.perf_counter()
        if sweep_job:
            tile = Tile(len(features), tile_index, num_tiles)
            status = layer_tile(spec, features, layer, tile, force=ctx.force, progress=spec.progress)
        else:
            entry = cache_entry(spec, features, layer, True)
            status = CACHED if entry.path.is_file() and not ctx.force else MERGED
            match_layer(
                entry,
                features,
                num_tiles,
                spec.trainer,
                force=ctx.force,
                progress=spec.progress,
                threads=spec.threads,
            )
        rows.append(
            {
                **keys,
                "layer": layer,
                "spatial_size": features.spatial_size(layer),
                "tile_index": tile_index if sweep_job else None,
                "num_tiles": num_tiles,  # None: one tile per process of the Trainer
                "num_pairs": tile.num_pairs if sweep_job else pair_count(len(features)),
                "status": status,
                "seconds": time.perf_counter() - start,
            }
        )
    table = pd.DataFrame(rows)
    ctx.logger.log_table("rsm_tiles", table)
    job = (
        {"tile_index": tile_index, "tile_pairs": tile.num_pairs}
        if sweep_job
        else {"devices": spec.trainer.get("devices", 1)}
    )
    return {
        "num_samples": len(features),
        "num_layers": len(layers),
        "num_tiles": num_tiles,
        **job,
        "layers_computed": int(table["status"].isin([COMPUTED, MERGED]).sum()),
        "layers_merged": int((table["status"] == MERGED).sum()),
        "feature_key": features.key,
    }
