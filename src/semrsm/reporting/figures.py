"""Figures for the experiments, as matplotlib Figures rendered by Agg (no pyplot state; no need to close them).

Save them with `RunLogger.log_figure` or `figure.savefig(path)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from semrsm.metrics._checks import finite_matrix, to_numpy
from semrsm.metrics.correlation import auroc, split_pairs_by_group


def _nonempty(mapping: Mapping[str, Any], what: str) -> None:
    if not isinstance(mapping, Mapping) or len(mapping) == 0:
        raise ValueError(f"{what} must be a non-empty mapping of name -> matrix, got {mapping!r}")


def _require_columns(table: pd.DataFrame, columns: Sequence[str | None]) -> None:
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [column for column in columns if column is not None and column not in table.columns]
    if missing:
        raise ValueError(f"table has no column(s) {missing}; columns are {list(table.columns)}")


def rsm_heatmaps(
    matrices: Mapping[str, Any], title: str | None = None, cmap: str = "viridis", panel_size: float = 3.0
) -> Figure:
    """RSMs side by side (one panel per name) on one shared colour scale with one colour bar."""
    _nonempty(matrices, "matrices")
    values = {name: finite_matrix(matrix, f"matrices[{name!r}]") for name, matrix in matrices.items()}
    low = min(matrix.min() for matrix in values.values())
    high = max(matrix.max() for matrix in values.values())
    figure = Figure(figsize=(panel_size * len(values) + 1.0, panel_size), layout="constrained")
    axes = figure.subplots(1, len(values), squeeze=False)[0]
    image = None
    for ax, (name, matrix) in zip(axes, values.items(), strict=True):
        image = ax.imshow(matrix, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel("sample")
    axes[0].set_ylabel("sample")
    figure.colorbar(image, ax=list(axes), shrink=0.9)
    if title:
        figure.suptitle(title)
    return figure


def value_distributions(
    rsms: Mapping[str, Any],
    groups: Any,
    labels: tuple[str, str] = ("same group", "different group"),
    bins: int = 40,
    title: str | None = None,
    panel_size: float = 3.0,
) -> Figure:
    """Per RSM type, histograms (densities) of same-group vs different-group pair values, AUROC in the title."""
    _nonempty(rsms, "rsms")
    figure = Figure(figsize=(panel_size * 1.3 * len(rsms), panel_size), layout="constrained")
    axes = figure.subplots(1, len(rsms), squeeze=False)[0]
    for ax, (name, rsm) in zip(axes, rsms.items(), strict=True):
        same, different = split_pairs_by_group(rsm, groups)
        if same.size == 0 or different.size == 0:
            raise ValueError(f"groups give {same.size} same-group and {different.size} different-group pairs")
        edges = np.histogram_bin_edges(np.concatenate([same, different]), bins=bins)
        ax.hist(different, bins=edges, density=True, alpha=0.6, label=labels[1])
        ax.hist(same, bins=edges, density=True, alpha=0.6, label=labels[0])
        ax.set_title(f"{name} (AUROC {auroc(same, different):.3f})")
        ax.set_xlabel("similarity")
    axes[0].set_ylabel("density")
    axes[0].legend()
    if title:
        figure.suptitle(title)
    return figure


def _displayable(image: Any, where: str) -> np.ndarray:
    """HW or HWC (C in 1, 3, 4) array for imshow; accepts CHW tensors; rescales floats outside [0, 1]."""
    array = to_numpy(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"{where} must be an HW, HWC or CHW image, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return array


def retrieval_grid(
    queries: Sequence[Any],
    retrieved: Sequence[Sequence[Any]],
    scores: Any,
    query_titles: Sequence[str] | None = None,
    retrieved_titles: Sequence[Sequence[str]] | None = None,
    panel_size: float = 1.8,
) -> Figure:
    """One row per query: the query image, then its k retrieved images titled with their similarity scores."""
    score_array = to_numpy(scores).astype(np.float64)
    if len(queries) == 0 or score_array.ndim != 2 or score_array.shape[0] != len(queries):
        raise ValueError(f"scores must be (Q, k) for Q={len(queries)} queries, got shape {score_array.shape}")
    n_queries, k = score_array.shape
    if len(retrieved) != n_queries or any(len(row) != k for row in retrieved):
        raise ValueError(f"retrieved must hold {n_queries} rows of {k} images each, matching scores")
    for what, titles, shape in (
        ("query_titles", query_titles, None),
        ("retrieved_titles", retrieved_titles, k),
    ):
        if titles is not None and (
            len(titles) != n_queries or (shape is not None and any(len(row) != shape for row in titles))
        ):
            raise ValueError(f"{what} must match the {n_queries} queries (and k={k} retrievals)")
    figure = Figure(figsize=(panel_size * (k + 1), panel_size * 1.15 * n_queries), layout="constrained")
    axes = figure.subplots(n_queries, k + 1, squeeze=False)
    for q in range(n_queries):
        axes[q, 0].imshow(_displayable(queries[q], f"queries[{q}]"), cmap="gray")
        axes[q, 0].set_title("query" + (f"\n{query_titles[q]}" if query_titles else ""), fontsize=8)
        for j in range(k):
            ax = axes[q, j + 1]
            ax.imshow(_displayable(retrieved[q][j], f"retrieved[{q}][{j}]"), cmap="gray")
            label = f"{retrieved_titles[q][j]}\n" if retrieved_titles else ""
            ax.set_title(f"{label}#{j + 1}: {score_array[q, j]:.3f}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


def cka_heatmap(
    matrix: Any,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str | None = None,
    show_diagonal: bool = True,
    value_label: str = "CKA",
) -> Figure:
    """Annotated heatmap of a (rows x cols) CKA matrix; with `show_diagonal`, a line plot of its diagonal beside it."""
    values = finite_matrix(matrix, "matrix", square=show_diagonal)
    if len(row_labels) != values.shape[0] or len(col_labels) != values.shape[1]:
        raise ValueError(
            f"labels ({len(row_labels)} rows, {len(col_labels)} cols) do not match matrix shape {values.shape}"
        )
    panels = 2 if show_diagonal else 1
    size = max(3.5, 0.55 * max(values.shape) + 1.5)
    figure = Figure(figsize=(size * panels + 0.5, size), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    image = axes[0].imshow(values, cmap="magma", vmin=min(0.0, values.min()), vmax=max(1.0, values.max()))
    axes[0].set_xticks(range(values.shape[1]), col_labels, rotation=45, ha="right")
    axes[0].set_yticks(range(values.shape[0]), row_labels)
    if max(values.shape) <= 12:
        for (i, j), value in np.ndenumerate(values):
            colour = "black" if image.norm(value) > 0.5 else "white"
            axes[0].text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
    figure.colorbar(image, ax=axes[0], label=value_label)
    if show_diagonal:
        axes[1].plot(range(values.shape[0]), np.diag(values), marker="o")
        axes[1].set_xticks(range(values.shape[0]), row_labels, rotation=45, ha="right")
        axes[1].set_ylabel(f"{value_label} (diagonal)")
        axes[1].grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return figure


def _facets(table: pd.DataFrame, facet: str | None) -> list[tuple[str | None, pd.DataFrame]]:
    if facet is None:
        return [(None, table)]
    return [(str(key), part) for key, part in table.groupby(facet, sort=True)]


def metric_bars(
    table: pd.DataFrame,
    value: str,
    x: str,
    hue: str,
    facet: str | None = None,
    error: str | None = None,
    title: str | None = None,
    panel_size: float = 3.5,
) -> Figure:
    """Grouped bars of `value` per `x` category, one bar per `hue`, one panel per `facet` value.

    E.g. F1@1 with x="backbone", hue="invariant", facet="kernel". Rows with equal (facet, x, hue) are averaged;
    `error` names a column of error-bar half-widths.
    """
    _require_columns(table, [value, x, hue, facet, error])
    if table.empty:
        raise ValueError("table is empty")
    facets = _facets(table, facet)
    figure = Figure(figsize=(panel_size * len(facets), panel_size), layout="constrained")
    axes = figure.subplots(1, len(facets), squeeze=False, sharey=True)[0]
    hues = sorted(table[hue].unique(), key=str)
    width = 0.8 / len(hues)
    for ax, (name, part) in zip(axes, facets, strict=True):
        columns = [value] + ([error] if error else [])
        means = part.groupby([x, hue], sort=True)[columns].mean()
        categories = sorted(part[x].unique(), key=str)
        positions = np.arange(len(categories))
        for h, hue_value in enumerate(hues):
            heights = [means[value].get((c, hue_value), np.nan) for c in categories]
            errors = [means[error].get((c, hue_value), np.nan) for c in categories] if error else None
            ax.bar(
                positions + (h - (len(hues) - 1) / 2) * width,
                heights,
                width,
                yerr=errors,
                label=str(hue_value),
            )
        ax.set_xticks(positions, [str(c) for c in categories], rotation=30, ha="right")
        ax.set_title(f"{facet} = {name}" if facet else value)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(value)
    axes[-1].legend(title=hue)
    if title:
        figure.suptitle(title)
    return figure


def _draw_lines(ax: Any, table: pd.DataFrame, x: str, y: str, hue: str, log_y: bool) -> None:
    for hue_value, part in table.groupby(hue, sort=True):
        mean = part.groupby(x, sort=True)[y].mean()
        ax.plot(mean.index, mean.to_numpy(), marker="o", label=str(hue_value))
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)


def metric_lines(
    table: pd.DataFrame,
    x: str,
    y: str,
    hue: str,
    facet: str | None = None,
    log_y: bool = False,
    title: str | None = None,
    panel_size: float = 3.5,
) -> Figure:
    """Lines of mean `y` against numeric `x`, one line per `hue`, one panel per `facet` value."""
    _require_columns(table, [x, y, hue, facet])
    if table.empty:
        raise ValueError("table is empty")
    facets = _facets(table, facet)
    figure = Figure(figsize=(panel_size * len(facets), panel_size), layout="constrained")
    axes = figure.subplots(1, len(facets), squeeze=False)[0]
    for ax, (name, part) in zip(axes, facets, strict=True):
        _draw_lines(ax, part, x, y, hue, log_y)
        if facet:
            ax.set_title(f"{facet} = {name}")
    axes[-1].legend(title=hue)
    if title:
        figure.suptitle(title)
    return figure


def _log_size_ticks(ax: Any, sizes: Sequence[float], min_gap: float = 1 / 8) -> None:
    """Log x-axis with a tick at each of ``sizes`` (no minor ticks), labelled as plain numbers; a label closer
    than ``min_gap`` of the axis' log span to the previous label is left out, so labels never overlap."""
    ticks = np.unique(np.asarray(sizes, dtype=float))
    positions = np.log10(ticks)
    gap = min_gap * (positions[-1] - positions[0])
    labels, last = [], -np.inf
    for tick, position in zip(ticks, positions, strict=True):
        shown = position - last >= gap
        labels.append(f"{tick:g}" if shown else "")
        last = position if shown else last
    ax.set_xscale("log")
    ax.set_xticks(ticks, labels)
    ax.set_xticks([], minor=True)


def matcher_tradeoff(
    table: pd.DataFrame,
    size: str = "spatial_size",
    runtime: str = "runtime_s",
    quality: str = "quality_ratio",
    matcher: str = "matcher",
    title: str | None = None,
) -> Figure:
    """Per matcher against spatial size (log x): runtime (log y) and matching quality (ratio to the optimum)."""
    _require_columns(table, [size, runtime, quality, matcher])
    if table.empty:
        raise ValueError("table is empty")
    figure = Figure(figsize=(8.0, 3.5), layout="constrained")
    runtime_ax, quality_ax = figure.subplots(1, 2)
    _draw_lines(runtime_ax, table, size, runtime, matcher, log_y=True)
    _draw_lines(quality_ax, table, size, quality, matcher, log_y=False)
    quality_ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
    for ax in (runtime_ax, quality_ax):
        _log_size_ticks(ax, table[size].unique())
    quality_ax.legend(title=matcher)
    if title:
        figure.suptitle(title)
    return figure
