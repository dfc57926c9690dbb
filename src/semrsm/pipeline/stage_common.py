"""Helpers the experiment stages share: the configured kernel's RSM of a layer, per-layer progress, figure
names, the seed column and bootstrap tables. (Not a stage itself: it registers nothing.)"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from semrsm.metrics.bootstrap import FULL_SAMPLE, N_RESAMPLES, resample_counts, with_full_sample
from semrsm.pipeline.feature_store import FeatureSet
from semrsm.pipeline.rsm_cache import layer_rsms, spatial_size

log = logging.getLogger(__name__)


def kernel_rsm(cfg: DictConfig, features: FeatureSet, layer: str, invariant: bool) -> np.ndarray:
    """The (N, N) RSM of ``layer`` under ``cfg.kernel``: semantic (``cfg.matcher``) if ``invariant``, else
    spatio-semantic; from the RSM cache, with a progress bar when ``cfg.features.progress_bar``."""
    kernel = cfg.kernel.name
    progress = bool(cfg.features.progress_bar)
    return layer_rsms(cfg, features, layer, invariant, [kernel], progress=progress)[kernel]


def layers_with_sizes(stage: str, features: FeatureSet, layers: Sequence[str]) -> Iterator[tuple[str, int]]:
    """(layer, spatial size) of each of ``layers`` in order, logging ``stage``'s progress before each."""
    for index, layer in enumerate(layers, 1):
        size = spatial_size(features, layer)
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
