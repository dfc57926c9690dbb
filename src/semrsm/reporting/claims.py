"""Verdicts on the paper's claims (C1-C6 of paper/claims.md) from effect sizes with bootstrap intervals.

Every claim is judged per configuration (dataset x backbone x layer x kernel x matcher, or per model for C6,
per source and spatial size for C5) on an effect with a 95 % percentile interval from a seeded bootstrap over
the independent units of that experiment (``semrsm.metrics.bootstrap``): queries for retrieval, images for the
class-probability correlations and the CKA trend, source images for translated crops, pairs for the matchers;
where a model was trained with several seeds, the seeds are resampled too (the same images in every seed).
A configuration *supports* the claim when its interval lies on the claim's side, *contradicts* it when the
interval lies on the other side, and is *inconclusive* otherwise. A claim is

- "confirmed" when every configuration it covers supports it,
- "refuted" when at least one contradicts it (the claims are universal: "every layer", "every kernel"),
- "inconclusive" otherwise, and "not run" when no result bears on it.

Rules never judge what the method guarantees by construction (an exact matching always scores at least the
identity) nor a wall-clock race between two exact solvers. Each verdict names the data and models it rests on.
Rows repeating one configuration and seed (a run and a sweep of the same point) are taken from one run only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from semrsm.metrics.bootstrap import (
    N_RESAMPLES,
    Interval,
    interval,
    mean_over_seeds,
    mean_replicates,
    resample_counts,
)
from semrsm.reporting import provenance

CONFIRMED, REFUTED, INCONCLUSIVE, NOT_RUN = "confirmed", "refuted", "inconclusive", "not run"
STATUSES = (CONFIRMED, REFUTED, INCONCLUSIVE, NOT_RUN)
SUPPORTS, CONTRADICTS, UNDECIDED = "supports", "contradicts", "inconclusive"
LAYER_KEY = ["dataset", "backbone", "layer", "kernel", "matcher"]
MODEL_KEY = ["dataset", "backbone", "kernel", "matcher"]
MAX_LISTED = 8
C5_MIN_QUALITY = 0.9  # "near-optimal": mean shift-invariant quality of at least 0.9
C5_MIN_PAIRS = 64
C6_MIN_SIZES = 4
FULL_SAMPLE = -1  # the ``replicate`` value of a bootstrap table's full-sample row
C4_EFFECTS = ("pearson_semantic", "pearson_difference", "spearman_semantic", "spearman_difference")


@dataclass(frozen=True)
class Verdict:
    """One claim's outcome: status (one of STATUSES), the rule, a summary with the numbers and what they rest
    on, and the evidence table (one row per configuration: effect, interval, units, outcome)."""

    claim: str
    status: str
    summary: str
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)
    rule: str = ""
    basis: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status must be one of {STATUSES}, got {self.status!r}")


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, the table that carries its evidence and the function that judges it."""

    id: str
    experiment: str
    statement: str
    table: str
    check: Callable[[Mapping[str, pd.DataFrame]], Verdict]


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


def outcome(
    value: Interval, support: Callable[[Interval], bool], contradict: Callable[[Interval], bool]
) -> str:
    """SUPPORTS, CONTRADICTS or UNDECIDED for one interval (NaN bounds are undecided)."""
    if not (np.isfinite(value.low) and np.isfinite(value.high)):
        return UNDECIDED
    if support(value):
        return SUPPORTS
    return CONTRADICTS if contradict(value) else UNDECIDED


def positive(value: Interval) -> bool:
    return value.low > 0


def negative(value: Interval) -> bool:
    return value.high < 0


def combine(outcomes: Sequence[str]) -> str:
    """A configuration judged on several intervals: contradicts if any does, supports if all do."""
    if CONTRADICTS in outcomes:
        return CONTRADICTS
    return SUPPORTS if all(o == SUPPORTS for o in outcomes) else UNDECIDED


def one_run(table: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """Per ``key`` group, only the rows of its first run (by name): a configuration and seed counted once."""
    table = with_seed(table)
    if "run" not in table.columns or table.empty:
        return table
    first = table.groupby(list(key), dropna=False)["run"].transform("min")
    return table[table["run"] == first]


def with_seed(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``seed`` column (0 where the stage wrote none)."""
    return table if "seed" in table.columns else table.assign(seed=0)


def seeded(estimates: Sequence[float], replicates: Sequence[np.ndarray], n: int) -> Interval:
    """The effect averaged over seeds, its interval resampling seeds and units (see mean_over_seeds)."""
    return interval(float(np.mean(estimates)), mean_over_seeds(np.vstack(replicates)), n)


def interval_columns(prefix: str, value: Interval) -> dict[str, float]:
    return {prefix: value.estimate, f"{prefix}_low": value.low, f"{prefix}_high": value.high}


def bootstrap_effects(
    table: pd.DataFrame, key: Sequence[str], statistic: Callable[[pd.DataFrame], np.ndarray]
) -> list[tuple[dict, Interval, int]]:
    """Per configuration of a bootstrap table (rows ``replicate`` = FULL_SAMPLE, 0 .. B-1 per seed):
    (its key values, the interval of ``statistic`` (rows -> values, in row order), number of seeds)."""
    table = one_run(table, [*key, "seed"])
    results = []
    for values, rows in table.groupby(list(key), dropna=False, sort=True):
        estimates, replicates = [], []
        for _, seed_rows in rows.groupby("seed", sort=True):
            seed_rows = seed_rows.sort_values("replicate")
            stats = statistic(seed_rows)
            full = seed_rows["replicate"].to_numpy() == FULL_SAMPLE
            estimates.append(float(stats[full][0]))
            replicates.append(stats[~full])
        n = int(rows["n_units"].iloc[0])
        results.append(
            (dict(zip(key, values, strict=True)), seeded(estimates, replicates, n), len(estimates))
        )
    return results


def _fmt(value: float) -> str:
    return "nan" if pd.isna(value) else f"{value:+.3f}"


def _describe(row: pd.Series, columns: Sequence[str], effects: str | Sequence[str]) -> str:
    label = "/".join(str(row[c]) for c in columns if c in row.index and not pd.isna(row[c]) and row[c] != "")
    shown = ", ".join(
        f"{e} {_fmt(row[e])} [{_fmt(row[e + '_low'])}, {_fmt(row[e + '_high'])}]"
        for e in ([effects] if isinstance(effects, str) else effects)
    )
    return f"{label}: {shown}, n={row['n_units']} {row['units']}, {row['seeds']} seed(s) -> {row['outcome']}"


def conclude(
    claim: str,
    evidence: pd.DataFrame,
    rule: str,
    columns: Sequence[str],
    effect: str | Sequence[str],
    note: str = "",
) -> Verdict:
    """The claim's status from the configurations' outcomes, with the rule, the intervals and the basis."""
    evidence = provenance.annotate(evidence.reset_index(drop=True))
    counts = evidence["outcome"].value_counts()
    support, contradict = int(counts.get(SUPPORTS, 0)), int(counts.get(CONTRADICTS, 0))
    total = len(evidence)
    if contradict:
        status = REFUTED
    elif support == total:
        status = CONFIRMED
    else:
        status = INCONCLUSIVE
    shown = pd.concat(
        [evidence[evidence["outcome"] == CONTRADICTS], evidence[evidence["outcome"] != CONTRADICTS]]
    )
    listed = "; ".join(_describe(row, columns, effect) for _, row in shown.head(MAX_LISTED).iterrows())
    more = f"; and {total - MAX_LISTED} more" if total > MAX_LISTED else ""
    basis = provenance.describe(evidence)
    summary = (
        f"Rule: {rule}. {support} of {total} configuration(s) support, {contradict} contradict, "
        f"{total - support - contradict} inconclusive (95 % bootstrap intervals). {listed}{more}.{note} "
        f"Rests on: {basis}."
    )
    return Verdict(claim, status, summary, evidence, rule, basis)


def _not_run(claim: str, why: str) -> Verdict:
    return Verdict(claim, NOT_RUN, why)


def _table(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame | None:
    table = tables.get(name)
    return None if table is None or len(table) == 0 else table


# C1 --------------------------------------------------------------------------------------------------------


def check_translated_crops(tables: Mapping[str, pd.DataFrame]) -> Verdict:
    """C1, per layer: the AUROC gain (semantic minus spatio-semantic, same- vs different-image pairs) with an
    interval over source images (and seeds); supports when it is > 0 and the semantic AUROC > 0.5."""
    table = _table(tables, "crops_bootstrap")
    if table is None:
        return _not_run("C1", "no translated_crops results (tables/crops_bootstrap.csv).")
    require_columns(
        table,
        [*LAYER_KEY, "replicate", "n_units", "auroc_semantic", "auroc_spatio_semantic"],
        "crops_bootstrap",
    )

    def gain(rows: pd.DataFrame) -> np.ndarray:
        return (rows["auroc_semantic"] - rows["auroc_spatio_semantic"]).to_numpy()

    semantic = {
        tuple(k.values()): v
        for k, v, _ in bootstrap_effects(table, LAYER_KEY, lambda r: r["auroc_semantic"].to_numpy())
    }
    rows = []
    for keys, value, seeds in bootstrap_effects(table, LAYER_KEY, gain):
        auroc = semantic[tuple(keys.values())]
        verdict = combine(
            [
                outcome(value, positive, negative),
                outcome(auroc, lambda v: v.low > 0.5, lambda v: v.high < 0.5),
            ]
        )
        rows.append(
            {
                **keys,
                **interval_columns("auroc_gain", value),
                **interval_columns("auroc_semantic", auroc),
                "n_units": value.n,
                "units": "source images",
                "seeds": seeds,
                "outcome": verdict,
            }
        )
    rule = (
        "per layer, AUROC(semantic) - AUROC(spatio-semantic) > 0 and AUROC(semantic) > 0.5 (interval over "
        "source images and seeds)"
    )
    return conclude("C1", pd.DataFrame(rows), rule, LAYER_KEY, ("auroc_gain", "auroc_semantic"))


# C2, C3 ----------------------------------------------------------------------------------------------------


def query_table(tables: Mapping[str, pd.DataFrame], datasets: Sequence[str]) -> pd.DataFrame | None:
    """The per-query retrieval rows of ``datasets`` (one run per configuration and seed), or None."""
    table = _table(tables, "retrieval_queries")
    if table is None:
        return None
    require_columns(table, [*LAYER_KEY, "query", "f1_semantic", "f1_spatio_semantic"], "retrieval_queries")
    table = one_run(table[table["dataset"].isin(datasets)], [*LAYER_KEY, "seed"])
    return None if table.empty else table.assign(gain=table["f1_semantic"] - table["f1_spatio_semantic"])


def per_query_effect(rows: pd.DataFrame, column: str) -> tuple[Interval, int]:
    """Mean of per-query ``column`` with its interval over queries (and seeds: the same queries each)."""
    estimates, replicates, n = [], [], 0
    for _, seed_rows in rows.groupby("seed", sort=True):
        values = seed_rows.sort_values("query")[column].to_numpy()
        n = len(values)
        estimates.append(float(values.mean()))
        replicates.append(mean_replicates(values, resample_counts(n, N_RESAMPLES)))
    return seeded(estimates, replicates, n), len(estimates)


def retrieval_evidence(table: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: F1@1 gain (semantic minus spatio-semantic) with its interval over queries (and seeds)."""
    rows = []
    for values, group in table.groupby(LAYER_KEY, dropna=False, sort=True):
        value, seeds = per_query_effect(group, "gain")
        rows.append(
            {
                **dict(zip(LAYER_KEY, values, strict=True)),
                "f1_semantic": float(group["f1_semantic"].mean()),
                "f1_spatio_semantic": float(group["f1_spatio_semantic"].mean()),
                **interval_columns("f1_gain", value),
                "n_units": value.n,
                "units": "queries",
                "seeds": seeds,
                "outcome": outcome(value, positive, negative),
            }
        )
    return pd.DataFrame(rows)


def check_retrieval(tables: Mapping[str, pd.DataFrame], claim: str, datasets: Sequence[str]) -> Verdict:
    """C2/C3 first part: the F1@1 gain of invariance > 0 for every backbone x kernel (x layer x matcher)."""
    table = query_table(tables, datasets)
    if table is None:
        return _not_run(
            claim, f"no retrieval results on {', '.join(datasets)} (tables/retrieval_queries.csv)."
        )
    rule = (
        "F1@1(semantic) - F1@1(spatio-semantic) > 0 per backbone and kernel (paired bootstrap over queries)"
    )
    return conclude(claim, retrieval_evidence(table), rule, LAYER_KEY, "f1_gain")


def check_egoobjects_retrieval(tables: Mapping[str, pd.DataFrame]) -> Verdict:
    """C2 on EgoObjects or its synthetic stand-in (synthetic_scenes)."""
    return check_retrieval(tables, "C2", ("egoobjects", "synthetic_scenes"))


def kernel_gain_evidence(table: pd.DataFrame, reference: str = "linear") -> pd.DataFrame:
    """Per dataset/backbone/layer/matcher and kernel k in (cosine, rbf): gain(k) - gain(linear) per query, with
    its paired interval over queries (and seeds)."""
    key = ["dataset", "backbone", "layer", "matcher"]
    rows = []
    for values, group in table.groupby(key, dropna=False, sort=True):
        wide = group.pivot_table(index=["seed", "query"], columns="kernel", values="gain", aggfunc="first")
        if reference not in wide.columns:
            continue
        for kernel in ("cosine", "rbf"):
            if kernel not in wide.columns:
                continue
            diff = (wide[kernel] - wide[reference]).dropna().rename("diff").reset_index()
            value, seeds = per_query_effect(diff, "diff")
            rows.append(
                {
                    **dict(zip(key, values, strict=True)),
                    "kernel": f"{kernel} vs {reference}",
                    **interval_columns("gain_difference", value),
                    "n_units": value.n,
                    "units": "queries",
                    "seeds": seeds,
                    "outcome": outcome(value, positive, negative),
                }
            )
    return pd.DataFrame(rows)


def check_cityscapes_retrieval(tables: Mapping[str, pd.DataFrame]) -> Verdict:
    """C3 on Cityscapes or its synthetic stand-in: invariance raises F1@1 (every configuration) and raises it
    most for cosine and RBF (gain of cosine and of rbf above the gain of linear)."""
    datasets = ("cityscapes", "synthetic_cityscapes")
    gains = check_retrieval(tables, "C3", datasets)
    if gains.status == NOT_RUN:
        return gains
    by_kernel = kernel_gain_evidence(query_table(tables, datasets))
    if by_kernel.empty:
        note = " 'Most for cosine and RBF' not judged: no configuration ran linear and cosine or rbf."
        return Verdict(
            "C3",
            INCONCLUSIVE if gains.status == CONFIRMED else gains.status,
            gains.summary + note,
            gains.evidence,
            gains.rule,
            gains.basis,
        )
    rule = "gain(cosine) - gain(linear) > 0 and gain(rbf) - gain(linear) > 0 (paired over queries)"
    most = conclude(
        "C3", by_kernel, rule, ["dataset", "backbone", "layer", "matcher", "kernel"], "gain_difference"
    )
    statuses = {gains.status, most.status}
    status = REFUTED if REFUTED in statuses else CONFIRMED if statuses == {CONFIRMED} else INCONCLUSIVE
    evidence = pd.concat(
        [gains.evidence.assign(part="gain"), most.evidence.assign(part="most for cosine/rbf")]
    )
    summary = f"(a) raises F1@1 -> {gains.status}: {gains.summary} (b) most for cosine and RBF -> {most.status}: {most.summary}"
    return Verdict("C3", status, summary, evidence, f"(a) {gains.rule}; (b) {rule}", gains.basis)


# C4 --------------------------------------------------------------------------------------------------------


def check_class_probability(tables: Mapping[str, pd.DataFrame]) -> Verdict:
    """C4 per configuration (all pairs): Pearson and Spearman of similarity vs JSD negative with invariance, and
    more negative than without (differences with intervals over images, and seeds). Same-source and
    different-source pairs of views (where the dataset has them) are shown, not judged."""
    table = _table(tables, "class_probability_bootstrap")
    if table is None:
        return _not_run("C4", "no class_probability results (tables/class_probability_bootstrap.csv).")
    methods = ("pearson", "spearman")
    columns = [f"{m}_{side}" for m in methods for side in ("semantic", "spatio_semantic")]
    require_columns(
        table, [*LAYER_KEY, "pairs", "replicate", "n_units", *columns], "class_probability_bootstrap"
    )
    key = [*LAYER_KEY, "pairs"]
    effects: dict[str, dict] = {}
    for method in methods:

        def diff(rows: pd.DataFrame, m: str = method) -> np.ndarray:
            return (rows[f"{m}_semantic"] - rows[f"{m}_spatio_semantic"]).to_numpy()

        effects[f"{method}_difference"] = {
            tuple(k.values()): (v, s) for k, v, s in bootstrap_effects(table, key, diff)
        }
        for side in ("semantic", "spatio_semantic"):
            name = f"{method}_{side}"
            found = bootstrap_effects(table, key, lambda rows, c=name: rows[c].to_numpy())
            effects[name] = {tuple(k.values()): (v, s) for k, v, s in found}
    rows = []
    for values in sorted(effects["pearson_difference"], key=str):
        row = dict(zip(key, values, strict=True))
        outcomes = []
        for method in methods:
            difference, seeds = effects[f"{method}_difference"][values]
            correlation = effects[f"{method}_semantic"][values][0]
            row |= interval_columns(f"{method}_difference", difference)
            row |= interval_columns(f"{method}_semantic", correlation)
            row[f"{method}_spatio_semantic"] = effects[f"{method}_spatio_semantic"][values][0].estimate
            outcomes += [outcome(correlation, negative, positive), outcome(difference, negative, positive)]
        row |= {"n_units": difference.n, "units": "images", "seeds": seeds, "outcome": combine(outcomes)}
        rows.append(row)
    evidence = pd.DataFrame(rows)
    judged = evidence[evidence["pairs"] == "all"].drop(columns="pairs")
    shown = evidence[evidence["pairs"] != "all"]
    note = ""
    if not shown.empty:
        parts = [
            _describe(row, [*LAYER_KEY, "pairs"], C4_EFFECTS) for _, row in shown.head(MAX_LISTED).iterrows()
        ]
        note = " Not judged, shown: " + "; ".join(parts) + "."
    rule = (
        "with invariance, Pearson and Spearman(similarity, JSD) < 0, and semantic - spatio-semantic < 0 for both "
        "(image-level bootstrap over all pairs)"
    )
    verdict = conclude("C4", judged, rule, LAYER_KEY, C4_EFFECTS, note)
    evidence = pd.concat(
        [verdict.evidence.assign(pairs="all"), provenance.annotate(shown)], ignore_index=True
    )
    return Verdict("C4", verdict.status, verdict.summary, evidence, verdict.rule, verdict.basis)


# C5 --------------------------------------------------------------------------------------------------------


def check_matchers(tables: Mapping[str, pd.DataFrame]) -> Verdict:
    """C5 per source and spatial size S > window (where batch_optimal is not exact): the raw batch_optimal
    matching's shift-invariant quality (m - m_identity) / (m_opt - m_identity) >= 0.9 and its median CPU time
    per pair below the exact reference's, both with intervals over pairs."""
    table = _table(tables, "matchers_pairs")
    if table is None:
        return _not_run("C5", "no matchers results (tables/matchers_pairs.csv).")
    require_columns(
        table,
        [
            "source",
            "spatial_size",
            "matcher",
            "window",
            "pair",
            "cpu_ms",
            "score",
            "identity_score",
            "optimum",
            "reference",
            "fallback",
        ],
        "matchers_pairs",
    )
    table = table.assign(layer=table["layer"].fillna("")) if "layer" in table else table.assign(layer="")
    key = ["source", "layer", "spatial_size"]
    table = one_run(table, [*key, "matcher"])
    rows, skipped = [], 0
    for values, group in table.groupby(key, sort=True):
        batch = group[group["matcher"] == "batch_optimal"].sort_values("pair")
        exact = group[group["matcher"] == group["reference"]].sort_values("pair")
        if batch.empty or exact.empty:
            continue
        size, window = int(values[2]), int(batch["window"].iloc[0])
        if size <= window or len(batch) < C5_MIN_PAIRS:
            skipped += 1  # one window holds every position (batch_optimal is exact there), or too few pairs
            continue
        gap = (batch["optimum"] - batch["identity_score"]).to_numpy()
        defined = gap > 0
        quality = (batch["score"].to_numpy()[defined] - batch["identity_score"].to_numpy()[defined]) / gap[
            defined
        ]
        counts = resample_counts(len(quality), N_RESAMPLES)
        q = interval(float(quality.mean()), mean_replicates(quality, counts), len(quality))
        ratio = speed_ratio(exact["cpu_ms"].to_numpy(), batch["cpu_ms"].to_numpy())
        verdict = combine(
            [
                outcome(q, lambda v: v.low >= C5_MIN_QUALITY, lambda v: v.high < C5_MIN_QUALITY),
                outcome(ratio, lambda v: v.low > 1, lambda v: v.high < 1),
            ]
        )
        dataset = group["dataset"].iloc[0] if "dataset" in group else None
        backbone = group["backbone"].iloc[0] if "backbone" in group else None
        rows.append(
            {
                "source": values[0],
                "layer": values[1],
                "dataset": dataset,
                "backbone": backbone,
                "spatial_size": size,
                "window": window,
                **interval_columns("quality", q),
                **interval_columns("speed_ratio", ratio),
                "batch_optimal_median_ms": float(np.median(batch["cpu_ms"])),
                "exact_median_ms": float(np.median(exact["cpu_ms"])),
                "reference": exact["reference"].iloc[0],
                "fallback_pairs": int(as_bool(batch["fallback"], "fallback").sum()),
                "undefined_pairs": int((~defined).sum()),
                "n_units": int(len(batch)),
                "units": "pairs",
                "seeds": 1,
                "outcome": verdict,
            }
        )
    note = (
        f" {skipped} source size(s) with S <= window not judged (batch_optimal is exact there)."
        if skipped
        else ""
    )
    if not rows:
        return _not_run(
            "C5", "no source has batch_optimal and the exact reference at a size above the window." + note
        )
    rule = (
        f"where S > window: mean quality (m - m_identity)/(m_opt - m_identity) of raw batch_optimal >= "
        f"{C5_MIN_QUALITY} and median CPU time exact / batch_optimal > 1 (intervals over pairs)"
    )
    effects = ("quality", "speed_ratio")
    return conclude("C5", pd.DataFrame(rows), rule, ["source", "layer", "spatial_size"], effects, note)


def speed_ratio(exact_ms: np.ndarray, approximate_ms: np.ndarray) -> Interval:
    """Median exact time over median approximate time, with an interval resampling the (paired) pairs."""
    n = len(exact_ms)
    counts = resample_counts(n, N_RESAMPLES)
    replicates = np.array(
        [np.median(np.repeat(exact_ms, c)) / np.median(np.repeat(approximate_ms, c)) for c in counts]
    )
    return interval(float(np.median(exact_ms) / np.median(approximate_ms)), replicates, n)


# C6 --------------------------------------------------------------------------------------------------------


def size_slopes(rows: pd.DataFrame) -> np.ndarray:
    """Per replicate (FULL_SAMPLE first), the least-squares slope of CKA against log2(spatial size), layers of
    one size averaged first."""
    means = rows.groupby(["replicate", "spatial_size"])["cka"].mean().unstack("spatial_size")
    x = np.log2(means.columns.to_numpy(dtype=np.float64))
    x = x - x.mean()
    return means.to_numpy() @ x / (x @ x)


def check_layers_cka(tables: Mapping[str, pd.DataFrame]) -> Verdict:
    """C6 per model: CKA(semantic, spatio-semantic) rises as the spatial size shrinks: the slope of CKA
    against log2(S) over >= 4 sizes is < 0, with an interval from half-samples of the images (centred on the
    estimate), and seeds."""
    table = _table(tables, "layers_cka_bootstrap")
    if table is None:
        return _not_run("C6", "no layers_cka results (tables/layers_cka_bootstrap.csv).")
    require_columns(
        table, [*MODEL_KEY, "layer", "spatial_size", "replicate", "n_units", "cka"], "layers_cka_bootstrap"
    )
    table = one_run(table, [*MODEL_KEY, "seed"])
    rows, skipped = [], []
    for values, group in table.groupby(MODEL_KEY, dropna=False, sort=True):
        sizes = sorted(group["spatial_size"].unique(), reverse=True)
        if len(sizes) < C6_MIN_SIZES:
            skipped.append(f"{values[1]} ({len(sizes)} size(s))")
            continue
        estimates, replicates = [], []
        for _, seed_rows in group.groupby("seed", sort=True):
            slopes = size_slopes(seed_rows)
            estimates.append(float(slopes[0]))
            # half-sample replicates: their spread is the estimate's, but a CKA of n/2 images carries an
            # n-dependent bias, so they are centred on the full-sample estimate
            replicates.append(slopes[1:] - np.nanmean(slopes[1:]) + slopes[0])
        value = seeded(estimates, replicates, int(group["n_units"].iloc[0]))
        full = group[group["replicate"] == FULL_SAMPLE].groupby("spatial_size")["cka"].mean()
        rows.append(
            {
                **dict(zip(MODEL_KEY, values, strict=True)),
                "spatial_sizes": ", ".join(str(int(s)) for s in sizes),
                "cka_by_size": ", ".join(f"{full[s]:.3f}" for s in sizes),
                **interval_columns("slope", value),
                "n_units": value.n,
                "units": "images",
                "seeds": len(estimates),
                "outcome": outcome(value, negative, positive),
            }
        )
    note = f" Not judged (< {C6_MIN_SIZES} spatial sizes): {', '.join(skipped)}." if skipped else ""
    if not rows:
        return _not_run("C6", f"no model has layers of {C6_MIN_SIZES} or more spatial sizes.{note}")
    rule = f"slope of CKA against log2(spatial size) < 0 over >= {C6_MIN_SIZES} sizes per model (interval over images and seeds)"
    return conclude("C6", pd.DataFrame(rows), rule, MODEL_KEY, "slope", note)


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
    """A verdict for every claim of CLAIMS from ``tables`` (table name -> all runs' rows); missing = not run."""
    return [claim.check(tables) for claim in CLAIMS]
