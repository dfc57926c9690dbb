"""The class_probability stage (claim C4) end to end on tiny synthetic data, for a conv (NCHW) and a token (NTD)
backbone, with a random-init and a trained head; and its helpers."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from semrsm.metrics.bootstrap import N_RESAMPLES
from semrsm.pipeline.config import register_resolvers
from semrsm.pipeline.stage_class_probability import class_divergence, pair_masks, sample_pairs, summarize
from semrsm.pipeline.stages import run_stage

CONF = str(Path(__file__).resolve().parents[2] / "conf")
CONTRACT = [
    "dataset",
    "backbone",
    "layer",
    "kernel",
    "matcher",
    "semantic",
    "pearson",
    "spearman",
    "n_pairs",
]
TINY = [
    "logger=none",
    "dataset.num_classes=3",
    "dataset.train_per_class=4",
    "dataset.val_per_class=4",
    "backbone.num_classes=3",
    "features.batch_size=16",
    "features.progress_bar=false",
]
RANDOM_RESNET = ["backbone=resnet18_tinyimagenet", "backbone.pretrained=false"]
RANDOM_VIT = ["backbone=vit_tiny", "backbone.pretrained=false", "+backbone.depth=2"]


def run(root, run_name, *overrides, stage="class_probability"):
    """Run the tiny config of ``stage`` (paths under ``root``) in ``root/run_name``: (summary, results dir)."""
    register_resolvers()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            "config", overrides=[f"paths.root_dir={root}", f"experiment={stage}", *TINY, *overrides]
        )
    return run_stage(cfg, root / run_name), root / run_name / "results"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("class_probability")


@pytest.fixture(scope="module")
def resnet_run(root):
    return run(root, "resnet18", *RANDOM_RESNET)


def test_conv_backbone_table_figures_and_summary(resnet_run):
    summary, results = resnet_run
    table = pd.read_csv(results / "tables" / "class_probability.csv")
    assert set(CONTRACT) <= set(table.columns)
    assert table["layer"].unique().tolist() == ["layer1", "layer2", "layer3", "layer4"]
    assert table["spatial_size"].unique().tolist() == [256, 64, 16, 4]
    assert (table.groupby("layer")["semantic"].apply(sorted) == [[False, True]] * 4).all()
    assert set(table["dataset"]) == {"synthetic"} and set(table["kernel"]) == {"cosine"}
    assert set(table["matcher"]) == {"lapjv"} and set(table["backbone"]) == {"resnet18"}
    assert table[["pearson", "spearman"]].stack().between(-1, 1).all()
    assert (table["n_pairs"] == 12 * 11 // 2).all()
    for figure in ("scatter", "pearson"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 1000
    assert summary["num_samples"] == 12 and summary["num_classes"] == 3 and summary["num_layers"] == 4
    semantic = table[table["semantic"]]
    assert summary["pearson/semantic/mean"] == pytest.approx(semantic["pearson"].mean())
    assert summary["spearman/semantic/last"] == pytest.approx(semantic["spearman"].iloc[-1])  # layer4
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["pearson/semantic/mean"] == pytest.approx(summary["pearson/semantic/mean"])
    assert (table["pairs"] == "all").all() and (table["n_images"] == 12).all()
    assert (table["pearson_low"] <= table["pearson_high"]).all()
    boot = pd.read_csv(results / "tables" / "class_probability_bootstrap.csv")
    assert (boot.groupby("layer").size() == 1 + N_RESAMPLES).all() and (boot["n_units"] == 12).all()
    full = boot[boot["replicate"] == -1].set_index("layer")
    for semantic, side in ((True, "semantic"), (False, "spatio_semantic")):
        rows = table[table["semantic"] == semantic].set_index("layer")
        for method in ("pearson", "spearman"):  # the full-sample row is the plain correlation
            np.testing.assert_allclose(full[f"{method}_{side}"], rows.loc[full.index, method], rtol=1e-9)


def test_rerun_with_another_kernel_reuses_the_matching(root, resnet_run):
    cached = sorted((root / "outputs" / "cache" / "rsm").glob("*.npz"))
    summary, results = run(root, "resnet18_rbf", *RANDOM_RESNET, "kernel=rbf", "experiment.layers=[layer4]")
    assert sorted((root / "outputs" / "cache" / "rsm").glob("*.npz")) == cached
    table = pd.read_csv(results / "tables" / "class_probability.csv")
    assert table["layer"].tolist() == ["layer4", "layer4"] and set(table["kernel"]) == {"rbf"}


def test_columns_name_the_chosen_config_options(root, resnet_run, compose_in_app):
    overrides = ["experiment=class_probability", *TINY, *RANDOM_RESNET, "experiment.layers=[layer4]"]
    cfg = compose_in_app(f"paths.root_dir={root}", *overrides)
    run_stage(cfg, root / "in_app")
    table = pd.read_csv(root / "in_app" / "results" / "tables" / "class_probability.csv")
    assert cfg.backbone.name == "resnet18" and set(table["backbone"]) == {"resnet18_tinyimagenet"}
    assert set(table["dataset"]) == {"synthetic"} and set(table["matcher"]) == {"lapjv"}


def test_token_backbone_with_an_approximate_matcher(root):
    _, results = run(root, "vit", *RANDOM_VIT, "matcher=batch_optimal", "matcher.window=16")
    table = pd.read_csv(results / "tables" / "class_probability.csv")
    assert table["layer"].unique().tolist() == ["blocks.0", "blocks.1"]
    assert set(table["spatial_size"]) == {64} and set(table["matcher"]) == {"batch_optimal"}
    assert table[["pearson", "spearman"]].stack().between(-1, 1).all()


@pytest.mark.slow
def test_trained_backbone_is_loaded_by_name(root):
    train = ["experiment.epochs=1", "experiment.batch_size=12"]
    trained, _ = run(root, "train", *train, stage="train")
    summary, results = run(root, "trained", "experiment.layers=[layer3,layer4]")
    table = pd.read_csv(results / "tables" / "class_probability.csv")
    assert len(table) == 4 and set(table["backbone"]) == {"resnet18"}
    assert trained["checkpoint"].endswith("resnet18_synthetic_seed0.pt") and summary["num_samples"] == 12


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["matcher=identity", *RANDOM_RESNET], ValueError, "matcher=identity"),
        (["backbone.num_classes=0", *RANDOM_RESNET], ValueError, "no classification head"),
        (["experiment.layers=[layer9]", *RANDOM_RESNET], ValueError, "layer9"),
    ],
)
def test_bad_configurations_fail_clearly(tmp_path, overrides, error, message):
    with pytest.raises(error, match=message):
        run(tmp_path, "bad", *overrides)


def test_class_divergence_is_a_symmetric_jsd_matrix():
    logits = np.array([[2.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 1.0, 0.0]])
    divergence = class_divergence(logits)
    assert divergence.shape == (4, 4) and np.allclose(divergence, divergence.T)
    assert np.allclose(np.diag(divergence), 0) and divergence[0, 1] == pytest.approx(0, abs=1e-12)
    assert ((divergence >= 0) & (divergence <= 1)).all() and divergence[0, 2] > divergence[0, 3] > 0


def test_sample_pairs_are_distinct_upper_triangle_pairs():
    rows, cols = sample_pairs(30, max_pairs=100, seed=3)
    assert len(rows) == 100 and (rows < cols).all() and len(set(zip(rows, cols, strict=True))) == 100
    again = sample_pairs(30, max_pairs=100, seed=3)
    assert np.array_equal(rows, again[0]) and np.array_equal(cols, again[1])
    assert len(sample_pairs(5, max_pairs=100)[0]) == 10


def test_summary_counts_layers_more_negative_with_invariance():
    def table(semantic_pearson):
        rows = []
        for layer, (inv, base) in enumerate(zip(semantic_pearson, [-0.2, -0.3], strict=True)):
            rows += [
                {"layer": layer, "semantic": True, "pearson": inv, "spearman": inv, "pairs": "all"},
                {"layer": layer, "semantic": False, "pearson": base, "spearman": base, "pairs": "all"},
            ]
        return pd.DataFrame(rows)

    both = summarize(table([-0.4, -0.5]), [0, 1])
    assert both["pearson/layers_more_negative"] == 2
    assert both["pearson/semantic/mean"] == pytest.approx(-0.45)
    assert both["pearson/semantic/last"] == pytest.approx(-0.5)
    assert both["pearson_difference/last"] == pytest.approx(-0.5 - -0.3)
    one = summarize(table([-0.4, -0.1]), [1, 0])  # depth order: layer 0 is the deepest here
    assert one["pearson/layers_more_negative"] == 1 and one["pearson/semantic/last"] == pytest.approx(-0.4)


def test_pair_masks_split_same_and_different_source_pairs():
    masks = pair_masks(np.array([0, 0, 0, 1, 1, 1]), 6)
    assert list(masks) == ["all", "same_source", "different_source"] and masks["all"] is None
    rows, cols = np.triu_indices(6, k=1)
    assert masks["same_source"][rows, cols].sum() == 6 and masks["different_source"][rows, cols].sum() == 9
    assert list(pair_masks(None, 6)) == ["all"]
    assert list(pair_masks(np.array([0, 0, 1, 2]), 4)) == ["all", "different_source"]  # 1 same pair: dropped
