"""The ``matchers`` stage (claim C5, the paper's Fig. 5): runtime per pair and matching quality per matcher.

On the configured dataset x backbone features (each selected layer at its own spatial size, optionally resized
to more sizes) and optionally on the engine's synthetic post-ReLU maps, a fixed number of sampled pairs per
size is matched by every matcher, one pair at a time (``semrsm.similarity.matcher_quality.matcher_pairs``): the raw matcher, without
the registry's fallback to the identity, its CPU time, its matched score, the identity's and the optimum of an
exact reference matcher -> ``tables/matchers_pairs.csv`` (claim C5 resamples these pairs). Per matcher and size:
median CPU ms, ratio to the optimum (raw, and as used with the fallback), the shift-invariant quality
(m - m_identity) / (m_opt - m_identity) and the fallback rate -> ``tables/matchers.csv``, and one
runtime/quality figure per source.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from semrsm.pipeline.config import integer_option
from semrsm.pipeline.stage_common import result_keys, select_layers
from semrsm.pipeline.stage_extract import load_features
from semrsm.pipeline.stages import RunContext, StageOptions, register_stage
from semrsm.reporting.claims import check_matchers
from semrsm.reporting.figures import matcher_tradeoff
from semrsm.similarity import MATCHERS, get_matcher
from semrsm.similarity.matcher_quality import matcher_pairs
from semrsm.similarity.workloads import RESNET_STAGES, smooth_relu_features

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"


def matcher_options(
    requested: Iterable[str | Mapping[str, Any]] | None, configured: Mapping[str, Any]
) -> dict:
    """Matcher name -> options (checked; unset ones keep the matcher's defaults), in order: the ``requested``
    entries (a name, or a mapping with ``name`` and options; None = every registered matcher), and the
    configured matcher (``cfg.matcher``), whose options apply to its entry, appended when missing.
    Raises ValueError on unknown or repeated names and bad options."""
    entries = list(MATCHERS) if requested is None else list(requested)
    if not entries:
        raise ValueError("experiment.matchers: empty list; give matcher names or null for all registered")
    chosen: dict[str, dict] = {}
    for entry in entries:
        options = {"name": entry} if isinstance(entry, str) else dict(entry)
        if "name" not in options:
            raise ValueError(f"experiment.matchers entry {entry!r} has no 'name'")
        name = options.pop("name")
        if name in chosen:
            raise ValueError(f"experiment.matchers lists {name!r} twice; give each matcher once")
        chosen[name] = options
    configured = dict(configured)
    name = configured.pop("name")
    chosen[name] = {**configured, **chosen.get(name, {})}
    for name, options in chosen.items():
        get_matcher(name).check_options(options)  # fail now, before any feature is extracted
    return chosen


def exact_reference(name: str) -> str:
    """``name`` if it is a registered exact matcher (its matching is the optimum), else ValueError."""
    if not get_matcher(name).exact:
        exact = sorted(n for n, matcher in MATCHERS.items() if matcher.exact)
        raise ValueError(f"experiment.reference must be an exact matcher {exact}, got {name!r}")
    return name


def square_sizes(sizes: Iterable[int] | None, what: str) -> list[int]:
    """Distinct spatial sizes that are perfect squares (side x side maps), in the given order."""
    chosen = []
    for size in [] if sizes is None else sizes:
        size = integer_option(size, what)
        if math.isqrt(size) ** 2 != size:
            raise ValueError(f"{what}: {size} is not a square spatial size (e.g. 49, 196, 784, 3136)")
        if size not in chosen:
            chosen.append(size)
    return chosen


def sample_indices(num_samples: int, n_pairs: int, seed: int) -> np.ndarray:
    """2 * n_pairs distinct sample indices, drawn with ``seed``; pair k is (indices[2k], indices[2k + 1])."""
    if num_samples < 2 * n_pairs:
        raise ValueError(
            f"experiment.pairs={n_pairs} needs {2 * n_pairs} distinct samples, the dataset has {num_samples}"
        )
    return np.random.default_rng(seed).choice(num_samples, size=2 * n_pairs, replace=False)


def resize_maps(maps: np.ndarray, layout: str, size: int) -> torch.Tensor:
    """Feature maps (N, C, H, W), or square token grids (N, T, D), resized (bilinear, antialiased) to
    (N, C, side, side) with side * side = ``size``."""
    tensor = torch.from_numpy(np.asarray(maps, dtype=np.float32))
    if layout == "NTD":
        side = math.isqrt(tensor.shape[1])
        if side * side != tensor.shape[1]:
            raise ValueError(f"cannot resize {tensor.shape[1]} tokens: not a square grid")
        tensor = tensor.transpose(1, 2).reshape(tensor.shape[0], tensor.shape[2], side, side)
    elif layout != "NCHW":
        raise ValueError(f"unknown layout {layout!r}; expected NCHW or NTD")
    side = math.isqrt(size)
    return torch.nn.functional.interpolate(
        tensor, size=(side, side), mode="bilinear", antialias=True, align_corners=False
    )


def pair_table(
    reps: torch.Tensor,
    size: int,
    options: Mapping[str, dict],
    n_pairs: int,
    reference: str,
    repeats: int,
    /,
    **keys: Any,
) -> pd.DataFrame:
    """``matcher_pairs`` rows of one spatial size with ``keys``, spatial_size, window (batch_optimal's) and
    reference."""
    rows = matcher_pairs(reps, options, n_pairs, reference, repeats)
    table = pd.DataFrame(rows)
    table["window"] = [row["options"].get("window") for row in rows]
    table["options"] = [json.dumps(row["options"], sort_keys=True) for row in rows]
    for column, value in reversed({**keys, "spatial_size": size, "reference": reference}.items()):
        table.insert(0, column, value)
    return table


def table_rows(pairs: pd.DataFrame, reference: str, **keys: Any) -> list[dict[str, Any]]:
    """Contract rows from the pair rows of one spatial size: ``keys``, spatial_size, matcher, options, exact,
    ms_per_pair (median CPU ms of the raw matcher), quality_ratio (mean raw score / optimum) and its min,
    quality_ratio_used (with the fallback to the identity), quality (mean shift-invariant quality),
    fallback_rate, speedup over the reference's median time, and bound_ratio (certificate / optimum)."""
    reference_ms = pairs.loc[pairs["matcher"] == reference, "cpu_ms"].median()
    rows = []
    for matcher, group in pairs.groupby("matcher", sort=False):
        ratio = group["score"] / group["optimum"]
        used = np.maximum(group["score"], group["identity_score"]) / group["optimum"]
        ms = float(group["cpu_ms"].median())
        rows.append(
            {
                **keys,
                "spatial_size": int(group["spatial_size"].iloc[0]),
                "matcher": matcher,
                "options": group["options"].iloc[0],
                "exact": get_matcher(matcher).exact,
                "ms_per_pair": ms,
                "quality_ratio": float(ratio.mean()),
                "quality_ratio_min": float(ratio.min()),
                "quality_ratio_used": float(used.mean()),
                "quality": float(group["quality"].mean()),
                "fallback_rate": float(group["fallback"].mean()),
                "reference": reference,
                "speedup_vs_reference": float(reference_ms / ms) if ms > 0 else math.nan,
                "bound_ratio": float((group["bound"] / group["optimum"]).mean()),
            }
        )
    return rows


def feature_rows(
    cfg: DictConfig,
    ctx: RunContext,
    options: Mapping[str, dict],
    sizes: Sequence[int],
    n_pairs: int,
    repeats: int,
) -> tuple[list[dict], list[pd.DataFrame]]:
    """Matcher rows and pair tables on sampled pairs of the configured features, per selected layer at its own
    spatial size and resized to ``sizes``."""
    experiment = cfg.experiment
    features = load_features(cfg, force=ctx.force)
    layers = select_layers(features, experiment.layers)
    indices = sample_indices(len(features), n_pairs, cfg.seed)
    dataset, backbone = (result_keys(cfg)[group] for group in ("dataset", "backbone"))
    keys = {"source": f"features:{dataset}/{backbone}", "dataset": dataset, "backbone": backbone}
    rows, pairs = [], []
    for index, layer in enumerate(layers, 1):
        native = features.spatial_size(layer)
        maps = np.asarray(features.layer(layer)[indices], dtype=np.float32)
        layout = features.layouts[layer]
        for size in [native, *(s for s in sizes if s != native)]:
            log.info("matchers: layer %s (%d/%d) at %d positions", layer, index, len(layers), size)
            reps = torch.from_numpy(maps) if size == native else resize_maps(maps, layout, size)
            layer_keys = {**keys, "layer": layer, "native_size": native, "n_pairs": n_pairs}
            table = pair_table(reps, size, options, n_pairs, experiment.reference, repeats, **layer_keys)
            pairs.append(table)
            rows += table_rows(table, experiment.reference, **layer_keys)
    return rows, pairs


def synthetic_sizes(sizes: Iterable[int] | None) -> list[int]:
    """The ``experiment.synthetic_sizes``: distinct sizes the engine's generator has channels for."""
    chosen = square_sizes(sizes, "experiment.synthetic_sizes")
    unknown = [size for size in chosen if size not in RESNET_STAGES]
    if unknown:
        raise ValueError(f"experiment.synthetic_sizes {unknown}: choose from {sorted(RESNET_STAGES)}")
    return chosen


def synthetic_rows(
    cfg: DictConfig, options: Mapping[str, dict], sizes: Sequence[int], n_pairs: int, repeats: int
) -> tuple[list[dict], list[pd.DataFrame]]:
    """Matcher rows and pair tables on the engine's synthetic post-ReLU maps (ResNet-like channels per size)."""
    rows, pairs = [], []
    reference = cfg.experiment.reference
    for size in sizes:
        log.info("matchers: synthetic maps at %d positions", size)
        reps = smooth_relu_features(2 * n_pairs, RESNET_STAGES[size], math.isqrt(size), seed=cfg.seed + size)
        keys = {"source": SYNTHETIC, "dataset": None, "backbone": None, "layer": None, "native_size": size,
                "n_pairs": n_pairs}  # fmt: skip
        table = pair_table(reps, size, options, n_pairs, reference, repeats, **keys)
        pairs.append(table)
        rows += table_rows(table, reference, **keys)
    return rows, pairs


def largest_size_summary(table: pd.DataFrame) -> dict[str, float]:
    """Per source kind (features, synthetic), mean quality ratio and ms per pair of each matcher at the
    source's largest spatial size."""
    summary = {}
    for source, rows in table.groupby("source", sort=False):
        kind = source.split(":")[0]
        largest = rows[rows["spatial_size"] == rows["spatial_size"].max()]
        summary[f"{kind}/largest_size"] = int(largest["spatial_size"].iloc[0])
        means = largest.groupby("matcher", sort=False)[["quality_ratio", "ms_per_pair"]].mean()
        for matcher, values in means.iterrows():
            summary[f"{kind}/quality_{matcher}"] = float(values["quality_ratio"])
            summary[f"{kind}/ms_{matcher}"] = float(values["ms_per_pair"])
    return summary


def compared_matchers(cfg: DictConfig) -> dict[str, dict]:
    """Matcher name -> options of every matcher the stage times: ``experiment.matchers`` with the configured
    matcher, and the exact reference."""
    requested = cfg.experiment.matchers
    if requested is not None:
        requested = OmegaConf.to_container(requested, resolve=True)
    options = matcher_options(requested, OmegaConf.to_container(cfg.matcher, resolve=True))
    options.setdefault(exact_reference(cfg.experiment.reference), {})  # timed too: the speedups divide by it
    return options


@dataclass
class MatchersOptions(StageOptions):
    """The ``experiment`` options of this stage (conf/experiment/matchers.yaml holds their defaults)."""

    layers: Any  # null = every tapped layer, a name ("last" where the stage allows it) or a list
    matchers: list[str] | None
    reference: str
    pairs: int
    repeats: int
    resize_to: list[int] | None
    synthetic_sizes: list[int]


@register_stage(
    "matchers",
    options=MatchersOptions,
    uses=("dataset", "backbone"),
    choices=lambda cfg: {"matcher": list(compared_matchers(cfg))},
)
def matchers(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Runtime per pair and quality ratio of every matcher per spatial size; table and trade-off figures."""
    experiment = cfg.experiment
    options = compared_matchers(cfg)
    n_pairs = integer_option(experiment.pairs, "experiment.pairs")
    repeats = integer_option(experiment.repeats, "experiment.repeats")
    resized = square_sizes(experiment.resize_to, "experiment.resize_to")
    generated = synthetic_sizes(experiment.synthetic_sizes)
    log.info(
        "matchers: %d matchers, %d pairs per size, best of %d calls per pair", len(options), n_pairs, repeats
    )
    rows, pairs = feature_rows(cfg, ctx, options, resized, n_pairs, repeats)
    more_rows, more_pairs = synthetic_rows(cfg, options, generated, n_pairs, repeats)
    table = pd.DataFrame(rows + more_rows)
    pair_rows = pd.concat(pairs + more_pairs, ignore_index=True)
    ctx.logger.log_table("matchers", table)
    ctx.logger.log_table("matchers_pairs", pair_rows)
    for source, source_rows in table.groupby("source", sort=False):
        kind = source.split(":")[0]
        points = source_rows[["matcher", "spatial_size"]].drop_duplicates()
        if len(points) < 2:
            log.info(
                "matchers: no trade-off figure for %s: one matcher at one size is a single point", source
            )
            continue
        figure = matcher_tradeoff(
            source_rows,
            runtime="ms_per_pair",
            quality="quality",
            title=f"Runtime vs matching quality, {source} ({n_pairs} pairs per spatial size)",
            runtime_label="median CPU time per pair (ms, log scale)",
            quality_label="quality (m - m_id) / (m_opt - m_id)",
        )
        ctx.logger.log_figure(f"matcher_tradeoff_{kind}", figure)
    return {
        "num_matchers": len(options),
        "num_sizes": int(table["spatial_size"].nunique()),
        "pairs_per_size": n_pairs,
        "c5_status": check_matchers({"matchers_pairs": pair_rows}).status,
        **largest_size_summary(table),
    }
