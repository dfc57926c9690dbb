"""Figures for the experiments, as matplotlib Figures rendered by Agg (no pyplot state; no need to close them).

Save them with `RunLogger.log_figure` or `figure.savefig(path)`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

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


TITLE_SIZE = 11
SIZE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")


def suptitle(figure: Figure, title: str | None, size: float = TITLE_SIZE) -> None:
    """A figure title wrapped to the figure's width (about 0.6 em per character), so it is never cut off."""
    if not title:
        return
    width_chars = max(20, int(figure.get_size_inches()[0] * 72 / (0.62 * size)))
    figure.suptitle(textwrap.fill(title, width_chars), fontsize=size)


def _outside_legend(
    figure: Figure, handles: list, labels: list[str], title: str, loc: str = "outside lower center"
) -> None:
    """One legend for the whole figure, outside every axes (constrained layout makes room for it): below the
    panels in one row by default, so it never meets the title."""
    columns = len(labels) if loc == "outside lower center" else 1
    figure.legend(
        handles, labels, title=title, loc=loc, ncols=columns, fontsize=8, title_fontsize=9, frameon=False
    )


def group_blocks(groups: Any) -> list[tuple[int, int, Any]]:
    """(start, stop, label) of each run of equal consecutive values of ``groups`` (samples sorted by group)."""
    values = list(np.asarray(groups).ravel())
    blocks, start = [], 0
    for index in range(1, len(values) + 1):
        if index == len(values) or values[index] != values[start]:
            blocks.append((start, index, values[start]))
            start = index
    return blocks


def rsm_heatmaps(
    matrices: Mapping[str, Any],
    title: str | None = None,
    cmap: str = "viridis",
    panel_size: float = 3.0,
    groups: Any = None,
    value_label: str = "similarity",
    sample_label: str = "sample",
) -> Figure:
    """RSMs side by side (one panel per name) on one shared colour scale with one labelled colour bar.

    ``groups`` (one label per sample, in the matrices' order, equal labels adjacent) outlines each group's block
    on the diagonal (e.g. the crops of one source image) and labels the axes per group."""
    _nonempty(matrices, "matrices")
    values = {name: finite_matrix(matrix, f"matrices[{name!r}]") for name, matrix in matrices.items()}
    low = min(matrix.min() for matrix in values.values())
    high = max(matrix.max() for matrix in values.values())
    blocks = []
    if groups is not None:
        sizes = {matrix.shape[0] for matrix in values.values()}
        if len(np.asarray(groups).ravel()) not in sizes or len(sizes) != 1:
            raise ValueError(
                f"groups has {len(np.asarray(groups).ravel())} labels for matrices of sizes {sorted(sizes)}"
            )
        blocks = group_blocks(groups)
        if len({label for *_, label in blocks}) != len(blocks):
            raise ValueError(
                "groups must be sorted so that equal labels are adjacent (sort the samples first)"
            )
    figure = Figure(figsize=(panel_size * len(values) + 1.2, panel_size + 0.6), layout="constrained")
    axes = figure.subplots(1, len(values), squeeze=False)[0]
    image = None
    for ax, (name, matrix) in zip(axes, values.items(), strict=True):
        image = ax.imshow(matrix, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        for start, stop, _ in blocks:
            ax.add_patch(
                Rectangle(
                    (start - 0.5, start - 0.5),
                    stop - start,
                    stop - start,
                    fill=False,
                    edgecolor="white",
                    linewidth=1.0,
                )
            )
        if blocks and len(blocks) <= 24:
            centres = [(start + stop - 1) / 2 for start, stop, _ in blocks]
            ax.set_xticks(centres, [str(label) for *_, label in blocks], fontsize=7)
            ax.set_yticks(centres, [str(label) for *_, label in blocks], fontsize=7)
    figure.supxlabel(sample_label, fontsize=9)
    figure.supylabel(sample_label, fontsize=9)
    figure.colorbar(image, ax=list(axes), shrink=0.9, label=value_label)
    suptitle(figure, title)
    return figure


def value_distributions(
    rsms: Mapping[str, Any],
    groups: Any,
    labels: tuple[str, str] = ("same group", "different group"),
    bins: int = 40,
    title: str | None = None,
    panel_size: float = 3.0,
    value_label: str = "similarity",
) -> Figure:
    """Per RSM type, histograms (densities) of same-group vs different-group pair values, AUROC and the number
    of pairs in the title, one legend outside the panels."""
    _nonempty(rsms, "rsms")
    figure = Figure(figsize=(panel_size * 1.3 * len(rsms) + 1.4, panel_size + 0.4), layout="constrained")
    axes = figure.subplots(1, len(rsms), squeeze=False)[0]
    for ax, (name, rsm) in zip(axes, rsms.items(), strict=True):
        same, different = split_pairs_by_group(rsm, groups)
        if same.size == 0 or different.size == 0:
            raise ValueError(f"groups give {same.size} same-group and {different.size} different-group pairs")
        edges = np.histogram_bin_edges(np.concatenate([same, different]), bins=bins)
        ax.hist(different, bins=edges, density=True, alpha=0.6, label=labels[1])
        ax.hist(same, bins=edges, density=True, alpha=0.6, label=labels[0])
        ax.set_title(f"{name} (AUROC {auroc(same, different):.3f})", fontsize=10)
        ax.set_xlabel(value_label)
    axes[0].set_ylabel("density")
    handles, names = axes[0].get_legend_handles_labels()
    counts = {labels[0]: same.size, labels[1]: different.size}
    _outside_legend(figure, handles, [f"{n} (n={counts[n]} pairs)" for n in names], "pairs")
    suptitle(figure, title)
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
    figure = Figure(figsize=(panel_size * (k + 1), panel_size * 1.3 * n_queries), layout="constrained")
    axes = figure.subplots(n_queries, k + 1, squeeze=False)
    chars = max(12, int(panel_size * 72 / (0.58 * 8)))  # characters of 8-pt text across one panel

    def fit(text: str) -> str:
        return "\n".join(textwrap.fill(line, chars) for line in str(text).split("\n"))

    for q in range(n_queries):
        axes[q, 0].imshow(_displayable(queries[q], f"queries[{q}]"), cmap="gray")
        axes[q, 0].set_title(fit("query" + (f"\n{query_titles[q]}" if query_titles else "")), fontsize=8)
        for j in range(k):
            ax = axes[q, j + 1]
            ax.imshow(_displayable(retrieved[q][j], f"retrieved[{q}][{j}]"), cmap="gray")
            label = f"{retrieved_titles[q][j]}\n" if retrieved_titles else ""
            ax.set_title(fit(f"{label}#{j + 1}: {score_array[q, j]:.3f}"), fontsize=8)
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
    suptitle(figure, title)
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
    interval: tuple[str, str] | None = None,
    value_label: str | None = None,
    x_label: str | None = None,
    hue_label: str | None = None,
    hue_names: Mapping[Any, str] | None = None,
) -> Figure:
    """Grouped bars of `value` per `x` category, one bar per `hue`, one panel per `facet` value.

    E.g. F1@1 with x="backbone", hue="semantic", facet="kernel". Rows with equal (facet, x, hue) are averaged;
    `error` names a column of error-bar half-widths, `interval` two columns (low, high) of an interval drawn as
    the error bar instead. Axis labels default to the column names; `hue_names` renames hue values in the
    legend, which sits outside the panels.
    """
    _require_columns(table, [value, x, hue, facet, error, *(interval or ())])
    if table.empty:
        raise ValueError("table is empty")
    facets = _facets(table, facet)
    figure = Figure(figsize=(panel_size * len(facets) + 1.6, panel_size + 0.3), layout="constrained")
    axes = figure.subplots(1, len(facets), squeeze=False, sharey=True)[0]
    hues = sorted(table[hue].unique(), key=str)
    width = 0.8 / len(hues)
    for ax, (name, part) in zip(axes, facets, strict=True):
        columns = [value] + ([error] if error else []) + list(interval or ())
        means = part.groupby([x, hue], sort=True)[columns].mean()
        categories = sorted(part[x].unique(), key=str)
        positions = np.arange(len(categories))
        for h, hue_value in enumerate(hues):
            heights = np.array([means[value].get((c, hue_value), np.nan) for c in categories])
            errors = None
            if interval:
                lows = np.array([means[interval[0]].get((c, hue_value), np.nan) for c in categories])
                highs = np.array([means[interval[1]].get((c, hue_value), np.nan) for c in categories])
                errors = np.vstack([heights - lows, highs - heights])
            elif error:
                errors = [means[error].get((c, hue_value), np.nan) for c in categories]
            label = str(hue_names.get(hue_value, hue_value)) if hue_names else str(hue_value)
            ax.bar(
                positions + (h - (len(hues) - 1) / 2) * width,
                heights,
                width,
                yerr=errors,
                capsize=2,
                label=label,
            )
        ax.set_xticks(positions, [str(c) for c in categories], rotation=30, ha="right")
        ax.set_xlabel(x_label or x)
        if facet:
            ax.set_title(f"{facet} = {name}", fontsize=10)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(value_label or value)
    handles, labels = axes[0].get_legend_handles_labels()
    _outside_legend(figure, handles, labels, hue_label or hue)
    suptitle(figure, title)
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
    x_label: str | None = None,
    y_label: str | None = None,
    hue_label: str | None = None,
) -> Figure:
    """Lines of mean `y` against numeric `x`, one line per `hue`, one panel per `facet` value, one legend
    outside the panels. A panel needs at least two `x` values: a single point is no line (ValueError)."""
    _require_columns(table, [x, y, hue, facet])
    if table.empty:
        raise ValueError("table is empty")
    facets = _facets(table, facet)
    single = [str(name) for name, part in facets if part[x].nunique() < 2]
    if single:
        raise ValueError(
            f"metric_lines needs >= 2 distinct values of {x!r} per panel; {single or 'the table'} has one"
        )
    figure = Figure(figsize=(panel_size * len(facets) + 1.6, panel_size), layout="constrained")
    axes = figure.subplots(1, len(facets), squeeze=False)[0]
    for ax, (name, part) in zip(axes, facets, strict=True):
        _draw_lines(ax, part, x, y, hue, log_y)
        ax.set_xlabel(x_label or x)
        ax.set_ylabel(y_label or y)
        if facet:
            ax.set_title(f"{facet} = {name}", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    _outside_legend(figure, handles, labels, hue_label or hue)
    suptitle(figure, title)
    return figure


def matcher_tradeoff(
    table: pd.DataFrame,
    size: str = "spatial_size",
    runtime: str = "runtime_s",
    quality: str = "quality_ratio",
    matcher: str = "matcher",
    title: str | None = None,
    runtime_label: str = "time per pair (s, log scale)",
    quality_label: str = "matching quality (ratio to the optimum)",
) -> Figure:
    """The runtime-quality trade-off of the matchers (the paper's Fig. 5): time per pair (log x) against
    matching quality (y), one curve per matcher through its spatial sizes, one marker shape per spatial size.
    Needs at least two points (ValueError otherwise); rows of one matcher and size are averaged."""
    _require_columns(table, [size, runtime, quality, matcher])
    if table.empty:
        raise ValueError("table is empty")
    means = table.groupby([matcher, size], sort=True)[[runtime, quality]].mean().reset_index()
    if len(means) < 2:
        raise ValueError("matcher_tradeoff needs at least two (matcher, size) points; the table has one")
    positive = means[runtime] > 0
    floor = means.loc[positive, runtime].min() / 2 if positive.any() else 1e-6
    means[runtime] = means[runtime].where(positive, floor)  # a zero time shown at the axis' floor
    sizes = sorted(means[size].unique())
    markers = {s: SIZE_MARKERS[i % len(SIZE_MARKERS)] for i, s in enumerate(sizes)}
    figure = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = figure.subplots()
    colours = {}
    for name, part in means.groupby(matcher, sort=True):
        part = part.sort_values(size)
        (line,) = ax.plot(part[runtime], part[quality], linewidth=1.2, alpha=0.8)
        colours[name] = line.get_color()
        for _, row in part.iterrows():
            ax.plot(
                row[runtime],
                row[quality],
                marker=markers[row[size]],
                color=line.get_color(),
                markersize=6,
                linestyle="",
            )
    ax.set_xscale("log")
    ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel(runtime_label)
    ax.set_ylabel(quality_label)
    ax.grid(alpha=0.3)
    matcher_handles = [Line2D([], [], color=c, linewidth=1.5) for c in colours.values()]
    size_handles = [Line2D([], [], color="gray", marker=markers[s], linestyle="") for s in sizes]
    figure.legend(
        matcher_handles + size_handles,
        [str(m) for m in colours] + [f"S = {s:g}" for s in sizes],
        title="matcher / spatial size",
        loc="outside right center",
        fontsize=8,
        title_fontsize=9,
        frameon=False,
    )
    suptitle(figure, title)
    return figure
