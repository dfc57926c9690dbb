"""The ``extract`` stage, and ``load_features``: the configured dataset x backbone features every stage uses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from semrsm.pipeline import lineage
from semrsm.pipeline.config import build, file_identities
from semrsm.pipeline.extraction import extract_features
from semrsm.pipeline.feature_store import FeatureSet
from semrsm.pipeline.stage_common import config_choice
from semrsm.pipeline.stages import RunContext, register_stage


def feature_source(cfg: DictConfig) -> dict[str, Any]:
    """What determines the features of ``cfg``: resolved dataset and backbone configs, the files they name, and
    the seed when the backbone is randomly initialised."""
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    backbone = OmegaConf.to_container(cfg.backbone, resolve=True)
    source = {"dataset": dataset, "backbone": backbone, "files": file_identities(dataset, backbone)}
    if backbone.get("pretrained") is False:
        source["init_seed"] = cfg.seed
    return source


def feature_store_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.cache_dir) / "features"


def load_features(cfg: DictConfig, force: bool | None = None) -> FeatureSet:
    """Features of ``cfg.dataset`` through ``cfg.backbone`` (built only on a cache miss), per ``cfg.features``."""

    def build_backbone() -> torch.nn.Module:
        torch.manual_seed(cfg.seed)  # random-init weights are a function of the seed, which keys the store
        return build(cfg.backbone)

    options = cfg.features
    features = extract_features(
        lambda: build(cfg.dataset),
        build_backbone,
        feature_store_dir(cfg),
        feature_source(cfg),
        dtype=options.dtype,
        batch_size=options.batch_size,
        num_workers=options.num_workers,
        shard_size=options.shard_size,
        force=cfg.force if force is None else force,
        progress_bar=options.progress_bar,
    )
    weights = cfg.backbone.get("pretrained")
    lineage.note_features(
        features.path,
        features.key,
        weights if isinstance(weights, str) else None,
        dataset=config_choice(cfg, "dataset"),
        backbone=config_choice(cfg, "backbone"),
        layers=list(features.layers),
        num_samples=len(features),
    )
    return features


@register_stage("extract")
def extract(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Write the features of the configured dataset x backbone to the store; log counts, shapes and time."""
    start = time.perf_counter()
    features = load_features(cfg, force=ctx.force)
    seconds = time.perf_counter() - start
    rows = []
    for layer in features.layers:
        array = features.layer(layer)
        rows.append(
            {
                "layer": layer,
                "layout": features.layouts[layer],
                "shape": "x".join(map(str, array.shape)),
                "dtype": str(array.dtype),
                "megabytes": array.nbytes / 2**20,
            }
        )
    ctx.logger.log_table("features", pd.DataFrame(rows))
    return {
        "num_samples": len(features),
        "num_layers": len(features.layers),
        "has_logits": features.logits is not None,
        "computed_samples": features.computed_samples,
        "cache_hit": features.computed_samples == 0,
        "extract_time_s": seconds,
        "feature_key": features.key,
        "feature_dir": str(features.path),
    }
