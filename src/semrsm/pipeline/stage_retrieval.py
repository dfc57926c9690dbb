"""The ``retrieval`` stage (claims C2/C3, the paper's Fig. 3/4 and its Cityscapes table): does permutation
invariance retrieve images with the same objects?

Per layer, every image retrieves its most similar other image (leave-one-out nearest neighbour) by the
spatio-semantic RSM and by the semantic RSM (``cfg.matcher``) of the configured kernel (or of each of
``experiment.kernels``, all from the same matchings); F1@1 is the F1 between
the object-category sets of query and retrieved image, averaged over queries -> ``tables/retrieval.csv``; each
query's F1 under both RSMs -> ``tables/retrieval_queries.csv`` (the paired bootstrap of claims C2/C3 resamples
these); ``figures/retrievals_<layer>.png`` shows the top retrievals of a few queries under both RSMs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from torch.utils.data import Dataset

from semrsm.metrics import category_matrix, f1_at_1, set_f1, top_k_neighbors
from semrsm.pipeline.config import build, integer_option
from semrsm.pipeline.feature_store import FeatureSet
from semrsm.pipeline.rsm_predict import layer_rsms
from semrsm.pipeline.stage_common import (
    figure_name,
    in_depth_order,
    layers_with_sizes,
    result_keys,
    rsm_spec,
    seed_key,
    select_layers,
)
from semrsm.pipeline.stage_extract import load_features
from semrsm.pipeline.stages import RunContext, StageOptions, register_stage
from semrsm.reporting.figures import retrieval_grid
from semrsm.reporting.wandb_conventions import layer_statistics

LAST_LAYER = "last"
KERNELS = ("cosine", "linear", "rbf")
VARIANTS = {False: "spatio-semantic", True: "semantic"}  # semantic -> name; the baseline first


def object_sets(features: FeatureSet, dataset: str = "dataset") -> tuple[tuple[int, ...], ...]:
    """The annotated object categories of every sample; ValueError when no sample has any."""
    if not any(features.objects):
        raise ValueError(
            f"{dataset!r} has no object annotations, but retrieval scores the F1 of object-category sets: "
            "use a dataset with object sets (synthetic_scenes, synthetic_cityscapes, egoobjects, cityscapes)"
        )
    return features.objects


def retrieval_layers(features: FeatureSet, layers: str | Sequence[str] | None) -> list[str]:
    """``"last"``: the backbone's last tapped layer; None: every tapped layer; else the named layers."""
    return [features.layers[-1]] if layers == LAST_LAYER else select_layers(features, layers)


def random_f1(categories: Sequence[Sequence[int]]) -> float:
    """Chance level: the mean F1 between a query's categories and those of a uniformly drawn other sample."""
    multi_hot, _ = category_matrix(categories)
    counts = multi_hot.astype(np.float64)
    intersections = counts @ counts.T
    totals = counts.sum(axis=1)[:, None] + counts.sum(axis=1)[None, :]
    f1 = np.divide(2 * intersections, totals, out=np.ones_like(totals), where=totals > 0)
    n = len(categories)
    return float((f1.sum() - np.trace(f1)) / (n * (n - 1)))


def query_choice(num_samples: int, num_queries: int, seed: int) -> np.ndarray:
    """``num_queries`` distinct query indices (all when fewer samples), drawn with ``seed``, ascending."""
    count = min(num_samples, num_queries)
    return np.sort(np.random.default_rng(seed).choice(num_samples, size=count, replace=False))


def category_label(objects: Sequence[int], classes: Sequence[str] | None, limit: int = 2) -> str:
    """Short label of a category set: names (or ids) of its first ``limit`` categories, "+n" for the rest."""
    names = [classes[o] if classes is not None and 0 <= o < len(classes) else str(o) for o in objects]
    more = f" +{len(names) - limit}" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more if names else "(none)"


def sample_image(dataset: Dataset, features: FeatureSet, index: int) -> np.ndarray:
    """The image of stored sample ``index`` (the store keeps the dataset's order), checked by its id."""
    sample = dataset[index]
    if sample["id"] != features.ids[index]:
        raise ValueError(
            f"dataset sample {index} has id {sample['id']!r} but the stored features have "
            f"{features.ids[index]!r}: the dataset changed since extraction; rerun with force=true"
        )
    return np.asarray(sample["image"])


def retrievals_figure(
    rsms: Mapping[bool, np.ndarray],
    queries: np.ndarray,
    dataset: Dataset,
    features: FeatureSet,
    top_k: int,
):
    """Two rows per query (spatio-semantic, then semantic): the query and its ``top_k`` retrievals, titled
    with their categories and F1 against the query."""
    classes = getattr(dataset, "classes", None)
    objects = features.objects
    images: dict[int, np.ndarray] = {}

    def image(index: int) -> np.ndarray:
        if index not in images:
            images[index] = sample_image(dataset, features, index)
        return images[index]

    top = {semantic: top_k_neighbors(rsm, k=top_k) for semantic, rsm in rsms.items()}
    shown, retrieved, scores, query_titles, retrieved_titles = [], [], [], [], []
    for query in queries:
        for semantic, name in VARIANTS.items():
            neighbors, similarity = top[semantic]
            row = neighbors[query]
            shown.append(image(query))
            retrieved.append([image(i) for i in row])
            scores.append(similarity[query])
            query_titles.append(f"{name}\n{category_label(objects[query], classes)}")
            retrieved_titles.append(
                [
                    f"{category_label(objects[i], classes)}\nF1 {set_f1(objects[query], objects[i]):.2f}"
                    for i in row
                ]
            )
    return retrieval_grid(shown, retrieved, np.array(scores), query_titles, retrieved_titles, panel_size=2.0)


def retrieval_rows(
    rsms: Mapping[bool, np.ndarray], categories, **keys: Any
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """One row per variant (semantic False/True): ``keys``, semantic, f1_at_1, n_queries and the mean
    similarity of the retrieved neighbours; and the per-query table: ``keys``, query, f1_semantic,
    f1_spatio_semantic and both retrieved neighbours."""
    rows, per_query = [], {}
    for semantic, rsm in rsms.items():
        result = f1_at_1(rsm, categories)
        name = "semantic" if semantic else "spatio_semantic"
        per_query[f"f1_{name}"] = result.per_query
        per_query[f"neighbor_{name}"] = result.neighbor
        rows.append(
            {
                **keys,
                "semantic": semantic,
                "f1_at_1": result.mean,
                "n_queries": len(rsm),
                "neighbor_similarity_mean": float(result.neighbor_similarity.mean()),
            }
        )
    queries = pd.DataFrame({"query": np.arange(len(categories)), **per_query})
    for column, value in reversed(keys.items()):
        queries.insert(0, column, value)
    return rows, queries


def retrieval_kernels(cfg: DictConfig) -> list[str]:
    """``experiment.kernels`` (null: the configured kernel), checked against conf/kernel's options."""
    kernels = cfg.experiment.get("kernels")
    if kernels is None:
        return [cfg.kernel.name]
    chosen = [kernels] if isinstance(kernels, str) else list(kernels)
    unknown = [k for k in chosen if k not in KERNELS]
    if not chosen or unknown or len(set(chosen)) != len(chosen):
        raise ValueError(f"experiment.kernels must list distinct kernels of {KERNELS}, got {chosen}")
    return chosen


def _summary(table: pd.DataFrame, layers: Sequence[str]) -> dict[str, Any]:
    """Layer-independent summary (``semrsm.reporting.wandb_conventions``): per kernel, F1@1 of both RSMs at
    the deepest evaluated layer and the gain (semantic minus spatio-semantic) there and averaged over the
    layers; the least and largest gain over layers and kernels. ``layers`` in depth order."""
    wide = table.pivot_table(index=["layer", "kernel"], columns="semantic", values="f1_at_1")
    gains = wide[True] - wide[False]
    summary: dict[str, Any] = {}
    for kernel in dict.fromkeys(table["kernel"]):
        last = (layers[-1], kernel)
        summary[f"f1_at_1/semantic/{kernel}/last"] = float(wide.loc[last, True])
        summary[f"f1_at_1/spatio_semantic/{kernel}/last"] = float(wide.loc[last, False])
        summary.update(layer_statistics(f"f1_gain/{kernel}", [gains[layer, kernel] for layer in layers]))
    return {**summary, "f1_gain/min": float(gains.min()), "f1_gain/max": float(gains.max())}


@dataclass
class RetrievalOptions(StageOptions):
    """The ``experiment`` options of this stage (conf/experiment/retrieval.yaml holds their defaults)."""

    layers: Any  # null = every tapped layer, a name ("last" where the stage allows it) or a list
    queries_shown: int
    top_k: int
    kernels: list[str] | None


@register_stage(
    "retrieval",
    options=RetrievalOptions,
    uses=("dataset", "backbone", "kernel", "matcher"),
    choices=lambda cfg: {"kernel": retrieval_kernels(cfg)},
)
def retrieval(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Leave-one-out F1@1 of spatio-semantic vs semantic RSMs per layer; table and top-k retrieval figures."""
    top_k = integer_option(cfg.experiment.top_k, "experiment.top_k")
    queries_shown = integer_option(cfg.experiment.queries_shown, "experiment.queries_shown", 0)
    features = load_features(cfg, force=ctx.force)
    categories = object_sets(features, cfg.dataset.name)
    if top_k >= len(features):
        raise ValueError(f"experiment.top_k={top_k} needs more than {top_k} samples, got {len(features)}")
    layers = retrieval_layers(features, cfg.experiment.layers)
    dataset = build(cfg.dataset) if queries_shown else None
    queries = query_choice(len(features), queries_shown, cfg.seed)
    kernels = retrieval_kernels(cfg)
    columns = result_keys(cfg)
    chance = random_f1(categories)
    spec = rsm_spec(cfg)
    rows, per_query = [], []
    for layer, size in layers_with_sizes("retrieval", features, layers):
        by_variant = {inv: layer_rsms(spec, features, layer, inv, kernels) for inv in VARIANTS}
        for kernel in kernels:
            rsms = {semantic: by_variant[semantic][kernel] for semantic in VARIANTS}
            keys = {**columns, "kernel": kernel, "layer": layer, "spatial_size": size, **seed_key(cfg)}
            layer_rows, queries_table = retrieval_rows(rsms, categories, **keys)
            rows += [{**row, "f1_random": chance} for row in layer_rows]
            per_query.append(queries_table)
            if queries_shown:
                figure = retrievals_figure(rsms, queries, dataset, features, top_k)
                title = f"{columns['backbone']} {layer} on {columns['dataset']}"
                figure.suptitle(f"{title} ({kernel}, {columns['matcher']})")
                name = "retrievals" if len(kernels) == 1 else f"retrievals_{kernel}"
                ctx.logger.log_figure(figure_name(name, layer), figure)
    table = pd.DataFrame(rows)
    ctx.logger.log_table("retrieval", table)
    ctx.logger.log_table("retrieval_queries", pd.concat(per_query, ignore_index=True))
    return {
        "num_samples": len(features),
        "num_layers": len(layers),
        "f1_random": chance,
        **_summary(table, in_depth_order(features, layers)),
        "feature_key": features.key,
    }
