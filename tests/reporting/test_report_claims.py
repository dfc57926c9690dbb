"""Claim verdicts from effect sizes with bootstrap intervals: each rule can confirm, refute and stay inconclusive."""

import numpy as np
import pandas as pd
import pytest

from semrsm.metrics.bootstrap import N_RESAMPLES
from semrsm.reporting.claims import (
    CLAIMS,
    CONFIRMED,
    INCONCLUSIVE,
    NOT_RUN,
    REFUTED,
    Verdict,
    as_bool,
    check_cityscapes_retrieval,
    check_class_probability,
    check_egoobjects_retrieval,
    check_layers_cka,
    check_matchers,
    check_translated_crops,
    judge_claims,
)

LAYER = {
    "dataset": "synthetic_crops",
    "backbone": "resnet18_synthetic",
    "kernel": "cosine",
    "matcher": "lapjv",
}


def replicates(keys: dict, n_units: int, seed: int = 0, **statistics) -> pd.DataFrame:
    """A bootstrap table: per statistic (estimate, spread), the full-sample row then N_RESAMPLES normal draws."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"replicate": np.arange(-1, N_RESAMPLES)}).assign(**keys, n_units=n_units, seed=seed)
    for name, (estimate, spread) in statistics.items():
        frame[name] = np.r_[estimate, estimate + spread * rng.standard_normal(N_RESAMPLES)]
    return frame


def crops(gains: dict, semantic: float = 0.9) -> dict:
    parts = [
        replicates({**LAYER, "layer": layer}, 20, auroc_semantic=(semantic, 0.01), auroc_spatio_semantic=(semantic - g, 0.01))
        for layer, g in gains.items()
    ]  # fmt: skip
    return {"crops_bootstrap": pd.concat(parts, ignore_index=True)}


def test_c1_three_states_and_not_run():
    good = check_translated_crops(crops({"layer1": 0.2, "layer4": 0.1}))
    assert good.status == CONFIRMED and "2 of 2 configuration(s) support" in good.summary
    assert good.evidence["auroc_gain_low"].gt(0).all() and set(good.evidence["units"]) == {"source images"}
    assert "Rule: per layer" in good.summary and "n=20 source images" in good.summary
    assert "synthetic stand-in data + trained here on synthetic data (resnet18_synthetic)" in good.summary
    assert check_translated_crops(crops({"layer1": 0.2, "layer4": 0.001})).status == INCONCLUSIVE
    bad = check_translated_crops(crops({"layer1": 0.2, "layer4": -0.1}))
    assert bad.status == REFUTED and bad.summary.index("layer4") < bad.summary.index("layer1")
    # a gain that does not separate the distributions (semantic AUROC at chance) does not support C1
    assert check_translated_crops(crops({"layer1": 0.2}, semantic=0.5)).status == INCONCLUSIVE
    assert check_translated_crops({}).status == NOT_RUN


def test_c1_resamples_seeds_on_top_of_images():
    keys = {**LAYER, "layer": "layer4"}
    seeds = [replicates(keys, 20, seed, auroc_semantic=(0.9, 0.001), auroc_spatio_semantic=(0.9 - g, 0.001))
             for seed, g in enumerate([0.3, 0.02, -0.25])]  # fmt: skip
    verdict = check_translated_crops({"crops_bootstrap": pd.concat(seeds)})
    row = verdict.evidence.iloc[0]
    assert row["seeds"] == 3 and row["auroc_gain"] == pytest.approx((0.3 + 0.02 - 0.25) / 3)
    assert row["auroc_gain_low"] < 0 < row["auroc_gain_high"] and verdict.status == INCONCLUSIVE


def queries(
    gains: dict, dataset: str = "synthetic_scenes", n: int = 100, spread: float = 0.02
) -> pd.DataFrame:
    """gains: (backbone, kernel) -> mean per-query F1 gain; per-query gains alternate +-spread around it."""
    rows = []
    for (backbone, kernel), gain in gains.items():
        offsets = np.where(np.arange(n) % 2 == 0, spread, -spread)
        keys = {
            "dataset": dataset,
            "backbone": backbone,
            "layer": "layer4",
            "kernel": kernel,
            "matcher": "lapjv",
        }
        rows.append(pd.DataFrame({**keys, "query": np.arange(n), "f1_spatio_semantic": 0.4,
                                  "f1_semantic": 0.4 + gain + offsets, "seed": 0}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_c2_paired_bootstrap_over_queries():
    good = check_egoobjects_retrieval(
        {"retrieval_queries": queries({("resnet18", "cosine"): 0.05, ("vit", "rbf"): 0.02})}
    )
    assert good.status == CONFIRMED and (good.evidence["units"] == "queries").all()
    assert good.evidence["f1_gain"].tolist() == pytest.approx([0.05, 0.02])
    noisy = queries(
        {("resnet18", "cosine"): 0.01}, spread=0.3
    )  # +0.01 within noise of +-0.3 over 100 queries
    assert check_egoobjects_retrieval({"retrieval_queries": noisy}).status == INCONCLUSIVE
    worse = queries({("resnet18", "cosine"): 0.05, ("vit", "rbf"): -0.05})
    assert check_egoobjects_retrieval({"retrieval_queries": worse}).status == REFUTED
    assert (
        check_egoobjects_retrieval(
            {"retrieval_queries": queries({("r", "cosine"): 0.05}, "cityscapes")}
        ).status
        == NOT_RUN
    )


def test_c3_judges_most_for_cosine_and_rbf():
    def verdict(gains):
        table = queries({("resnet18", k): g for k, g in gains.items()}, "synthetic_cityscapes")
        return check_cityscapes_retrieval({"retrieval_queries": table})

    most = verdict({"linear": 0.02, "cosine": 0.1, "rbf": 0.08})
    assert most.status == CONFIRMED and "most for cosine and RBF -> confirmed" in most.summary
    parts = most.evidence.groupby("part").size().to_dict()
    assert parts == {"gain": 3, "most for cosine/rbf": 2}
    # every kernel gains, but linear gains most: "most for cosine and RBF" is contradicted
    assert verdict({"linear": 0.1, "cosine": 0.03, "rbf": 0.02}).status == REFUTED
    equal = verdict({"linear": 0.05, "cosine": 0.05, "rbf": 0.05})
    assert equal.status == INCONCLUSIVE and "(a) raises F1@1 -> confirmed" in equal.summary


def correlations(
    pairs="all", seed=0, inv=(-0.5, 0.02), non=(-0.3, 0.02), layer="layer4", backbone="mobilenet_v2"
):
    keys = {"dataset": "photos_views", "backbone": backbone, "layer": layer, "kernel": "cosine",
            "matcher": "lapjv", "pairs": pairs}  # fmt: skip
    spearman = {
        "spearman_semantic": (inv[0] - 0.05, inv[1]),
        "spearman_spatio_semantic": (non[0] - 0.05, non[1]),
    }
    return replicates(keys, 500, seed, pearson_semantic=inv, pearson_spatio_semantic=non, **spearman)


def test_c4_needs_negative_and_more_negative_correlations():
    good = check_class_probability({"class_probability_bootstrap": correlations()})
    assert good.status == CONFIRMED and good.evidence["pearson_difference"].iloc[0] == pytest.approx(-0.2)
    assert "real data + real pretrained (mobilenet_v2)" in good.summary
    weaker = correlations(inv=(-0.2, 0.02))
    assert check_class_probability({"class_probability_bootstrap": weaker}).status == REFUTED
    positive = correlations(inv=(0.1, 0.01), non=(0.3, 0.01))  # more negative with invariance, but positive
    assert check_class_probability({"class_probability_bootstrap": positive}).status == REFUTED
    close = correlations(inv=(-0.31, 0.05))
    assert check_class_probability({"class_probability_bootstrap": close}).status == INCONCLUSIVE


def test_c4_reports_source_subsets_without_judging_them():
    table = pd.concat(
        [correlations(), correlations("same_source", inv=(0.2, 0.01)), correlations("different_source")]
    )
    verdict = check_class_probability({"class_probability_bootstrap": table})
    assert (
        verdict.status == CONFIRMED
        and "Not judged, shown" in verdict.summary
        and "same_source" in verdict.summary
    )
    assert set(verdict.evidence["pairs"]) == {"all", "same_source", "different_source"}


def matcher_pairs(size=196, quality=0.95, batch_ms=1.0, exact_ms=4.0, n=64, window=128, fallback=False):
    rng = np.random.default_rng(size)
    rows = []
    for matcher, ms, q in (
        ("lapjv", exact_ms, 1.0),
        ("batch_optimal", batch_ms, quality),
        ("identity", 0.01, 0.0),
    ):
        jitter = rng.uniform(0.9, 1.1, n)
        rows.append(pd.DataFrame({
            "source": "synthetic", "dataset": None, "backbone": None, "spatial_size": size, "matcher": matcher,
            "window": window if matcher == "batch_optimal" else np.nan, "pair": np.arange(n), "cpu_ms": ms * jitter,
            "identity_score": 10.0, "optimum": 20.0, "score": 10.0 + 10.0 * np.clip(q + 0.01 * rng.standard_normal(n), None, 1),
            "reference": "lapjv", "fallback": fallback,
        }))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_c5_judges_quality_and_speed_only_above_the_window():
    good = check_matchers({"matchers_pairs": matcher_pairs()})
    assert good.status == CONFIRMED and good.evidence["speed_ratio"].iloc[0] == pytest.approx(4.0, rel=0.1)
    assert (
        good.evidence["quality"].iloc[0] == pytest.approx(0.95, abs=0.01)
        and (good.evidence["units"] == "pairs").all()
    )
    assert "generated maps (no model)" in good.summary
    assert check_matchers({"matchers_pairs": matcher_pairs(quality=0.6)}).status == REFUTED
    assert check_matchers({"matchers_pairs": matcher_pairs(batch_ms=8.0)}).status == REFUTED
    assert check_matchers({"matchers_pairs": matcher_pairs(quality=0.9)}).status == INCONCLUSIVE
    small = check_matchers({"matchers_pairs": matcher_pairs(size=64)})  # S <= window: batch_optimal is exact
    assert small.status == NOT_RUN and "S <= window" in small.summary
    assert check_matchers({"matchers_pairs": matcher_pairs(n=16)}).status == NOT_RUN  # < 64 pairs
    fallback = check_matchers({"matchers_pairs": matcher_pairs(fallback=True)})
    assert fallback.evidence["fallback_pairs"].iloc[0] == 64


def cka_rows(ckas: dict, seed=0, spread=0.01, backbone="resnet18_synthetic"):
    keys = {"dataset": "synthetic", "backbone": backbone, "kernel": "cosine", "matcher": "lapjv"}
    parts = [replicates({**keys, "layer": f"l{size}", "spatial_size": size}, 60, seed + size, cka=(c, spread))
             for size, c in ckas.items()]  # fmt: skip
    return pd.concat(parts).assign(seed=seed)


def test_c6_judges_the_slope_over_four_sizes():
    rising = {784: 0.5, 196: 0.6, 49: 0.7, 16: 0.8}
    expected = np.polyfit(np.log2(list(rising)), list(rising.values()), 1)[0]
    good = check_layers_cka({"layers_cka_bootstrap": cka_rows(rising)})
    assert good.status == CONFIRMED and good.evidence["slope"].iloc[0] == pytest.approx(expected, rel=1e-9)
    assert good.evidence["spatial_sizes"].iloc[0] == "784, 196, 49, 16"
    falling = {784: 0.8, 196: 0.7, 49: 0.6, 16: 0.5}
    assert check_layers_cka({"layers_cka_bootstrap": cka_rows(falling)}).status == REFUTED
    non_monotone = {784: 0.82, 196: 0.73, 49: 0.78, 16: 0.83}
    assert (
        check_layers_cka({"layers_cka_bootstrap": cka_rows(non_monotone, spread=0.05)}).status == INCONCLUSIVE
    )
    three = check_layers_cka({"layers_cka_bootstrap": cka_rows({784: 0.5, 196: 0.6, 49: 0.7})})
    assert three.status == NOT_RUN and "resnet18_synthetic (3 size(s))" in three.summary


def test_verdicts_are_deterministic():
    tables = {"crops_bootstrap": crops({"layer1": 0.01})["crops_bootstrap"],
              "retrieval_queries": queries({("r", "cosine"): 0.01}, spread=0.1)}  # fmt: skip
    first, second = judge_claims(tables), judge_claims(tables)
    assert [v.summary for v in first] == [v.summary for v in second]
    pd.testing.assert_frame_equal(first[1].evidence, second[1].evidence)


def test_duplicate_runs_of_one_configuration_count_once():
    table = queries({("resnet18", "cosine"): 0.05})
    twice = pd.concat([table.assign(run="b"), table.assign(run="a", f1_semantic=0.0)])
    verdict = check_egoobjects_retrieval({"retrieval_queries": twice})
    assert verdict.evidence["f1_gain"].iloc[0] == pytest.approx(-0.4)  # run "a" only


def test_judge_claims_covers_every_claim_and_bad_inputs():
    verdicts = judge_claims({})
    assert [v.claim for v in verdicts] == [c.id for c in CLAIMS] and {v.status for v in verdicts} == {NOT_RUN}
    with pytest.raises(ValueError, match="verdict status"):
        Verdict("C1", "maybe", "")
    with pytest.raises(ValueError, match="lacks column"):
        check_translated_crops({"crops_bootstrap": pd.DataFrame({"layer": ["l"]})})
    assert as_bool(pd.Series(["True", "false", "1"]), "x").tolist() == [True, False, True]
    with pytest.raises(ValueError, match="must be boolean"):
        as_bool(pd.Series(["yes"]), "x")
