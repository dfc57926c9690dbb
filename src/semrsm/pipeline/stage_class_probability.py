"""The ``class_probability`` stage (claim C4, the paper's Table 1): representational similarity against the
Jensen-Shannon divergence (JSD) of the predicted class distributions.

The backbone's logits (from the feature store) give softmax class probabilities and the (N, N) JSD matrix. Per layer
the RSM of ``cfg.kernel`` is correlated with it over all pairs (Pearson and Spearman), for the semantic
(``cfg.matcher``) and the spatio-semantic (identity) RSM -> ``tables/class_probability.csv``, with
95 % intervals from resampling images (not pairs: the pairs of N images are not independent). The replicates,
paired between both RSMs -> ``tables/class_probability_bootstrap.csv``. Where the samples are views of source
photos (``meta["group"]``), same-source and different-source pairs are also reported separately (column
``pairs``). C4 expects both correlations negative and the semantic one more negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from omegaconf import DictConfig

from semrsm.metrics import jensen_shannon_matrix, rsm_correlation, softmax
from semrsm.metrics.bootstrap import interval, pair_correlation_replicates, rank_matrix
from semrsm.pipeline.rsm_cache import SPATIO_SEMANTIC
from semrsm.pipeline.stage_common import (
    bootstrap_table,
    in_depth_order,
    kernel_rsm,
    layers_with_sizes,
    result_keys,
    seed_key,
    select_layers,
    source_groups,
    unit_counts,
)
from semrsm.pipeline.stage_extract import load_features
from semrsm.pipeline.stages import RunContext, StageOptions, register_stage
from semrsm.reporting.figures import metric_bars
from semrsm.reporting.wandb_conventions import layer_statistics

ALL_PAIRS = "all"
SCATTER_PAIRS = 2000  # pairs drawn per scatter panel
VARIANTS = (False, True)  # semantic: spatio-semantic first, the baseline


def class_divergence(logits: np.ndarray) -> np.ndarray:
    """(N, N) Jensen-Shannon divergence (base 2) between the softmax class distributions of (N, K) logits."""
    return jensen_shannon_matrix(softmax(np.asarray(logits, dtype=np.float64)))


def sample_pairs(
    num_samples: int, max_pairs: int = SCATTER_PAIRS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a seeded random sample of at most ``max_pairs`` pairs i < j of ``num_samples`` samples."""
    rows, cols = np.triu_indices(num_samples, k=1)
    pick = np.sort(np.random.default_rng(seed).permutation(rows.size)[:max_pairs])
    return rows[pick], cols[pick]


def scatter_figure(
    similarities: dict[tuple[str, bool], np.ndarray],
    divergences: np.ndarray,
    correlations: dict[tuple[str, bool], float],
    kernel: str,
) -> Figure:
    """Similarity against JSD of the same sampled pairs: one row per layer, one column per variant (not
    semantic, semantic), Pearson r (over all pairs) in each title. Keys of both dicts: (layer, semantic)."""
    layers = list(dict.fromkeys(layer for layer, _ in similarities))
    figure = Figure(figsize=(7.0, 2.8 * len(layers)), layout="constrained")
    axes = figure.subplots(len(layers), len(VARIANTS), squeeze=False)
    for (layer, semantic), values in similarities.items():
        ax = axes[layers.index(layer), VARIANTS.index(semantic)]
        ax.scatter(divergences, values, s=4, alpha=0.4, linewidths=0)
        variant = "semantic" if semantic else "spatio-semantic"
        r = correlations[layer, semantic]
        ax.set_title(f"{layer}, {variant}: r = {r:.3f} (all pairs); {len(values)} pairs shown", fontsize=9)
        ax.set_xlabel("JSD of class probabilities")
        ax.set_ylabel(f"{kernel} similarity")
        ax.grid(alpha=0.3)
    return figure


def correlation_figure(table: pd.DataFrame, columns: dict[str, Any]) -> Figure:
    """Pearson and Spearman r (all pairs) per layer, semantic vs spatio-semantic, with their 95 % intervals;
    the number of images and pairs in the axis label."""
    long = pd.concat(
        [
            table.assign(
                method=name, r=table[method], low=table[f"{method}_low"], high=table[f"{method}_high"]
            )
            for method, name in (("pearson", "Pearson"), ("spearman", "Spearman"))
        ],
        ignore_index=True,
    )
    images, pairs = int(table["n_images"].iloc[0]), int(table["n_pairs"].iloc[0])
    title = (
        f"{columns['backbone']} on {columns['dataset']}: similarity ({columns['kernel']}) vs JSD of predictions; "
        f"semantic RSM by {columns['matcher']} matching; n = {images} images, {pairs} pairs"
    )
    return metric_bars(
        long,
        value="r",
        x="layer",
        hue="semantic",
        facet="method",
        interval=("low", "high"),
        title=title,
        value_label=f"r with JSD (n={images} images)",
        hue_label="RSM (95 % CI)",
        hue_names={True: "semantic", False: "spatio-semantic"},
    )


def summarize(table: pd.DataFrame, layers: Sequence[str]) -> dict[str, Any]:
    """Layer-independent summary over all pairs, per method (pearson, spearman): the correlation of both
    RSMs and their difference (semantic minus spatio-semantic; claim C4 expects it negative) at the deepest
    evaluated layer and averaged over layers, and the number of layers where the semantic one is more negative
    (descriptive; claim C4 is judged on the intervals). ``layers`` in depth order."""
    table = table[table["pairs"] == ALL_PAIRS] if "pairs" in table else table
    wide = table.pivot(index="layer", columns="semantic", values=["pearson", "spearman"]).loc[list(layers)]
    summary: dict[str, Any] = {}
    for method in ("pearson", "spearman"):
        semantic, spatio_semantic = wide[method, True], wide[method, False]
        summary.update(layer_statistics(f"{method}/semantic", semantic.tolist()))
        summary.update(layer_statistics(f"{method}/spatio_semantic", spatio_semantic.tolist()))
        summary.update(layer_statistics(f"{method}_difference", (semantic - spatio_semantic).tolist()))
        summary[f"{method}/layers_more_negative"] = int((semantic < spatio_semantic).sum())
    return summary


def pair_masks(groups: np.ndarray | None, num_samples: int) -> dict[str, np.ndarray | None]:
    """The pair subsets to correlate over: all pairs (None), and with source groups also same-source and
    different-source pairs, each kept only when it has at least 3 pairs."""
    masks: dict[str, np.ndarray | None] = {ALL_PAIRS: None}
    if groups is None:
        return masks
    same = groups[:, None] == groups[None, :]
    rows, cols = np.triu_indices(num_samples, k=1)
    for name, mask in (("same_source", same), ("different_source", ~same)):
        if mask[rows, cols].sum() >= 3:
            masks[name] = mask
    return masks


def correlation_bootstrap(
    rsms: dict[bool, np.ndarray], divergence: np.ndarray, mask: np.ndarray | None, counts: np.ndarray
) -> dict[str, np.ndarray]:
    """Replicates (full sample first) of Pearson and Spearman(RSM, JSD) per variant, images resampled by
    ``counts`` (the same draws for both variants); Spearman on the full sample's ranks."""
    ranked = rank_matrix(divergence, mask)
    statistics = {}
    for semantic, rsm in rsms.items():
        side = "semantic" if semantic else "spatio_semantic"
        statistics[f"pearson_{side}"] = pair_correlation_replicates(rsm, divergence, counts, mask)
        statistics[f"spearman_{side}"] = pair_correlation_replicates(
            rank_matrix(rsm, mask), ranked, counts, mask
        )
    return statistics


def interval_rows(statistics: dict[str, np.ndarray], n_images: int, **keys: Any) -> list[dict[str, Any]]:
    """One row per variant: ``keys``, semantic, pearson and spearman with their 95 % intervals."""
    rows = []
    for semantic in VARIANTS:
        side = "semantic" if semantic else "spatio_semantic"
        row = {**keys, "semantic": semantic, "n_images": n_images}
        for method in ("pearson", "spearman"):
            values = statistics[f"{method}_{side}"]
            found = interval(values[0], values[1:], n_images)
            row |= {method: found.estimate, f"{method}_low": found.low, f"{method}_high": found.high}
        rows.append(row)
    return rows


@dataclass
class ClassProbabilityOptions(StageOptions):
    """The ``experiment`` options of this stage (conf/experiment/class_probability.yaml holds their defaults)."""

    layers: Any  # null = every tapped layer, a name ("last" where the stage allows it) or a list


@register_stage(
    "class_probability", options=ClassProbabilityOptions, uses=("dataset", "backbone", "kernel", "matcher")
)
def class_probability(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Pearson and Spearman between each layer's RSM and the JSD of predictions, semantic vs spatio-semantic."""
    if cfg.matcher.name == SPATIO_SEMANTIC:
        raise ValueError(
            "class_probability compares cfg.matcher (semantic) with identity (spatio-semantic); "
            "matcher=identity leaves nothing to compare: choose e.g. matcher=hungarian or batch_optimal"
        )
    features = load_features(cfg, force=ctx.force)
    columns = result_keys(cfg)
    if features.logits is None:
        raise ValueError(
            f"class_probability needs a classifier: backbone '{columns['backbone']}' has no classification "
            "head, so its features carry no logits (use e.g. backbone=mobilenet_v2 or a trained "
            "resnet18_synthetic)"
        )
    divergence = class_divergence(features.logits)
    layers = select_layers(features, cfg.experiment.layers)
    pair_rows, pair_cols = sample_pairs(len(features), seed=cfg.seed)
    masks = pair_masks(source_groups(features), len(features))
    counts = unit_counts(len(features))
    rows, replicates, sampled, correlations = [], [], {}, {}
    for layer, size in layers_with_sizes("class_probability", features, layers):
        rsms = {semantic: kernel_rsm(cfg, features, layer, semantic) for semantic in VARIANTS}
        for pairs, mask in masks.items():
            # the matcher column names cfg.matcher in every row: ``semantic`` says whether it was used
            keys = {**columns, "layer": layer, "spatial_size": size, "pairs": pairs, **seed_key(cfg)}
            statistics = correlation_bootstrap(rsms, divergence, mask, counts)
            rows += interval_rows(statistics, len(features), **keys)
            replicates.append(bootstrap_table(keys, len(features), statistics))
        for semantic, rsm in rsms.items():
            sampled[layer, semantic] = rsm[pair_rows, pair_cols]
            correlations[layer, semantic] = rsm_correlation(rsm, divergence).pearson
    table = pd.DataFrame(rows)
    table["n_pairs"] = [
        len(features) * (len(features) - 1) // 2 if masks[p] is None else int(np.triu(masks[p], 1).sum())
        for p in table["pairs"]
    ]
    kernel = columns["kernel"]
    ctx.logger.log_table("class_probability", table)
    ctx.logger.log_table("class_probability_bootstrap", pd.concat(replicates, ignore_index=True))
    ctx.logger.log_figure(
        "scatter", scatter_figure(sampled, divergence[pair_rows, pair_cols], correlations, kernel)
    )
    ctx.logger.log_figure("pearson", correlation_figure(table[table["pairs"] == ALL_PAIRS], columns))
    return {
        "num_samples": len(features),
        "num_classes": int(features.logits.shape[1]),
        "num_layers": len(layers),
        **summarize(table, in_depth_order(features, layers)),
        "feature_key": features.key,
    }
