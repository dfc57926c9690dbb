import numpy as np
import pytest
import torch

from semrsm import semantic_rsm
from semrsm.bench import engine
from semrsm.bench.extraction import benchmark_extraction
from semrsm.data import synthetic_tinyimagenet
from semrsm.models import build_backbone
from semrsm.similarity import workloads
from semrsm.similarity.matcher_quality import matcher_table


def test_features_look_post_relu():
    features = workloads.smooth_relu_features(3, 16, 7, seed=2)
    assert features.shape == (3, 16, 7, 7) and features.dtype == torch.float32
    assert 0.2 < float((features == 0).float().mean()) < 0.8
    assert torch.equal(features, workloads.smooth_relu_features(3, 16, 7, seed=2))
    assert 0.4 < float((workloads.iid_relu_features(3, 16, 7) == 0).float().mean()) < 0.6


def test_reference_equals_the_engine():
    reps = workloads.smooth_relu_features(5, 8, 3, seed=0)
    sets = reps.flatten(2).transpose(1, 2).contiguous().numpy()
    np.testing.assert_allclose(engine.reference_rsm(sets), semantic_rsm(reps).numpy(), atol=1e-6)


def test_matcher_table_rows():
    features = {
        16: workloads.smooth_relu_features(4, 8, 4, seed=0),
        9: workloads.smooth_relu_features(4, 8, 3, seed=1),
    }
    rows = matcher_table(features, {"lapjv": {}, "identity": {}, "batch_optimal": {"window": 2}}, n_pairs=2)
    assert [(row["size"], row["matcher"]) for row in rows] == [
        (16, "lapjv"),
        (16, "identity"),
        (16, "batch_optimal"),
        (9, "lapjv"),
        (9, "identity"),
        (9, "batch_optimal"),
    ]
    for row in rows:
        assert row["ms_per_pair"] > 0 and row["bound_ratio"] >= 1.0 - 1e-9
        assert 0 < row["ratio_min"] <= row["ratio_mean"] <= 1.0 + 1e-9
        if row["matcher"] == "lapjv":
            assert row["ratio_min"] == 1.0


def test_engine_vs_reference_reports_ratios_and_agreement():
    result = engine.engine_vs_reference(n=5, size=4, channels=3, features="iid", matchers=("lapjv",))
    assert result["pairs"] == 10 and result["max_abs_diff"] < 1e-6
    assert result["lapjv"]["speedup_vs_serial"] > 0 and result["pool_pairs_per_s"] > 0


def test_extraction_bench_times_both_loops_on_the_same_data(tmp_path):
    dataset = synthetic_tinyimagenet(tmp_path, split="val", num_classes=2, train_per_class=1, val_per_class=3)
    backbone = build_backbone("resnet18", pretrained=False, img_size=64)
    result = benchmark_extraction(dataset, backbone, batch_size=4, repeats=2)
    assert result["samples"] == 6 and result["bare_s"] > 0 and result["extract_s"] > 0
    assert result["ratio"] == pytest.approx(result["extract_s"] / result["bare_s"])
    assert len(result["pair_ratios"]) == 2 and all(ratio > 0 for ratio in result["pair_ratios"])
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        benchmark_extraction(dataset, backbone, repeats=0)
