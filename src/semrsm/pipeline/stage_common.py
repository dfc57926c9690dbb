"""Helpers the experiment stages share, at the boundary between a run's config and the library: the RSM cache's
spec from the config, the configured kernel's RSM of a layer, the layers to use, the config columns of a results
table, per-layer progress, figure names, the seed column and bootstrap tables. (Not a stage itself: it registers
nothing.)"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from semrsm.metrics.bootstrap import FULL_SAMPLE, N_RESAMPLES, resample_counts, with_full_sample
from semrsm.pipeline.feature_store import FeatureSet
from semrsm.pipeline.rsm_cache import RSMSpec
from semrsm.pipeline.rsm_predict import layer_rsms

log = logging.getLogger(__name__)


def rsm_spec(cfg: DictConfig) -> RSMSpec:
    """The RSM cache's view of a run config: ``paths.cache_dir``, ``matcher`` (name and options, checked),
    ``kernel`` (its ``sigma`` for rbf), ``force``, ``features.progress_bar`` and how a matching is spread
    (``rsm.num_tiles``, ``rsm.threads``, ``rsm.trainer``)."""
    options = OmegaConf.to_container(cfg.matcher, resolve=True)
    name = options.pop("name")
    return RSMSpec(
        cache_dir=Path(cfg.paths.cache_dir),
        matcher=name,
        matcher_options=options,
        kernel=cfg.kernel.name,
        sigma=cfg.kernel.get("sigma") if cfg.kernel.name == "rbf" else None,
        force=bool(cfg.get("force", False)),
        progress=bool(OmegaConf.select(cfg, "features.progress_bar", default=True)),
        num_tiles=OmegaConf.select(cfg, "rsm.num_tiles", default=None),
        threads=OmegaConf.select(cfg, "rsm.threads", default=None),
        trainer=OmegaConf.to_container(OmegaConf.select(cfg, "rsm.trainer", default=OmegaConf.create())),
    )


def kernel_rsm(cfg: DictConfig, features: FeatureSet, layer: str, semantic: bool) -> np.ndarray:
    """The (N, N) RSM of ``layer`` under ``cfg.kernel``: semantic (``cfg.matcher``) if ``semantic``, else
    spatio-semantic; from the RSM cache, with a progress bar when ``cfg.features.progress_bar``."""
    return layer_rsms(rsm_spec(cfg), features, layer, semantic)[cfg.kernel.name]


def select_layers(features: FeatureSet, layers: Iterable[str] | None) -> list[str]:
    """The requested layers (an experiment's ``layers`` option) in the given order; None = all tapped layers."""
    if layers is None:
        return list(features.layers)
    chosen = [layers] if isinstance(layers, str) else list(layers)
    if not chosen:
        raise ValueError("layers: empty list; give layer names or null for all tapped layers")
    unknown = [layer for layer in chosen if layer not in features.layers]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; this backbone taps {list(features.layers)}")
    return chosen


def config_choice(cfg: DictConfig, group: str) -> str:
    """The option chosen for config ``group`` (e.g. "resnet18_tinyimagenet" for backbone=resnet18_tinyimagenet)
    inside a Hydra app, so results tables agree with sweep overrides; else the group's ``name``."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice is not None:
            return str(choice)
    return str(cfg[group].name)


def result_keys(cfg: DictConfig) -> dict[str, str]:
    """The dataset, backbone, kernel and matcher columns of a stage's results table."""
    return {group: config_choice(cfg, group) for group in ("dataset", "backbone", "kernel", "matcher")}


def layers_with_sizes(stage: str, features: FeatureSet, layers: Sequence[str]) -> Iterator[tuple[str, int]]:
    """(layer, spatial size) of each of ``layers`` in order, logging ``stage``'s progress before each."""
    for index, layer in enumerate(layers, 1):
        size = features.spatial_size(layer)
        log.info("%s: layer %s (%d/%d, %d positions)", stage, layer, index, len(layers), size)
        yield layer, size


def in_depth_order(features: FeatureSet, layers: Sequence[str]) -> list[str]:
    """``layers`` ordered as the backbone taps them (shallow to deep), the order of the summaries' ``last``."""
    order = {layer: index for index, layer in enumerate(features.layers)}
    return sorted(layers, key=order.__getitem__)


def figure_name(prefix: str, layer: str) -> str:
    """A file-safe figure name ``<prefix>_<layer>``."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_.-]', '_', layer)}"


def seed_key(cfg: DictConfig) -> dict[str, int]:
    """The ``seed`` column of a results row: the run's seed, which also names the trained model's seed
    (the trained-backbone configs load the checkpoint of ``seed``), so claims can resample seeds."""
    return {"seed": int(cfg.seed)}


def unit_counts(n: int) -> np.ndarray:
    """(1 + N_RESAMPLES, n) resampling counts of ``n`` independent units, the full sample first; the same
    for every stage and seed, so effects over the same units are paired."""
    return with_full_sample(resample_counts(n, N_RESAMPLES))


def bootstrap_table(keys: dict, n_units: int, statistics: dict[str, np.ndarray]) -> pd.DataFrame:
    """A bootstrap table: ``keys`` repeated, ``n_units``, ``replicate`` (FULL_SAMPLE, then 0 .. B-1) and one
    column per statistic (values in the order of ``unit_counts``' rows)."""
    length = len(next(iter(statistics.values())))
    frame = pd.DataFrame({key: [value] * length for key, value in keys.items()})
    frame["n_units"] = n_units
    frame["replicate"] = np.arange(FULL_SAMPLE, length + FULL_SAMPLE)
    for name, values in statistics.items():
        frame[name] = values
    return frame


def source_groups(features: FeatureSet) -> np.ndarray | None:
    """The source-image index of every sample (``meta["group"]``: views or crops of one photo), or None."""
    if not features.meta or any("group" not in meta for meta in features.meta):
        return None
    return np.asarray([meta["group"] for meta in features.meta], dtype=np.int64)
