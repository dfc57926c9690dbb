"""The scaling bench and its cost model: the model's arithmetic on hand-checked inputs, a tiny bench run through
torchrun (well-formed, scores equal to the engine's), and ``match_layer``'s ``threads`` it relies on. No
timing is asserted."""

import math

import numpy as np
import pytest
import torch

from semrsm.bench import cost_model, scaling
from semrsm.bench.cost_model import CostModel, fit_power_law, product_flop, relative_error
from semrsm.pipeline import rsm_predict
from semrsm.pipeline.rsm_cache import RSMSpec, cache_entry
from semrsm.pipeline.rsm_predict import TileMatcher, check_threads, match_layer
from semrsm.similarity import matched_scores


def test_product_flop_and_relative_error():
    assert product_flop(196, 512) == 2 * 196 * 196 * 512 == 39_337_984
    assert relative_error(110.0, 100.0) == pytest.approx(0.1)
    assert relative_error(80.0, 100.0) == pytest.approx(-0.2)


def test_power_law_fit_recovers_coefficient_and_exponent():
    sizes = [2, 4, 8]
    coef, exponent = fit_power_law(sizes, [3.0 * s**1.5 for s in sizes])
    assert coef == pytest.approx(3.0) and exponent == pytest.approx(1.5)
    coef, exponent = fit_power_law([10, 100], [1e-3, 1e-1])  # two points: exact, 1e-5 * S^2
    assert coef == pytest.approx(1e-5) and exponent == pytest.approx(2.0)
    with pytest.raises(ValueError, match="two or more distinct sizes"):
        fit_power_law([49, 49], [1.0, 2.0])
    with pytest.raises(ValueError, match="must be positive"):
        fit_power_law([49, 196], [0.0, 2.0])


def test_cost_model_on_hand_checked_inputs():
    model = CostModel(gflops=10.0, solver_coef=1e-6, solver_exponent=2.0, startup_s=5.0)
    # S=10, C=5: products 2 * 100 * 5 = 1000 flop at 1e10 flop/s = 1e-7 s; solver 1e-6 * 10^2 = 1e-4 s
    assert model.product_seconds(10, 5) == pytest.approx(1e-7)
    assert model.solver_seconds(10) == pytest.approx(1e-4)
    assert model.pair_seconds(10, 5) == pytest.approx(1.001e-4)
    # N=5: 10 pairs over 2 nodes x 5 cores -> one pair each
    assert model.matching_seconds(5, 10, 5, nodes=2, cores=5) == pytest.approx(1.001e-4)
    assert model.total_seconds(5, 10, 5, nodes=2, cores=5) == pytest.approx(5.0001001)
    assert model.matching_seconds(5, 10, 5) == pytest.approx(1.001e-3)  # one core: all 10 pairs
    # GPU at 1 TFLOP/s: products 1e-9 s per pair; 5 pairs per node, each 1e-9 + 1e-4 / 5 cores
    assert model.product_seconds(10, 5, gpu_tflops=1.0) == pytest.approx(1e-9)
    assert model.matching_seconds(5, 10, 5, nodes=2, cores=5, gpu_tflops=1.0) == pytest.approx(
        5 * (1e-9 + 2e-5)
    )
    with pytest.raises(ValueError, match="nodes and cores must be >= 1"):
        model.matching_seconds(5, 10, 5, nodes=0)
    with pytest.raises(ValueError, match="gflops and solver_coef must be positive"):
        CostModel(gflops=0.0, solver_coef=1e-6, solver_exponent=2.0)


def test_paper_prediction_covers_every_configuration_and_scales_with_nodes_and_cores():
    model = CostModel(gflops=20.0, solver_coef=2e-8, solver_exponent=2.0, startup_s=0.0)
    rows = scaling.paper_predictions(model, n=100)
    assert [(row["nodes"], row["cores"]) for row in rows] == [
        (k, c) for k in scaling.PAPER_NODES for c in scaling.PAPER_CORES
    ]
    one = rows[0]["cpu_s"]  # 1 node x 2 cores
    expected = 4950 * model.pair_seconds(256, 1536) / 2
    assert one == pytest.approx(expected)
    for row in rows:
        assert row["cpu_s"] == pytest.approx(one * 2 / (row["nodes"] * row["cores"]))
        assert 0 < row["gpu_s"] < row["cpu_s"]
    assert scaling.PAPER_SIZE == 256 and cost_model.pair_count(100) == 4950


def test_threads_option_is_validated():
    assert check_threads(2) == 2 and check_threads(np.int64(3)) == 3
    assert check_threads(None) is None  # default: cores // devices
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(
            ValueError, match=r"threads \(matching threads per rank\) must be a positive integer"
        ):
            check_threads(bad)
    with pytest.raises(ValueError, match="got threads=0"):
        TileMatcher(None, "unused", [], threads=0)


def test_threads_option_sets_each_rank_s_workers(tmp_path, monkeypatch):
    features = scaling.write_features(tmp_path / "features", 10, 9, 4)
    entry = cache_entry(RSMSpec(tmp_path / "cache", "lapjv", progress=False), features, scaling.LAYER, True)
    workers = []
    original = rsm_predict.compute_scores

    def recording(*args, **kwargs):
        workers.append(kwargs["workers"])
        return original(*args, **kwargs)

    monkeypatch.setattr(rsm_predict, "compute_scores", recording)
    got = match_layer(entry, features, 3, threads=1)
    assert workers == [1, 1, 1]
    expected = matched_scores(np.array(features.layer(scaling.LAYER)), "lapjv")
    torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=0)
    with pytest.raises(ValueError, match="got threads=0"):  # refused even when the entry is cached
        match_layer(entry, features, 3, threads=0)


@pytest.mark.slow
def test_tiny_scaling_run_is_well_formed(tmp_path, capsys):
    result = scaling.scaling_benchmark(
        n=12, size=16, channels=8, tiles=3, devices=(1,), solver_sizes=(4, 16), root=tmp_path
    )
    assert (result["n"], result["size"], result["channels"], result["tiles"], result["pairs"]) == (
        12,
        16,
        8,
        3,
        66,
    )
    (run,) = result["runs"].values()
    assert list(result["runs"]) == [1] and result["bit_identical"]
    assert 0 < run["matching_s"] < run["whole_s"] and run["speedup_matching"] == run["speedup_whole"] == 1.0
    assert len(run["rank_cpu_s"]) == 1 and run["rank_cpu_s"][0] > 0
    assert run["predicted_matching_s"] > 0 and run["predicted_whole_s"] > run["predicted_matching_s"]
    calibration = result["calibration"]
    assert set(calibration["solver_s"]) == {4, 16} and calibration["gflops"] > 0
    assert calibration["paper_gflops"] > 0 and math.isfinite(result["model"].solver_exponent)
    reps = scaling.smooth_relu_features(12, 8, 4, seed=0)
    engine = matched_scores(reps, "lapjv").scores.numpy()
    assert (result["scores"] == engine).all()  # the bench's workload, computed through match_layer
    assert list(tmp_path.iterdir()) == []  # its feature store and caches removed
    scaling.report(result, paper_n=1000)
    out = capsys.readouterr().out
    assert "devices=1: whole" in out and "EgoObjects x DINOv2-giant" in out and "GPU products" in out
