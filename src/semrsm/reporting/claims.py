"""Verdicts on the paper's claims (C1-C6 of paper/claims.md) from the stages' result tables.

Each check is a pure function of one pandas DataFrame (the concatenation of every finished run's table of that
name) and returns a `Verdict`: a status, a one-line summary with the numbers behind it, and an evidence table
with one row per configuration checked and a boolean `holds` column.

Scheme: the claims are universal ("in every layer", "for every architecture and kernel"), so
- "confirmed": the rule holds in every configuration checked;
- "refuted": it fails in at least one (the summary says in how many and lists the failing ones);
- "not run": no result bears on the claim (no table, or no configuration with both sides to compare).
Rows that repeat one configuration (e.g. the same point in a run and in a sweep) are averaged first. The
non-invariant side does not depend on the matcher, so each matcher's invariant rows are compared with the
non-invariant rows of the same dataset, backbone, layer and kernel (whatever matcher they name).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CONFIRMED, REFUTED, NOT_RUN = "confirmed", "refuted", "not run"
STATUSES = (CONFIRMED, REFUTED, NOT_RUN)
LAYER_KEY = ["dataset", "backbone", "layer", "kernel"]
MAX_LISTED_FAILURES = 6
C5_MIN_QUALITY = 0.9


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim check: status (one of STATUSES), summary with numbers, evidence rows."""

    claim: str
    status: str
    summary: str
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status must be one of {STATUSES}, got {self.status!r}")


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, the result table that bears on it and the function that judges it."""

    id: str
    experiment: str
    statement: str
    table: str
    check: Callable[[pd.DataFrame | None], Verdict]


def require_columns(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Raise ValueError naming the table and its missing columns."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"table {name!r} lacks column(s) {missing}; it has {list(table.columns)}")


def as_bool(values: pd.Series, name: str) -> pd.Series:
    """A boolean column read from CSV (True/False, true/false, 1/0) as bool; ValueError on anything else."""
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    text = values.astype(str).str.strip().str.lower()
    unknown = sorted(set(text) - set(mapping))
    if unknown:
        raise ValueError(f"column {name!r} must be boolean, got value(s) {unknown}")
    return text.map(mapping).astype(bool)


def _empty(table: pd.DataFrame | None) -> bool:
    return table is None or len(table) == 0


def _not_run(claim: str, why: str) -> Verdict:
    return Verdict(claim, NOT_RUN, why)


def _paired(
    table: pd.DataFrame, key: list[str], side: pd.Series, metrics: list[str], names: tuple[str, str]
) -> pd.DataFrame:
    """Per key and matcher, the mean metrics of the rows where `side` is True next to those where it is False."""
    on = table[side].groupby([*key, "matcher"], dropna=False, sort=True)[metrics].mean().reset_index()
    off = table[~side].groupby(key, dropna=False)[metrics].mean().reset_index()
    return on.merge(off, on=key, suffixes=(f"_{names[0]}", f"_{names[1]}"))


def _label(row: pd.Series, columns: Sequence[str]) -> str:
    return "/".join(
        str(row[column]) for column in columns if column in row.index and not pd.isna(row[column])
    )


def _fmt(value: float) -> str:
    return "nan" if pd.isna(value) else f"{value:.3g}"


def _conclude(claim: str, evidence: pd.DataFrame, rule: str, describe: Callable[[pd.Series], str]) -> Verdict:
    """Confirmed when every evidence row holds, else refuted with the failing rows described."""
    evidence = evidence.reset_index(drop=True)
    holding = int(evidence["holds"].sum())
    total = len(evidence)
    if holding == total:
        return Verdict(claim, CONFIRMED, f"{rule}: holds in all {total} configuration(s).", evidence)
    failures = evidence[~evidence["holds"]]
    listed = "; ".join(describe(row) for _, row in failures.head(MAX_LISTED_FAILURES).iterrows())
    more = f"; and {len(failures) - MAX_LISTED_FAILURES} more" if len(failures) > MAX_LISTED_FAILURES else ""
    summary = f"{rule}: holds in {holding} of {total} configuration(s); fails in: {listed}{more}."
    return Verdict(claim, REFUTED, summary, evidence)


def check_translated_crops(table: pd.DataFrame | None) -> Verdict:
    """C1: per layer, semantic AUROC (same- vs different-image pairs) and same-image mean above spatio-semantic."""
    if _empty(table):
        return _not_run("C1", "no translated_crops results (tables/crops_separation.csv).")
    require_columns(table, [*LAYER_KEY, "rsm", "matcher", "auroc", "same_mean"], "crops_separation")
    unknown = sorted(set(table["rsm"]) - {"semantic", "spatio_semantic"})
    if unknown:
        raise ValueError(f"crops_separation column 'rsm' has unknown value(s) {unknown}")
    names = ("semantic", "spatio_semantic")
    evidence = _paired(table, LAYER_KEY, table["rsm"] == "semantic", ["auroc", "same_mean"], names)
    if evidence.empty:
        return _not_run("C1", "no layer has both a semantic and a spatio-semantic row.")
    evidence["holds"] = (evidence["auroc_semantic"] > evidence["auroc_spatio_semantic"]) & (
        evidence["same_mean_semantic"] > evidence["same_mean_spatio_semantic"]
    )

    def describe(row: pd.Series) -> str:
        return (
            f"{_label(row, [*LAYER_KEY, 'matcher'])} (AUROC {_fmt(row['auroc_semantic'])} vs "
            f"{_fmt(row['auroc_spatio_semantic'])}, same-image mean {_fmt(row['same_mean_semantic'])} vs "
            f"{_fmt(row['same_mean_spatio_semantic'])})"
        )

    rule = "semantic AUROC and same-image mean > spatio-semantic, per layer"
    return _conclude("C1", evidence, rule, describe)


def _gain_by_kernel(evidence: pd.DataFrame, metric: str) -> str:
    gains = (evidence[f"{metric}_invariant"] - evidence[f"{metric}_non_invariant"]).groupby(
        evidence["kernel"]
    )
    return ", ".join(f"{kernel} {gain:+.3g}" for kernel, gain in gains.mean().items())


def check_retrieval(table: pd.DataFrame | None, claim: str, datasets: Sequence[str]) -> Verdict:
    """C2/C3: invariant F1@1 above non-invariant F1@1 for every backbone x kernel (x layer x matcher)."""
    where = f"retrieval on {', '.join(datasets)}"
    if _empty(table):
        return _not_run(claim, f"no {where} results (tables/retrieval.csv).")
    require_columns(table, [*LAYER_KEY, "matcher", "invariant", "f1_at_1"], "retrieval")
    table = table[table["dataset"].isin(datasets)]
    if table.empty:
        return _not_run(claim, f"no {where} results (tables/retrieval.csv).")
    names = ("invariant", "non_invariant")
    evidence = _paired(table, LAYER_KEY, as_bool(table["invariant"], "invariant"), ["f1_at_1"], names)
    if evidence.empty:
        return _not_run(claim, f"no {where} configuration has both invariant and non-invariant rows.")
    evidence["gain"] = evidence["f1_at_1_invariant"] - evidence["f1_at_1_non_invariant"]
    evidence["holds"] = evidence["gain"] > 0

    def describe(row: pd.Series) -> str:
        return (
            f"{_label(row, [*LAYER_KEY, 'matcher'])} (F1@1 {_fmt(row['f1_at_1_invariant'])} vs "
            f"{_fmt(row['f1_at_1_non_invariant'])})"
        )

    verdict = _conclude(claim, evidence, "invariant F1@1 > non-invariant", describe)
    summary = f"{verdict.summary} Mean F1@1 gain by kernel: {_gain_by_kernel(evidence, 'f1_at_1')}."
    return Verdict(claim, verdict.status, summary, verdict.evidence)


def check_egoobjects_retrieval(table: pd.DataFrame | None) -> Verdict:
    """C2 on EgoObjects or its synthetic stand-in (synthetic_scenes)."""
    return check_retrieval(table, "C2", ("egoobjects", "synthetic_scenes"))


def check_cityscapes_retrieval(table: pd.DataFrame | None) -> Verdict:
    """C3 on Cityscapes or its synthetic stand-in (synthetic_cityscapes)."""
    return check_retrieval(table, "C3", ("cityscapes", "synthetic_cityscapes"))


def check_class_probability(table: pd.DataFrame | None) -> Verdict:
    """C4: Pearson and Spearman of similarity vs JSD negative, and more negative with invariance."""
    if _empty(table):
        return _not_run("C4", "no class_probability results (tables/class_probability.csv).")
    require_columns(table, [*LAYER_KEY, "matcher", "invariant", "pearson", "spearman"], "class_probability")
    names = ("invariant", "non_invariant")
    side = as_bool(table["invariant"], "invariant")
    evidence = _paired(table, LAYER_KEY, side, ["pearson", "spearman"], names)
    if evidence.empty:
        return _not_run("C4", "no configuration has both invariant and non-invariant rows.")
    for metric in ("pearson", "spearman"):
        invariant, plain = evidence[f"{metric}_invariant"], evidence[f"{metric}_non_invariant"]
        evidence[f"{metric}_holds"] = (invariant < 0) & (plain < 0) & (invariant < plain)
    evidence["holds"] = evidence["pearson_holds"] & evidence["spearman_holds"]

    def describe(row: pd.Series) -> str:
        return (
            f"{_label(row, [*LAYER_KEY, 'matcher'])} (Pearson {_fmt(row['pearson_invariant'])} vs "
            f"{_fmt(row['pearson_non_invariant'])}, Spearman {_fmt(row['spearman_invariant'])} vs "
            f"{_fmt(row['spearman_non_invariant'])})"
        )

    rule = "Pearson and Spearman < 0 for both, invariant < non-invariant"
    return _conclude("C4", evidence, rule, describe)


def _matcher_evidence(unit: dict, rows: pd.DataFrame) -> dict | None:
    """C5's numbers for one source (and layer), or None when it lacks batch_optimal, identity or an exact
    matcher."""
    largest = rows[rows["spatial_size"] == rows["spatial_size"].max()]
    exact = largest[largest["exact"]]
    batch = largest[largest["matcher"] == "batch_optimal"]
    if exact.empty or batch.empty or not (rows["matcher"] == "identity").any():
        return None
    fastest = exact.loc[exact["ms_per_pair"].idxmin()]
    identity_lowest = all(
        (group["matcher"] != "identity").all()
        or group.loc[group["matcher"] == "identity", "quality_ratio"].max() <= group["quality_ratio"].min()
        for _, group in rows.groupby("spatial_size")
    )
    quality, ms = float(batch["quality_ratio"].iloc[0]), float(batch["ms_per_pair"].iloc[0])
    return {
        **unit,
        "spatial_size": largest["spatial_size"].iloc[0],
        "batch_optimal_quality": quality,
        "batch_optimal_ms": ms,
        "exact_matcher": fastest["matcher"],
        "exact_ms": float(fastest["ms_per_pair"]),
        "identity_lowest": identity_lowest,
        "holds": bool(quality >= C5_MIN_QUALITY and ms < fastest["ms_per_pair"] and identity_lowest),
    }


def check_matchers(table: pd.DataFrame | None) -> Verdict:
    """C5, per source (e.g. one backbone's features, all its layers): at the source's largest spatial size
    batch_optimal quality >= 0.9 and faster than the fastest exact matcher; identity has the lowest quality at
    every size. Small layers, where exact matching is cheap anyway, are not where the claim is made."""
    if _empty(table):
        return _not_run("C5", "no matchers results (tables/matchers.csv).")
    require_columns(
        table, ["source", "spatial_size", "matcher", "ms_per_pair", "quality_ratio", "exact"], "matchers"
    )
    unit = ["source"]
    table = table.assign(exact=as_bool(table["exact"], "exact"))
    key = [*unit, "spatial_size", "matcher", "exact"]
    means = table.groupby(key, dropna=False)[["ms_per_pair", "quality_ratio"]].mean().reset_index()
    rows = [
        _matcher_evidence(dict(zip(unit, values, strict=True)), group)
        for values, group in means.groupby(unit, dropna=False, sort=True)
    ]
    evidence = pd.DataFrame([row for row in rows if row is not None])
    if evidence.empty:
        return _not_run("C5", "no source has batch_optimal, identity and an exact matcher.")

    def describe(row: pd.Series) -> str:
        return (
            f"{_label(row, unit)} at S={row['spatial_size']} (batch_optimal quality "
            f"{_fmt(row['batch_optimal_quality'])}, {_fmt(row['batch_optimal_ms'])} ms vs {row['exact_matcher']} "
            f"{_fmt(row['exact_ms'])} ms, identity lowest: {row['identity_lowest']})"
        )

    rule = f"batch_optimal quality >= {C5_MIN_QUALITY} and faster than exact at the largest size, identity lowest"
    return _conclude("C5", evidence, rule, describe)


def check_layers_cka(table: pd.DataFrame | None) -> Verdict:
    """C6: CKA(semantic, spatio-semantic) rises as spatial size shrinks: Spearman(size, CKA) < 0 per model."""
    if _empty(table):
        return _not_run("C6", "no layers_cka results (tables/layers_cka.csv).")
    group_key = ["dataset", "backbone", "kernel", "matcher"]
    require_columns(table, [*group_key, "layer", "spatial_size", "cka"], "layers_cka")
    layers = table.groupby([*group_key, "layer", "spatial_size"], dropna=False)["cka"].mean().reset_index()
    rows, skipped = [], 0
    for values, group in layers.groupby(group_key, dropna=False, sort=True):
        group = group.sort_values("spatial_size", ascending=False)
        if group["spatial_size"].nunique() < 2:
            skipped += 1
            continue
        rho = float(group["spatial_size"].rank().corr(group["cka"].rank()))  # Spearman: Pearson of ranks
        rows.append(
            {
                **dict(zip(group_key, values, strict=True)),
                "spatial_sizes": ", ".join(str(size) for size in group["spatial_size"]),
                "cka_by_size": ", ".join(_fmt(cka) for cka in group["cka"]),
                "spearman": rho,
                "holds": bool(np.isfinite(rho) and rho < 0),
            }
        )
    note = f" ({skipped} model(s) with a single spatial size skipped)" if skipped else ""
    if not rows:
        return _not_run("C6", f"no model has layers of two or more spatial sizes{note}.")

    def describe(row: pd.Series) -> str:
        return f"{_label(row, group_key)} (Spearman {_fmt(row['spearman'])}, CKA {row['cka_by_size']})"

    verdict = _conclude("C6", pd.DataFrame(rows), "Spearman(spatial size, CKA) < 0", describe)
    return Verdict("C6", verdict.status, verdict.summary + note, verdict.evidence)


CLAIMS = (
    Claim(
        "C1",
        "translated crops",
        "Crops of the same image are more similar under the semantic RSM than the spatio-semantic one, in every "
        "layer; the two value distributions separate.",
        "crops_separation",
        check_translated_crops,
    ),
    Claim(
        "C2",
        "retrieval, EgoObjects",
        "Permutation invariance raises F1@1 for every architecture and every kernel.",
        "retrieval",
        check_egoobjects_retrieval,
    ),
    Claim(
        "C3",
        "retrieval, Cityscapes",
        "Invariance raises F1@1, most for cosine and RBF.",
        "retrieval",
        check_cityscapes_retrieval,
    ),
    Claim(
        "C4",
        "class probabilities",
        "Similarity correlates negatively with the Jensen-Shannon divergence of predicted class probabilities, "
        "more strongly (Pearson and Spearman) with invariance.",
        "class_probability",
        check_class_probability,
    ),
    Claim(
        "C5",
        "matchers",
        "Batch-Optimal reaches near-optimal matching quality at a fraction of the exact runtime at large "
        'spatial sizes; "No Match" (identity) is the floor.',
        "matchers",
        check_matchers,
    ),
    Claim(
        "C6",
        "layers",
        "CKA between semantic and spatio-semantic RSMs of one model rises as the spatial extent shrinks in "
        "later layers.",
        "layers_cka",
        check_layers_cka,
    ),
)


def judge_claims(tables: Mapping[str, pd.DataFrame]) -> list[Verdict]:
    """A verdict for every claim of CLAIMS from `tables` (table name -> all runs' rows); missing = not run."""
    return [claim.check(tables.get(claim.table)) for claim in CLAIMS]
