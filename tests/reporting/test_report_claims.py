import pandas as pd
import pytest

from semrsm.reporting.claims import (
    CLAIMS,
    CONFIRMED,
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


def crops(values: dict) -> pd.DataFrame:
    """values: layer -> (semantic auroc, spatio auroc, semantic same_mean, spatio same_mean)."""
    rows = []
    for layer, (auroc_sem, auroc_spa, same_sem, same_spa) in values.items():
        base = {"dataset": "d", "backbone": "resnet18", "layer": layer, "spatial_size": 4, "kernel": "cosine"}
        rows.append(
            {**base, "rsm": "semantic", "matcher": "hungarian", "auroc": auroc_sem, "same_mean": same_sem}
        )
        rows.append(
            {
                **base,
                "rsm": "spatio_semantic",
                "matcher": "identity",
                "auroc": auroc_spa,
                "same_mean": same_spa,
            }
        )
    return pd.DataFrame(rows).assign(different_mean=0.1)


def paired(metric: str, values: dict, dataset: str = "synthetic_scenes", **extra) -> pd.DataFrame:
    """values: (backbone, kernel) -> (invariant value, non-invariant value); non-invariant rows say 'identity'."""
    rows = []
    for (backbone, kernel), (invariant, plain) in values.items():
        base = {"dataset": dataset, "backbone": backbone, "layer": "layer4", "kernel": kernel, **extra}
        rows.append({**base, "matcher": "hungarian", "invariant": True, metric: invariant})
        rows.append({**base, "matcher": "identity", "invariant": False, metric: plain})
    return pd.DataFrame(rows)


def test_c1_confirmed_refuted_and_not_run():
    good = check_translated_crops(crops({"layer1": (0.9, 0.6, 0.8, 0.5), "layer4": (0.95, 0.9, 0.9, 0.85)}))
    assert good.status == CONFIRMED and "all 2 configuration" in good.summary
    assert list(good.evidence["holds"]) == [True, True]
    assert good.evidence.loc[0, "auroc_spatio_semantic"] == pytest.approx(0.6)

    # layer4: AUROC higher but the same-image mean is not: the rule needs both
    bad = check_translated_crops(crops({"layer1": (0.9, 0.6, 0.8, 0.5), "layer4": (0.95, 0.9, 0.8, 0.85)}))
    assert bad.status == REFUTED
    assert "1 of 2" in bad.summary and "layer4" in bad.summary and "layer1" not in bad.summary
    assert "0.95 vs 0.9" in bad.summary

    assert check_translated_crops(None).status == NOT_RUN
    assert check_translated_crops(pd.DataFrame()).status == NOT_RUN
    only_semantic = crops({"layer1": (0.9, 0.6, 0.8, 0.5)}).query("rsm == 'semantic'")
    assert check_translated_crops(only_semantic).status == NOT_RUN


def test_c1_rejects_bad_tables():
    with pytest.raises(ValueError, match="crops_separation.*auroc"):
        check_translated_crops(crops({"l": (1, 0, 1, 0)}).drop(columns="auroc"))
    with pytest.raises(ValueError, match="spatial"):
        check_translated_crops(crops({"l": (1, 0, 1, 0)}).replace("spatio_semantic", "spatial"))


def test_duplicate_configurations_are_averaged():
    table = pd.concat([crops({"layer1": (0.9, 0.6, 0.8, 0.5)}), crops({"layer1": (0.5, 0.6, 0.8, 0.5)})])
    verdict = check_translated_crops(table)
    assert len(verdict.evidence) == 1 and verdict.evidence.loc[0, "auroc_semantic"] == pytest.approx(0.7)


def test_c2_and_c3_split_by_dataset_and_read_csv_booleans(tmp_path):
    values = {
        ("resnet18", "cosine"): (0.6, 0.4),
        ("resnet18", "rbf"): (0.5, 0.45),
        ("vit", "cosine"): (0.3, 0.2),
    }
    path = tmp_path / "retrieval.csv"
    paired("f1_at_1", values, n_queries=10).to_csv(path, index=False)
    table = pd.read_csv(path)
    c2 = check_egoobjects_retrieval(table)
    assert c2.status == CONFIRMED and len(c2.evidence) == 3
    assert "cosine +0.15" in c2.summary and "rbf +0.05" in c2.summary
    c3 = check_cityscapes_retrieval(table)
    assert c3.status == NOT_RUN and "cityscapes" in c3.summary

    failing = paired("f1_at_1", {("resnet18", "linear"): (0.3, 0.35)}, dataset="cityscapes")
    c3 = check_cityscapes_retrieval(pd.concat([table, failing]))
    assert c3.status == REFUTED and "cityscapes/resnet18/layer4/linear/hungarian" in c3.summary


def test_as_bool_rejects_non_booleans():
    assert list(as_bool(pd.Series(["True", "false", 1, 0]), "x")) == [True, False, True, False]
    with pytest.raises(ValueError, match="'invariant'.*maybe"):
        as_bool(pd.Series(["maybe", "True"]), "invariant")


def test_c4_needs_both_correlations_negative_and_stronger_with_invariance():
    def table(spearman_invariant: float) -> pd.DataFrame:
        pearson = paired("pearson", {("resnet18", "cosine"): (-0.4, -0.3)})
        spearman = paired("spearman", {("resnet18", "cosine"): (spearman_invariant, -0.2)})
        return pearson.assign(spearman=spearman["spearman"], n_pairs=45)

    confirmed = check_class_probability(table(-0.5))
    assert confirmed.status == CONFIRMED
    assert bool(confirmed.evidence.loc[0, "pearson_holds"]) and bool(
        confirmed.evidence.loc[0, "spearman_holds"]
    )
    refuted = check_class_probability(table(-0.1))  # Spearman weaker with invariance
    assert refuted.status == REFUTED and "Spearman -0.1 vs -0.2" in refuted.summary
    positive = paired("pearson", {("resnet18", "cosine"): (0.2, 0.3)}).assign(spearman=-1.0)
    assert check_class_probability(positive).status == REFUTED
    assert check_class_probability(None).status == NOT_RUN


def matchers(
    batch_ms: float = 1.0, batch_quality: float = 0.95, identity_quality: float = 0.5
) -> pd.DataFrame:
    rows = []
    for size, scale in [(4, 1.0), (49, 10.0)]:
        for matcher, ms, quality, exact in [
            ("hungarian", 5.0, 1.0, True),
            ("lapjv", 3.0, 1.0, True),
            ("batch_optimal", batch_ms, batch_quality, False),
            ("identity", 0.01, identity_quality, False),
        ]:
            rows.append(
                {
                    "source": "synthetic",
                    "spatial_size": size,
                    "matcher": matcher,
                    "ms_per_pair": ms * scale,
                    "quality_ratio": quality,
                    "exact": "True" if exact else "False",
                }
            )
    return pd.DataFrame(rows)


def test_c5_batch_optimal_against_the_fastest_exact_matcher_at_the_largest_size():
    good = check_matchers(matchers())
    assert good.status == CONFIRMED
    row = good.evidence.iloc[0]
    assert (
        row["spatial_size"] == 49 and row["exact_matcher"] == "lapjv" and row["exact_ms"] == pytest.approx(30)
    )
    slow = check_matchers(matchers(batch_ms=4.0))  # faster than hungarian, slower than lapjv
    assert slow.status == REFUTED and "lapjv" in slow.summary
    assert check_matchers(matchers(batch_quality=0.8)).status == REFUTED
    identity_not_lowest = check_matchers(matchers(identity_quality=0.99))
    assert identity_not_lowest.status == REFUTED and "identity lowest: False" in identity_not_lowest.summary
    no_exact = matchers().assign(exact=False)
    assert check_matchers(no_exact).status == NOT_RUN


def test_c5_judges_a_source_at_its_largest_layer_not_at_each_layer():
    big = matchers().assign(layer="layer1", spatial_size=lambda t: t["spatial_size"] * 16)
    small_and_slow = matchers(batch_ms=50.0).assign(layer="layer4")  # exact is fastest on tiny layers
    verdict = check_matchers(pd.concat([big, small_and_slow]))
    assert verdict.status == CONFIRMED and len(verdict.evidence) == 1
    assert verdict.evidence["spatial_size"].iloc[0] == 49 * 16
    bad_big = matchers(batch_quality=0.5).assign(layer="layer1", spatial_size=lambda t: t["spatial_size"] * 16)
    assert check_matchers(pd.concat([bad_big, matchers().assign(layer="layer4")])).status == REFUTED


def cka(sizes_and_values: dict, backbone: str = "resnet18") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "dataset": "d",
                "backbone": backbone,
                "layer": f"layer{i}",
                "spatial_size": size,
                "kernel": "cosine",
            }
            | {"matcher": "hungarian", "cka": value}
            for i, (size, value) in enumerate(sizes_and_values.items())
        ]
    )


def test_c6_spearman_of_spatial_size_and_cka():
    rising = check_layers_cka(cka({32: 0.2, 16: 0.5, 8: 0.7, 4: 0.9}))
    assert rising.status == CONFIRMED and rising.evidence.loc[0, "spearman"] == pytest.approx(-1.0)
    falling = check_layers_cka(cka({32: 0.9, 16: 0.5, 8: 0.7, 4: 0.2}))
    assert falling.status == REFUTED and "Spearman" in falling.summary
    vit = cka({14: 0.3, 15: 0.4}, "vit").assign(spatial_size=14)  # one spatial size: uninformative
    assert check_layers_cka(vit).status == NOT_RUN
    mixed = check_layers_cka(pd.concat([cka({32: 0.2, 4: 0.9}), vit]))
    assert mixed.status == CONFIRMED and "1 model(s) with a single spatial size skipped" in mixed.summary


def test_judge_claims_covers_every_claim_and_missing_tables_are_not_run():
    verdicts = judge_claims({"matchers": matchers()})
    assert (
        [v.claim for v in verdicts] == [claim.id for claim in CLAIMS] == ["C1", "C2", "C3", "C4", "C5", "C6"]
    )
    assert [v.status for v in verdicts] == [NOT_RUN] * 4 + [CONFIRMED, NOT_RUN]


def test_verdict_rejects_unknown_status():
    with pytest.raises(ValueError, match="partly"):
        Verdict("C1", "partly", "")
