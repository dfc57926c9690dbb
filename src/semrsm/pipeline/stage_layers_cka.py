"""The ``layers_cka`` stage (claim C6): how alike the semantic and the spatio-semantic RSM are, layer by layer.

For layers a, b it computes CKA(semantic RSM of a, spatio-semantic RSM of b). The diagonal (same layer) goes to
``tables/layers_cka.csv`` with each layer's spatial size, the full matrix to ``tables/layers_cka_matrix.csv``
(long format), and the diagonal on 1000 seeded half-samples of the images (the same for every layer)
to ``tables/layers_cka_bootstrap.csv``. C6 expects the diagonal to rise as the spatial size shrinks; claim C6
judges the slope of CKA against log2(spatial size) with its interval from those replicates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from scipy import stats

from semrsm.metrics.bootstrap import cka_replicates, half_sample_counts, with_full_sample
from semrsm.pipeline.stage_common import (
    bootstrap_table,
    in_depth_order,
    kernel_rsm,
    layers_with_sizes,
    result_keys,
    seed_key,
    select_layers,
)
from semrsm.pipeline.stage_extract import load_features
from semrsm.pipeline.stages import RunContext, StageOptions, register_stage
from semrsm.reporting.figures import cka_heatmap, metric_lines
from semrsm.similarity import cka

log = logging.getLogger(__name__)


def cka_matrix(
    semantic: Mapping[str, np.ndarray], spatio_semantic: Mapping[str, np.ndarray], debiased: bool = False
) -> np.ndarray:
    """(L, L) matrix: entry [a, b] = CKA(semantic[layer a], spatio_semantic[layer b]), layers in mapping order."""
    if list(semantic) != list(spatio_semantic):
        raise ValueError(
            f"layers differ: semantic {list(semantic)} vs spatio-semantic {list(spatio_semantic)}"
        )
    return np.array(
        [
            [cka(row, column, debiased=debiased) for column in spatio_semantic.values()]
            for row in semantic.values()
        ]
    )


def size_trend(sizes: Sequence[int], values: Sequence[float]) -> float:
    """Spearman correlation of spatial size vs value; NaN when the sizes (or values) do not vary."""
    if len(set(sizes)) < 2 or len(set(values)) < 2:
        return math.nan
    return float(stats.spearmanr(sizes, values).statistic)


def _matrix_table(matrix: np.ndarray, layers: Sequence[str], keys: Mapping[str, Any]) -> pd.DataFrame:
    rows = [
        {**keys, "semantic_layer": a, "spatio_semantic_layer": b, "cka": float(matrix[i, j])}
        for i, a in enumerate(layers)
        for j, b in enumerate(layers)
    ]
    return pd.DataFrame(rows)


def by_size(diagonal: pd.DataFrame) -> dict[int, float]:
    """Mean CKA per spatial size (layers of one size, e.g. a ViT's blocks, averaged), sizes ascending."""
    means = diagonal.groupby("spatial_size")["cka"].mean().sort_index()
    return {int(size): float(value) for size, value in means.items()}


def cka_summary(diagonal: pd.DataFrame, layers: Sequence[str]) -> dict[str, float]:
    """Layer-independent summary of the per-layer CKA (``layers`` in depth order): at the shallowest and the
    deepest layer, the mean, the Spearman correlation with spatial size, and ``cka/size_<S>`` per spatial
    size S (comparable across backbones at equal S)."""
    values = diagonal.set_index("layer")["cka"]
    return {
        "cka/first": float(values[layers[0]]),
        "cka/last": float(values[layers[-1]]),
        "cka/mean": float(values.mean()),
        "cka/spearman_spatial_size": size_trend(diagonal["spatial_size"].tolist(), values.tolist()),
        **{f"cka/size_{size}": value for size, value in by_size(diagonal).items()},
    }


@dataclass
class LayersCKAOptions(StageOptions):
    """The ``experiment`` options of this stage (conf/experiment/layers_cka.yaml holds their defaults)."""

    layers: Any  # null = every tapped layer, a name ("last" where the stage allows it) or a list
    debiased: bool


@register_stage("layers_cka", options=LayersCKAOptions, uses=("dataset", "backbone", "kernel", "matcher"))
def layers_cka(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """CKA of semantic vs spatio-semantic RSMs per layer and per layer pair; tables, heatmap and trend line."""
    debiased = cfg.experiment.debiased
    if not isinstance(debiased, bool):
        raise ValueError(f"experiment.debiased must be true or false, got {debiased!r}")
    features = load_features(cfg, force=ctx.force)
    layers = select_layers(features, cfg.experiment.layers)
    semantic, spatio_semantic, sizes = {}, {}, []
    for layer, size in layers_with_sizes("layers_cka", features, layers):
        sizes.append(size)
        semantic[layer] = kernel_rsm(cfg, features, layer, True)
        spatio_semantic[layer] = kernel_rsm(cfg, features, layer, False)
    matrix = cka_matrix(semantic, spatio_semantic, debiased)
    keys = {**result_keys(cfg), **seed_key(cfg)}
    diagonal = pd.DataFrame(
        [
            {**keys, "layer": layer, "layer_index": i, "spatial_size": size, "cka": float(matrix[i, i])}
            for i, (layer, size) in enumerate(zip(layers, sizes, strict=True))
        ]
    )
    ctx.logger.log_table("layers_cka", diagonal)
    ctx.logger.log_table("layers_cka_matrix", _matrix_table(matrix, layers, keys))
    counts = with_full_sample(half_sample_counts(len(features)))  # no repeated image: it would inflate CKA
    replicates = [
        bootstrap_table(
            {**keys, "layer": layer, "spatial_size": size},
            len(features),
            {"cka": cka_replicates(semantic[layer], spatio_semantic[layer], counts)},
        )
        for layer, size in zip(layers, sizes, strict=True)
    ]
    ctx.logger.log_table("layers_cka_bootstrap", pd.concat(replicates, ignore_index=True))
    title = f"{keys['backbone']} on {keys['dataset']} ({keys['kernel']}, {keys['matcher']})"
    labels = [f"{layer} (S={size})" for layer, size in zip(layers, sizes, strict=True)]
    heatmap = cka_heatmap(matrix, labels, labels, title=f"semantic (rows) vs spatio-semantic: {title}")
    ctx.logger.log_figure("cka_matrix", heatmap)
    if len(set(sizes)) > 1:
        lines = metric_lines(
            diagonal,
            x="spatial_size",
            y="cka",
            hue="kernel",
            title=f"CKA(semantic, spatio-semantic) by spatial size: {title}",
            x_label="spatial size S (positions per feature map)",
            y_label=f"CKA (n={len(features)} images)",
        )
        ctx.logger.log_figure("cka_vs_spatial_size", lines)
    else:  # one size (e.g. every ViT block): a line needs two; cka_matrix shows the per-layer values
        log.info("layers_cka: no cka_vs_spatial_size figure: every layer has spatial size %s", sizes[0])
    ctx.logger.log_history(
        [
            {"cka_by_size/spatial_size": size, "cka_by_size/cka": cka}
            for size, cka in by_size(diagonal).items()
        ]
    )
    return {
        "num_samples": len(features),
        "num_layers": len(layers),
        **cka_summary(diagonal, in_depth_order(features, layers)),
        "feature_key": features.key,
    }
