"""The matchers stage (claim C5) end to end on tiny synthetic features, and its helpers."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from stage_runs import run_tiny

from semrsm.pipeline.stage_matchers import (
    exact_reference,
    largest_size_summary,
    matcher_options,
    resize_maps,
    sample_indices,
    square_sizes,
    synthetic_sizes,
    table_rows,
)
from semrsm.pipeline.stages import run_stage
from semrsm.reporting.claims import check_matchers
from semrsm.similarity import MATCHERS

CONTRACT = ["source", "spatial_size", "matcher", "ms_per_pair", "quality_ratio", "exact"]
TINY = [
    "experiment=matchers",
    "logger=none",
    "backbone.pretrained=false",  # the default resnet18_synthetic, randomly initialised
    "backbone.num_classes=3",
    "dataset.num_classes=3",
    "dataset.train_per_class=1",
    "dataset.val_per_class=3",
    "features.progress_bar=false",
    "experiment.pairs=3",
    "experiment.repeats=1",
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("matchers")


def run(root, run_name, *overrides):
    return run_tiny(root, run_name, TINY, *overrides)


@pytest.fixture(scope="module")
def resnet_run(root):
    return run(root, "resnet18", "experiment.synthetic_sizes=[49]")


@pytest.mark.slow
def test_conv_features_and_synthetic_table(resnet_run):
    summary, results = resnet_run
    table = pd.read_csv(results / "tables" / "matchers.csv")
    assert set(CONTRACT) <= set(table.columns)
    features = table[table["source"] == "features:synthetic/resnet18"]
    assert features["layer"].unique().tolist() == ["layer1", "layer2", "layer3", "layer4"]
    assert features["spatial_size"].unique().tolist() == [256, 64, 16, 4]
    synthetic = table[table["source"] == "synthetic"]
    assert synthetic["spatial_size"].unique().tolist() == [49]
    assert len(table) == 5 * len(MATCHERS)  # every registered matcher at 4 layer sizes + 1 synthetic size
    for _, rows in table.groupby(["source", "spatial_size"]):
        assert sorted(rows["matcher"]) == sorted(MATCHERS)
    assert (table["n_pairs"] == 3).all() and set(table["reference"]) == {"lapjv"}
    exact = table["matcher"].isin(["hungarian", "lapjv"])
    assert (table["exact"] == exact).all()
    assert np.allclose(table.loc[exact, "quality_ratio"], 1.0)
    assert table["quality_ratio"].between(0, 1 + 1e-9).all() and (table["ms_per_pair"] >= 0).all()
    assert (table["quality_ratio_min"] <= table["quality_ratio"] + 1e-12).all()
    assert (table["quality_ratio_used"] >= table["quality_ratio"] - 1e-12).all()
    assert np.allclose(table.loc[table["matcher"] == "lapjv", "speedup_vs_reference"], 1.0)
    for _, rows in table.groupby(["source", "spatial_size"]):  # with the fallback, no matching is the floor
        identity = rows.loc[rows["matcher"] == "identity", "quality_ratio_used"].item()
        assert identity <= rows["quality_ratio_used"].min() + 1e-12
    pairs = pd.read_csv(results / "tables" / "matchers_pairs.csv")
    assert len(pairs) == 3 * len(table) and set(pairs["pair"]) == {0, 1, 2}
    assert (pairs["score"] <= pairs["optimum"] * (1 + 1e-6) + 1e-6).all()  # float32 products, float64 sums
    assert (pairs["optimum"] <= pairs["bound"] * (1 + 1e-6) + 1e-6).all()
    assert (pairs["fallback"] == (pairs["score"] < pairs["identity_score"])).all()
    assert np.allclose(pairs.loc[pairs["matcher"] == "identity", "quality"].dropna(), 0.0, atol=1e-9)
    assert np.allclose(pairs.loc[pairs["matcher"] == "lapjv", "quality"].dropna(), 1.0, atol=1e-6)
    assert set(pairs.loc[pairs["matcher"] == "batch_optimal", "window"]) == {128}
    assert json.loads(table.loc[table["matcher"] == "batch_optimal", "options"].iloc[0]) == {"window": 128}
    for kind in ("features", "synthetic"):
        assert (results / "figures" / f"matcher_tradeoff_{kind}.png").stat().st_size > 1000
    assert summary["features/largest_size"] == 256 and summary["synthetic/largest_size"] == 49
    assert summary["num_matchers"] == len(MATCHERS) and summary["num_sizes"] == 5
    assert summary["c5_status"] == check_matchers({"matchers_pairs": pairs}).status == "not run"  # S <= 128
    largest = features[(features["spatial_size"] == 256) & (features["matcher"] == "identity")]
    assert summary["features/quality_identity"] == pytest.approx(largest["quality_ratio"].item())


@pytest.mark.slow
def test_token_features_resized_with_configured_matcher_options(root):
    overrides = [
        "backbone=vit_tiny",
        "experiment.layers=[blocks.11]",
        "experiment.resize_to=[16,64]",
        "experiment.synthetic_sizes=[]",
        "experiment.matchers=[identity,hungarian,batch_optimal]",
        "matcher=batch_optimal",
        "matcher.window=8",
    ]
    summary, results = run(root, "vit", *overrides)
    table = pd.read_csv(results / "tables" / "matchers.csv")
    assert set(table["source"]) == {"features:synthetic/vit_tiny"}
    assert table["spatial_size"].unique().tolist() == [64, 16]  # native 8x8 tokens first, 64 listed once
    assert (table["native_size"] == 64).all() and set(table["layer"]) == {"blocks.11"}
    assert table["matcher"].unique().tolist() == ["identity", "hungarian", "batch_optimal", "lapjv"]
    options = table.loc[table["matcher"] == "batch_optimal", "options"].map(json.loads)
    assert options.tolist() == [{"window": 8}] * 2
    assert not (results / "figures" / "matcher_tradeoff_synthetic.png").exists()
    assert summary["num_matchers"] == 4


@pytest.mark.slow
def test_source_and_columns_name_the_chosen_config_options(root, resnet_run, compose_in_app):
    only = ["experiment.layers=[layer4]", "experiment.synthetic_sizes=[]", "experiment.matchers=[identity]"]
    cfg = compose_in_app(f"paths.root_dir={root}", *TINY, *only)
    run_stage(cfg, root / "in_app")
    table = pd.read_csv(root / "in_app" / "results" / "tables" / "matchers.csv")
    assert cfg.backbone.name == "resnet18"
    assert set(table["source"]) == {"features:synthetic/resnet18_synthetic"}
    assert set(table["backbone"]) == {"resnet18_synthetic"} and set(table["dataset"]) == {"synthetic"}


@pytest.mark.slow
def test_too_many_pairs_fail_cleanly(root, resnet_run):
    with pytest.raises(
        ValueError, match=r"experiment.pairs=50 needs 100 distinct samples, the dataset has 9"
    ):
        run(root, "too_many", "experiment.pairs=50")
    assert (root / "too_many" / "results.failed").is_dir() and not (root / "too_many" / "results").exists()


def test_matcher_options_default_to_every_registered_matcher():
    options = matcher_options(None, {"name": "batch_optimal", "window": 16})
    assert list(options) == list(MATCHERS)
    assert options["batch_optimal"] == {"window": 16} and options["topk_greedy"] == {}


def test_matcher_options_from_a_list():
    requested = ["identity", {"name": "topk_greedy", "k": 8}, {"name": "hungarian"}]
    options = matcher_options(requested, {"name": "batch_optimal"})
    assert options == {
        "identity": {},
        "topk_greedy": {"k": 8},
        "hungarian": {},
        "batch_optimal": {},
    }
    listed = matcher_options(
        [{"name": "batch_optimal", "window": 4}], {"name": "batch_optimal", "window": 16}
    )
    assert listed == {"batch_optimal": {"window": 4}}  # the list's own options win


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ([], "empty list"),
        (["greedy", "greedy"], "lists 'greedy' twice"),
        ([{"k": 3}], "has no 'name'"),
        (["nearest"], "unknown matcher 'nearest'"),
        ([{"name": "batch_optimal", "window": 0}], "window=0"),
        ([{"name": "greedy", "k": 3}], r"unknown option\(s\) \['k'\]"),
    ],
)
def test_matcher_options_reject_bad_lists(requested, message):
    with pytest.raises(ValueError, match=message):
        matcher_options(requested, {"name": "hungarian"})


def test_reference_must_be_exact():
    assert exact_reference("hungarian") == "hungarian"
    with pytest.raises(ValueError, match=r"exact matcher \['hungarian', 'lapjv'\], got 'greedy'"):
        exact_reference("greedy")


def test_square_sizes():
    assert square_sizes(None, "x") == [] and square_sizes([49, 4, 49], "x") == [49, 4]
    with pytest.raises(ValueError, match="x: 50 is not a square"):
        square_sizes([50], "x")
    with pytest.raises(ValueError, match="x must be an integer >= 1, got 0"):
        square_sizes([0], "x")


def test_synthetic_sizes_need_generator_channels():
    assert synthetic_sizes([784, 49]) == [784, 49] and synthetic_sizes([]) == []
    with pytest.raises(ValueError, match=r"synthetic_sizes \[100\]: choose from \[49, 196, 784, 3136\]"):
        synthetic_sizes([100])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("experiment.synthetic_sizes=[50]", "synthetic_sizes: 50 is not a square"),
        ("experiment.reference=batch_optimal", "reference must be an exact matcher"),
        ("experiment.repeats=0", "experiment.repeats must be an integer >= 1, got 0"),
    ],
)
def test_bad_options_fail_cleanly(root, option, message):
    with pytest.raises(ValueError, match=message):
        run(root, "bad", option)
    assert (root / "bad" / "results.failed").is_dir() and not (root / "bad" / "results").exists()


def test_sample_indices_are_distinct_and_seeded():
    indices = sample_indices(10, 4, seed=3)
    assert len(set(indices.tolist())) == 8 and indices.max() < 10
    assert np.array_equal(indices, sample_indices(10, 4, seed=3))
    assert not np.array_equal(indices, sample_indices(10, 4, seed=4))
    assert sorted(sample_indices(6, 3, seed=0).tolist()) == list(range(6))


def test_resize_maps_for_both_layouts():
    maps = np.random.default_rng(0).random((2, 3, 4, 4), dtype=np.float32)
    smaller = resize_maps(maps, "NCHW", 4)
    assert smaller.shape == (2, 3, 2, 2)
    step = np.zeros((1, 1, 4, 4), dtype=np.float32)
    step[..., 2:] = 1.0  # left half 0, right half 1: each output pixel sees mostly its own half
    halves = resize_maps(step, "NCHW", 4)[0, 0]
    assert (
        (halves[:, 0] < 0.5).all()
        and (halves[:, 1] > 0.5).all()
        and torch.allclose(halves.sum(1), torch.ones(2))
    )
    tokens = np.transpose(maps.reshape(2, 3, 16), (0, 2, 1))  # (N, T, D) of the same 4x4 grid
    torch.testing.assert_close(resize_maps(tokens, "NTD", 4), smaller)
    constant = resize_maps(np.full((1, 2, 3, 3), 5.0, dtype=np.float32), "NCHW", 49)
    assert constant.shape == (1, 2, 7, 7) and torch.allclose(constant, torch.tensor(5.0))
    with pytest.raises(ValueError, match="cannot resize 5 tokens"):
        resize_maps(np.ones((1, 5, 2), dtype=np.float32), "NTD", 4)


def pair_rows(size, matcher, cpu_ms, scores, identity=1.0, optimum=2.0):
    return pd.DataFrame(
        {"spatial_size": size, "matcher": matcher, "options": "{}", "pair": range(len(scores)), "cpu_ms": cpu_ms,
         "score": scores, "identity_score": identity, "optimum": optimum, "bound": 2.2,
         "quality": [(s - identity) / (optimum - identity) for s in scores], "fallback": [s < identity for s in scores]}
    )  # fmt: skip


def test_table_rows_and_largest_size_summary():
    four = pd.concat(
        [pair_rows(4, "lapjv", [2.0, 4.0, 9.0], [2.0] * 3), pair_rows(4, "greedy", 1.0, [0.5, 1.5, 2.0])]
    )
    nine = pd.concat([pair_rows(9, "lapjv", 8.0, [2.0] * 3), pair_rows(9, "identity", 1.0, [1.0] * 3)])
    table = pd.DataFrame(table_rows(four, "lapjv", source="s") + table_rows(nine, "lapjv", source="s"))
    assert table["speedup_vs_reference"].tolist() == [1.0, 4.0, 1.0, 8.0]  # medians: 4 / 1 and 8 / 1
    assert table["exact"].tolist() == [True, False, True, False] and set(table["source"]) == {"s"}
    assert table["quality_ratio"].tolist() == pytest.approx([1.0, 2 / 3, 1.0, 0.5])
    assert table["quality_ratio_used"].tolist() == pytest.approx([1.0, 0.75, 1.0, 0.5])  # 0.5 falls back to 1
    assert table["quality"].tolist() == pytest.approx([1.0, 1 / 3, 1.0, 0.0])
    assert table["fallback_rate"].tolist() == pytest.approx([0.0, 1 / 3, 0.0, 0.0])
    assert table["bound_ratio"].tolist() == pytest.approx([1.1] * 4) and (table["options"] == "{}").all()
    summary = largest_size_summary(table.assign(source="features:x/y"))
    assert summary == {
        "features/largest_size": 9,
        "features/quality_lapjv": 1.0,
        "features/ms_lapjv": 8.0,
        "features/quality_identity": 0.5,
        "features/ms_identity": 1.0,
    }
