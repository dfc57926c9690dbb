"""The ``translated_crops`` stage (claim C1, the paper's Fig. 1): crops of one image stay similar only when the
RSM is invariant to spatial permutations.

Per layer it compares the spatio-semantic RSM (flattened maps) with the semantic RSM (``cfg.matcher``) of
overlapping crops: heatmaps with samples ordered by source image, value distributions of same-image vs
different-image pairs, and their AUROC and means -> ``tables/crops_separation.csv``; the AUROC of both RSMs under
an image-level bootstrap (source images resampled, the same draws for both) -> ``tables/crops_bootstrap.csv``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from semrsm.metrics import group_separation
from semrsm.metrics.bootstrap import group_auroc_replicates
from semrsm.pipeline.feature_store import FeatureSet
from semrsm.pipeline.stage_common import (
    bootstrap_table,
    figure_name,
    in_depth_order,
    kernel_rsm,
    layers_with_sizes,
    result_keys,
    seed_key,
    select_layers,
    unit_counts,
)
from semrsm.pipeline.stage_extract import load_features
from semrsm.pipeline.stages import RunContext, StageOptions, register_stage
from semrsm.reporting.figures import rsm_heatmaps, value_distributions
from semrsm.reporting.wandb_conventions import layer_statistics

RSM_TYPES = ("spatio_semantic", "semantic")  # spatio-semantic first: the baseline, shown on the left


def crop_groups(features: FeatureSet, dataset: str = "dataset") -> np.ndarray:
    """Source-image index of every sample (``meta["group"]`` of a translated-crops view), int64 (N,).

    Raises ValueError if a sample has no group or no image contributes two crops.
    """
    missing = [features.ids[i] for i, meta in enumerate(features.meta) if "group" not in meta]
    if missing:
        raise ValueError(
            f"{dataset!r} is not a translated-crops view: samples {missing[:3]} have no meta 'group' "
            "(use dataset=synthetic_crops, photos_crops or tinyimagenet_crops)"
        )
    groups = np.asarray([meta["group"] for meta in features.meta], dtype=np.int64)
    counts = np.unique(groups, return_counts=True)[1]
    if counts.max() < 2 or len(counts) < 2:
        raise ValueError(
            f"{dataset!r}: need at least two source images and two crops of one image, got "
            f"{len(counts)} image(s) with at most {counts.max()} crop(s)"
        )
    return groups


def separation_rows(rsms: Mapping[str, np.ndarray], groups: np.ndarray, **keys: Any) -> list[dict[str, Any]]:
    """One row per RSM type: ``keys``, rsm, auroc (same-image vs different-image pairs), same/different stats."""
    rows = []
    for rsm_type, rsm in rsms.items():
        separation = group_separation(rsm, groups).to_dict()
        rows.append(
            {
                **keys,
                "rsm": rsm_type,
                "auroc": separation["auroc"],
                "same_mean": separation["same_mean"],
                "different_mean": separation["different_mean"],
                "same_std": separation["same_std"],
                "different_std": separation["different_std"],
                "n_same": separation["same_n"],
                "n_different": separation["different_n"],
            }
        )
    return rows


def separation_bootstrap(rsms: Mapping[str, np.ndarray], groups: np.ndarray, **keys: Any) -> pd.DataFrame:
    """The bootstrap table of both RSMs' AUROC (``auroc_<rsm type>``) over resampled source images."""
    images = int(groups.max()) + 1
    counts = unit_counts(images)
    statistics = {f"auroc_{name}": group_auroc_replicates(rsm, groups, counts) for name, rsm in rsms.items()}
    return bootstrap_table(keys, images, statistics)


def _layer_summary(table: pd.DataFrame, layers: Sequence[str]) -> dict[str, float]:
    """Layer-independent summary: AUROC of both RSMs and its gain at the deepest evaluated layer and averaged
    over layers, the least gain, and the same-image mean at the deepest layer. ``layers`` in depth order."""
    values = table.set_index(["layer", "rsm"])
    summary: dict[str, float] = {}
    for rsm in ("semantic", "spatio_semantic"):
        summary.update(
            layer_statistics(f"auroc/{rsm}", [values.loc[(layer, rsm), "auroc"] for layer in layers])
        )
        summary[f"same_mean/{rsm}/last"] = float(values.loc[(layers[-1], rsm), "same_mean"])
    gains = [
        values.loc[(layer, "semantic"), "auroc"] - values.loc[(layer, "spatio_semantic"), "auroc"]
        for layer in layers
    ]
    return {**summary, **layer_statistics("auroc_gain", gains), "auroc_gain/min": float(min(gains))}


@dataclass
class TranslatedCropsOptions(StageOptions):
    """The ``experiment`` options of this stage (conf/experiment/translated_crops.yaml holds their defaults)."""

    layers: Any  # null = every tapped layer, a name ("last" where the stage allows it) or a list


@register_stage(
    "translated_crops", options=TranslatedCropsOptions, uses=("dataset", "backbone", "kernel", "matcher")
)
def translated_crops(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Spatio-semantic vs semantic RSMs of translated crops per layer; table, heatmaps and distributions."""
    features = load_features(cfg, force=ctx.force)
    groups = crop_groups(features, cfg.dataset.name)
    order = np.argsort(groups, kind="stable")
    layers = select_layers(features, cfg.experiment.layers)
    columns = result_keys(cfg)
    rows, replicates = [], []
    for layer, size in layers_with_sizes("translated_crops", features, layers):
        rsms = {rsm_type: kernel_rsm(cfg, features, layer, rsm_type == "semantic") for rsm_type in RSM_TYPES}
        keys = {**columns, "layer": layer, "spatial_size": size, **seed_key(cfg)}
        rows += separation_rows(rsms, groups, **keys)
        replicates.append(separation_bootstrap(rsms, groups, **keys))
        title = (
            f"{columns['backbone']} {layer} (S={size}) on {columns['dataset']}: {columns['kernel']} kernel, "
            f"semantic RSM by {columns['matcher']} matching"
        )
        ordered = {name.replace("_", "-"): rsm[np.ix_(order, order)] for name, rsm in rsms.items()}
        value_label = f"{columns['kernel']} similarity"
        heatmaps = rsm_heatmaps(
            ordered,
            title=title,
            groups=groups[order],
            value_label=value_label,
            sample_label="crops by source image (boxes: same image)",
        )
        ctx.logger.log_figure(figure_name("rsm", layer), heatmaps)
        named = {name.replace("_", "-"): rsm for name, rsm in rsms.items()}
        distributions = value_distributions(
            named, groups, ("same image", "different image"), title=title, value_label=value_label
        )
        ctx.logger.log_figure(figure_name("distributions", layer), distributions)
    table = pd.DataFrame(rows)
    ctx.logger.log_table("crops_separation", table)
    ctx.logger.log_table("crops_bootstrap", pd.concat(replicates, ignore_index=True))
    return {
        "num_samples": len(features),
        "num_images": int(len(np.unique(groups))),
        "num_layers": len(layers),
        **_layer_summary(table, in_depth_order(features, layers)),
        "feature_key": features.key,
    }
