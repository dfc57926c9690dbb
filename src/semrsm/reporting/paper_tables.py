"""The paper's three summary tables from the stages' tables and the claim verdicts' evidence.

- F1@1 of the spatio-semantic and the semantic RSM with the gain and its interval (Fig. 3 / the Cityscapes table):
  rows dataset x backbone x layer, one column group per kernel;
- Pearson and Spearman correlation of similarity with the JSD of predictions, semantic vs spatio-semantic (Table 1): rows
  dataset x backbone x layer (x kernel);
- runtime per matcher x spatial size with the matching quality, and the batch_optimal interval of claim C5.

A table pivots a key (the kernel) into column groups only where that leaves few empty cells (SPARSE_LIMIT);
otherwise the key stays a row key, so no table is mostly empty cells. Intervals are the 95 % bootstrap
intervals of ``semrsm.reporting.claims`` (the same functions the verdicts use, on the same units).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from semrsm.reporting import provenance
from semrsm.reporting.claims import (
    CONTRADICTS,
    LAYER_KEY,
    SUPPORTS,
    Verdict,
    one_run,
    retrieval_evidence,
)
from semrsm.reporting.report_html import Estimate

SPARSE_LIMIT = 0.25  # largest share of empty cells a pivot may have
RSM_NAMES = {"spatio_semantic": "spatio-semantic", "semantic": "semantic"}


@dataclass(frozen=True)
class PaperTable:
    """One summary table: a stable ``key`` (its HTML anchor), a title, the table (columns are (group, name)
    pairs; group "" = not grouped), a note saying what the cells are, and the rows it rests on (dataset,
    backbone columns) for the data/model banner."""

    key: str
    title: str
    table: pd.DataFrame
    note: str
    basis: pd.DataFrame


def _estimate(value: float, low: float = math.nan, high: float = math.nan, sign: int = 0) -> Estimate:
    """An Estimate whose outcome is ``supports`` when the interval lies on the side ``sign`` (+1 above 0, -1
    below), ``contradicts`` on the other side."""
    result = None
    if sign and not (math.isnan(low) or math.isnan(high)):
        if (sign > 0 and low > 0) or (sign < 0 and high < 0):
            result = SUPPORTS
        elif (sign > 0 and high < 0) or (sign < 0 and low > 0):
            result = CONTRADICTS
    return Estimate(float(value), float(low), float(high), result)


def spatial_sizes(tables: Mapping[str, pd.DataFrame]) -> dict[tuple[str, str], int]:
    """(backbone, layer) -> spatial size, from every table that has these three columns."""
    sizes: dict[tuple[str, str], int] = {}
    for table in tables.values():
        if {"backbone", "layer", "spatial_size"} <= set(table.columns):
            pairs = table[["backbone", "layer", "spatial_size"]].dropna().drop_duplicates()
            for backbone, layer, size in pairs.itertuples(index=False):
                sizes.setdefault((str(backbone), str(layer)), int(size))
    return sizes


def layer_label(backbone: object, layer: object, sizes: Mapping[tuple[str, str], int]) -> str:
    """``layer2 (S=64)`` where the spatial size is known, else the layer name."""
    size = sizes.get((str(backbone), str(layer)))
    return f"{layer} (S={size})" if size is not None else str(layer)


def data_label(dataset: object) -> str:
    """``synthetic`` or ``real`` (provenance.data_kind, shortened for a table cell)."""
    return "synthetic" if provenance.data_kind(dataset) == provenance.SYNTHETIC_DATA else "real"


def pivot(
    rows: pd.DataFrame,
    keys: Sequence[str],
    column: str,
    values: Sequence[tuple[str, str]],
    trailing: Sequence[str] = (),
) -> tuple[pd.DataFrame, bool]:
    """``rows`` (one per ``keys`` x ``column`` value) with ``column`` pivoted into column groups where that is
    dense: (table, pivoted). ``values`` are (group, name) of the value columns; pivoted, their group becomes
    "<column value> · <group>" (or the column value). ``trailing`` columns (the same for every ``column``
    value of a row, e.g. n) follow the groups. Where more than SPARSE_LIMIT of the pivoted cells would be empty,
    or ``column`` has one value, ``column`` stays a row key (returned with pivoted False)."""
    names = [name for _, name in values]
    levels = list(dict.fromkeys(rows[column]))
    groups = rows.groupby(list(keys), sort=False, dropna=False)
    empty = 1 - len(rows[[*keys, column]].drop_duplicates()) / max(1, groups.ngroups * len(levels))
    if len(levels) < 2 or empty > SPARSE_LIMIT:
        order = [*keys, column, *names, *trailing]
        table = rows[order].copy()
        table.columns = pd.MultiIndex.from_tuples(
            [("", c) for c in (*keys, column)] + list(values) + [("", c) for c in trailing]
        )
        return table, False
    records = []
    for key_values, group in groups:
        record = {("", k): v for k, v in zip(keys, key_values, strict=True)}
        by_level = group.set_index(column)
        for level in levels:
            for label, name in values:
                heading = f"{level} · {label}" if label else str(level)
                cell = by_level[name].get(level) if level in by_level.index else None
                record[(heading, name)] = cell if cell is not None else Estimate(math.nan)
        for name in trailing:
            record[("", name)] = group[name].iloc[0]
        records.append(record)
    table = pd.DataFrame(records)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table, True


def _optional(rows: pd.DataFrame, keys: list[str], column: str) -> list[str]:
    """``keys`` with ``column`` added when it has more than one value in ``rows``."""
    return [*keys, column] if column in rows and rows[column].nunique(dropna=False) > 1 else keys


def _single(rows: pd.DataFrame, column: str) -> str:
    values = sorted({str(v) for v in rows[column].dropna()}) if column in rows else []
    return ", ".join(values)


def _setup_columns(evidence: pd.DataFrame, sizes: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    """The columns naming what a row measured: data kind, dataset, backbone, layer (with its size), matcher,
    kernel."""
    return {
        "data": [data_label(d) for d in evidence["dataset"]],
        "dataset": evidence["dataset"],
        "backbone": evidence["backbone"],
        "layer": [
            layer_label(b, la, sizes) for b, la in zip(evidence["backbone"], evidence["layer"], strict=True)
        ],
        "matcher": evidence["matcher"],
        "kernel": evidence["kernel"],
    }


def f1_table(tables: Mapping[str, pd.DataFrame]) -> PaperTable | None:
    """F1@1 spatio-semantic vs semantic per dataset x backbone x layer x kernel, gain with its interval."""
    queries = tables.get("retrieval_queries")
    if queries is None or queries.empty:
        return None
    queries = one_run(queries, [*LAYER_KEY, "seed"])
    evidence = retrieval_evidence(queries.assign(gain=queries["f1_semantic"] - queries["f1_spatio_semantic"]))
    sizes = spatial_sizes(tables)
    rows = pd.DataFrame(
        {
            **_setup_columns(evidence, sizes),
            "spatio-semantic": [_estimate(v) for v in evidence["f1_spatio_semantic"]],
            "semantic": [_estimate(v) for v in evidence["f1_semantic"]],
            "gain [95 % CI]": [
                _estimate(v, lo, hi, +1)
                for v, lo, hi in zip(
                    evidence["f1_gain"], evidence["f1_gain_low"], evidence["f1_gain_high"], strict=True
                )
            ],
            "queries": evidence["n_units"],
            "seeds": evidence["seeds"],
        }
    )
    keys = _optional(rows, [*_optional(rows, [], "data"), "dataset", "backbone", "layer"], "matcher")
    values = [("F1@1", "spatio-semantic"), ("F1@1", "semantic"), ("F1@1", "gain [95 % CI]")]
    table, _ = pivot(rows, keys, "kernel", values, ("queries", "seeds"))
    matcher = "" if "matcher" in keys else f" The semantic RSM uses the {_single(rows, 'matcher')} matching."
    note = (
        "F1@1 of the annotated object categories of each query and its most similar image (leave-one-out), "
        "mean over queries and seeds. Gain = semantic - spatio-semantic with its 95 % paired bootstrap interval "
        f"over queries (and seeds); green: interval above 0, red: below 0.{matcher}"
    )
    return PaperTable("table-f1", "F1@1 retrieval: semantic vs spatio-semantic RSM", table, note, evidence)


def correlation_table(verdict: Verdict, sizes: Mapping[tuple[str, str], int]) -> PaperTable | None:
    """Pearson and Spearman of similarity vs JSD, semantic vs spatio-semantic, per dataset x backbone x layer (x kernel),
    from the C4 verdict's evidence (all pairs), with the verdict's intervals."""
    evidence = verdict.evidence
    if evidence.empty or "pearson_semantic" not in evidence:
        return None
    if "pairs" in evidence:
        evidence = evidence[evidence["pairs"] == "all"]
    evidence = evidence.reset_index(drop=True)
    rows = pd.DataFrame(
        {
            **_setup_columns(evidence, sizes),
            "images": evidence["n_units"],
            "seeds": evidence["seeds"],
        }
    )
    values = []
    for method, label in (("pearson", "Pearson r"), ("spearman", "Spearman ρ")):
        rows[f"{method} spatio-sem."] = [_estimate(v) for v in evidence[f"{method}_spatio_semantic"]]
        rows[f"{method} semantic"] = [
            _estimate(v, lo, hi, -1)
            for v, lo, hi in zip(
                *(evidence[f"{method}_semantic{s}"] for s in ("", "_low", "_high")), strict=True
            )
        ]
        rows[f"{method} Δ"] = [
            _estimate(v, lo, hi, -1)
            for v, lo, hi in zip(
                *(evidence[f"{method}_difference{s}"] for s in ("", "_low", "_high")), strict=True
            )
        ]
        values += [(label, f"{method} spatio-sem."), (label, f"{method} semantic"), (label, f"{method} Δ")]
    keys = _optional(rows, [*_optional(rows, [], "data"), "dataset", "backbone", "layer"], "matcher")
    table, _ = pivot(rows, keys, "kernel", values, ("images", "seeds"))
    table.columns = pd.MultiIndex.from_tuples(
        [
            (group, name.split(" ", 1)[1] if name.startswith(("pearson ", "spearman ")) else name)
            for group, name in table.columns
        ]
    )
    matcher = "" if "matcher" in keys else f" Semantic = {_single(rows, 'matcher')} matching."
    note = (
        "Correlation over all image pairs between representational similarity and the Jensen-Shannon divergence "
        "of the predicted class probabilities (negative = similar representations, similar predictions). "
        "Semantic with its 95 % image-level bootstrap interval; Δ = semantic - spatio-semantic with its "
        f"interval (over images, and seeds); green: below 0 as the paper claims, red: above 0.{matcher}"
    )
    return PaperTable(
        "table-correlation", "Similarity vs JSD of predictions (Table 1 style)", table, note, evidence
    )


def runtime_table(tables: Mapping[str, pd.DataFrame], verdict: Verdict) -> PaperTable | None:
    """Median CPU ms per pair of every matcher per source x layer x spatial size, the approximate matchers'
    quality, and the batch_optimal quality and speed-up intervals of the C5 verdict where it judged them."""
    table = tables.get("matchers")
    if table is None or table.empty or not {"source", "spatial_size", "matcher", "ms_per_pair"} <= set(table):
        return None
    table = table.assign(layer=table["layer"].fillna("") if "layer" in table else "")
    table = one_run(table, ["source", "layer", "spatial_size", "matcher"])
    exact = set(table.loc[table["exact"].astype(bool), "matcher"]) if "exact" in table else set()
    order = sorted(table["matcher"].unique(), key=lambda m: (m != "identity", m not in exact, m))
    keys = ["source", "layer", "spatial_size"]
    c5 = verdict.evidence
    judged = {}
    if not c5.empty and {"quality", "speed_ratio"} <= set(c5):
        for row in c5.assign(layer=c5["layer"].fillna("")).itertuples(index=False):
            judged[(row.source, row.layer, int(row.spatial_size))] = row
    records = []
    for (source, layer, size), group in table.groupby(keys, sort=True):
        by_matcher = group.set_index("matcher")
        native = by_matcher["native_size"].iloc[0] if "native_size" in by_matcher else size
        record = {
            ("", "source"): source,
            ("", "layer"): layer,
            ("", "S"): int(size),
            ("", "resized"): "" if pd.isna(native) or int(native) == int(size) else f"from S={int(native)}",
        }
        for matcher in order:
            ms = by_matcher["ms_per_pair"].get(matcher, math.nan)
            record[("median CPU ms per pair", matcher)] = Estimate(float(ms), digits=3)
        for matcher in order:
            if matcher == "identity" or matcher in exact or "quality" not in by_matcher:
                continue
            record[("quality (m - m_id)/(m_opt - m_id)", matcher)] = Estimate(
                float(by_matcher["quality"].get(matcher, math.nan))
            )
        found = judged.get((source, layer, int(size)))
        record[("C5: batch_optimal", "quality [95 % CI]")] = (
            _estimate(found.quality, found.quality_low, found.quality_high)
            if found is not None
            else Estimate(math.nan)
        )
        record[("C5: batch_optimal", "speed-up vs exact [95 % CI]")] = (
            _estimate(found.speed_ratio, found.speed_ratio_low, found.speed_ratio_high)
            if found is not None
            else Estimate(math.nan)
        )
        record[("", "pairs")] = int(group["n_pairs"].iloc[0]) if "n_pairs" in group else math.nan
        records.append(record)
    result = pd.DataFrame(records)
    result.columns = pd.MultiIndex.from_tuples(result.columns)
    if result[("", "resized")].eq("").all():
        result = result.drop(columns=[("", "resized")])
    if result[("", "layer")].eq("").all():
        result = result.drop(columns=[("", "layer")])
    if result[("", "pairs")].isna().all():
        result = result.drop(columns=[("", "pairs")])
    c5 = [column for column in result.columns if column[0] == "C5: batch_optimal"]
    if all(math.isnan(cell.value) for column in c5 for cell in result[column]):
        result = result.drop(columns=c5)  # C5 judged no size here (S <= window everywhere)
    basis = table[[c for c in ("source", "dataset", "backbone") if c in table]].drop_duplicates()
    note = (
        "Median CPU time per pair of each raw matcher (ms) on sampled pairs of a layer's feature maps (S = "
        "positions per map; 'resized' maps are interpolated to S) or of generated maps. Quality = (matched "
        "score - identity score) / (optimum - identity score): 1 = optimal, 0 = no better than no matching. C5 "
        "columns: batch_optimal's mean quality and the median speed-up of the exact reference over it, with "
        "95 % bootstrap intervals over pairs, where C5 judges them (S above batch_optimal's window)."
    )
    return PaperTable(
        "table-runtime", "Matchers: runtime per spatial size and matching quality", result, note, basis
    )


def paper_tables(tables: Mapping[str, pd.DataFrame], verdicts: Mapping[str, Verdict]) -> list[PaperTable]:
    """The summary tables there are results for, in the paper's order (retrieval, correlations, runtime)."""
    found = [
        f1_table(tables),
        correlation_table(verdicts["C4"], spatial_sizes(tables)) if "C4" in verdicts else None,
        runtime_table(tables, verdicts["C5"]) if "C5" in verdicts else None,
    ]
    return [table for table in found if table is not None]
