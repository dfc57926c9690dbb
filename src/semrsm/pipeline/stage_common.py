"""Helpers the experiment stages share: the configured kernel's RSM of a layer, per-layer progress, figure
names. (Not a stage itself: it registers nothing.)"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence

import numpy as np
from omegaconf import DictConfig

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


def figure_name(prefix: str, layer: str) -> str:
    """A file-safe figure name ``<prefix>_<layer>``."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_.-]', '_', layer)}"
