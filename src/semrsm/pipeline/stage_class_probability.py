"""The ``class_probability`` stage (claim C4, the paper's Table 1): representational similarity against the
Jensen-Shannon divergence (JSD) of the predicted class distributions.

The backbone's logits (from the feature store) give softmax class probabilities and the (N, N) JSD matrix. Per layer
the RSM of ``cfg.kernel`` is correlated with it over all pairs (Pearson and Spearman), for the invariant (semantic,
``cfg.matcher``) and the non-invariant (spatio-semantic, identity) RSM -> ``tables/class_probability.csv``. C4
expects both correlations negative and the invariant one more negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from omegaconf import DictConfig

from semrsm.metrics import jensen_shannon_matrix, rsm_correlation, softmax
from semrsm.pipeline.extract_stage import load_features
from semrsm.pipeline.rsm_cache import SPATIO_SEMANTIC, result_keys, select_layers
from semrsm.pipeline.stage_common import kernel_rsm, layers_with_sizes
from semrsm.pipeline.stages import RunContext, register_stage
from semrsm.reporting.figures import metric_bars

SCATTER_PAIRS = 2000  # pairs drawn per scatter panel
VARIANTS = (False, True)  # invariant: spatio-semantic first, the baseline


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
    invariant, invariant), Pearson r (over all pairs) in each title. Keys of both dicts: (layer, invariant)."""
    layers = list(dict.fromkeys(layer for layer, _ in similarities))
    figure = Figure(figsize=(7.0, 2.8 * len(layers)), layout="constrained")
    axes = figure.subplots(len(layers), len(VARIANTS), squeeze=False)
    for (layer, invariant), values in similarities.items():
        ax = axes[layers.index(layer), VARIANTS.index(invariant)]
        ax.scatter(divergences, values, s=4, alpha=0.4, linewidths=0)
        variant = "invariant" if invariant else "not invariant"
        ax.set_title(f"{layer}, {variant}: r = {correlations[layer, invariant]:.3f}", fontsize=9)
        ax.set_xlabel("JSD of class probabilities")
        ax.set_ylabel(f"{kernel} similarity")
        ax.grid(alpha=0.3)
    return figure


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Per method (pearson, spearman): mean over layers per variant, the number of layers where the invariant
    correlation is more negative, and ``c4_<method>``: in every layer both are negative and invariant is lower."""
    wide = table.pivot(index="layer", columns="invariant", values=["pearson", "spearman"])
    summary: dict[str, Any] = {}
    for method in ("pearson", "spearman"):
        invariant, baseline = wide[method, True], wide[method, False]
        summary[f"{method}_invariant_mean"] = float(invariant.mean())
        summary[f"{method}_not_invariant_mean"] = float(baseline.mean())
        summary[f"{method}_layers_more_negative"] = int((invariant < baseline).sum())
        summary[f"c4_{method}"] = bool(((invariant < baseline) & (invariant < 0) & (baseline < 0)).all())
    return summary


@register_stage("class_probability", options=("layers",))
def class_probability(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Pearson and Spearman between each layer's RSM and the JSD of predictions, invariant vs not."""
    if cfg.matcher.name == SPATIO_SEMANTIC:
        raise ValueError(
            "class_probability compares cfg.matcher (invariant) with identity (not invariant); "
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
    rows, sampled, correlations = [], {}, {}
    for layer, size in layers_with_sizes("class_probability", features, layers):
        for invariant in VARIANTS:
            rsm = kernel_rsm(cfg, features, layer, invariant)
            correlation = rsm_correlation(rsm, divergence)
            # the matcher column names cfg.matcher in every row: ``invariant`` says whether it was used
            keys = {**columns, "layer": layer, "spatial_size": size, "invariant": invariant}
            rows.append({**keys, **correlation.to_dict()})
            sampled[layer, invariant] = rsm[pair_rows, pair_cols]
            correlations[layer, invariant] = correlation.pearson
    table = pd.DataFrame(rows)
    kernel = columns["kernel"]
    ctx.logger.log_table("class_probability", table)
    ctx.logger.log_figure(
        "scatter", scatter_figure(sampled, divergence[pair_rows, pair_cols], correlations, kernel)
    )
    title = f"{columns['backbone']} on {columns['dataset']}: RSM vs JSD ({kernel}, {columns['matcher']})"
    ctx.logger.log_figure(
        "pearson", metric_bars(table, value="pearson", x="layer", hue="invariant", title=title)
    )
    return {
        "num_samples": len(features),
        "num_classes": int(features.logits.shape[1]),
        "num_layers": len(layers),
        **summarize(table),
        "feature_key": features.key,
    }
