"""The translated_crops stage (claim C1) end to end on tiny synthetic crops, and its helpers."""

import json

import numpy as np
import pandas as pd
import pytest
from stage_runs import rsm_cache_entries, run_tiny

from semrsm.metrics.bootstrap import N_RESAMPLES
from semrsm.pipeline.feature_store import ShardedFeatureWriter
from semrsm.pipeline.stage_translated_crops import (
    crop_groups,
    separation_bootstrap,
    separation_rows,
)
from semrsm.pipeline.stages import run_stage

CONTRACT = ["dataset", "backbone", "layer", "spatial_size", "rsm", "kernel", "matcher", "auroc"]
CONTRACT += ["same_mean", "different_mean"]
TINY = [
    "experiment=translated_crops",
    "logger=none",
    "backbone.pretrained=false",  # the default resnet18_synthetic, randomly initialised
    "+dataset.base.num_classes=3",
    "+dataset.base.train_per_class=1",
    "+dataset.base.val_per_class=2",
    "dataset.num_images=4",
    "dataset.grid=2",
    "features.batch_size=16",
    "features.progress_bar=false",
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("crops")


def run(root, run_name, *overrides):
    return run_tiny(root, run_name, TINY, *overrides)


@pytest.fixture(scope="module")
def resnet_run(root):
    return run(root, "resnet18")


@pytest.mark.slow
def test_conv_backbone_table_figures_and_summary(resnet_run):
    summary, results = resnet_run
    table = pd.read_csv(results / "tables" / "crops_separation.csv")
    assert set(CONTRACT) <= set(table.columns)
    layers = ["layer1", "layer2", "layer3", "layer4"]
    assert table["layer"].unique().tolist() == layers
    assert table["spatial_size"].unique().tolist() == [256, 64, 16, 4]
    assert (table.groupby("layer")["rsm"].apply(sorted) == [["semantic", "spatio_semantic"]] * 4).all()
    assert set(table["dataset"]) == {"synthetic_crops"} and set(table["backbone"]) == {"resnet18"}
    assert set(table["kernel"]) == {"cosine"} and set(table["matcher"]) == {"lapjv"}
    assert table["auroc"].between(0, 1).all()
    assert table[["same_mean", "different_mean"]].stack().between(-1, 1).all()
    assert (table["n_same"] == 4 * 6).all() and (table["n_different"] == 16 * 15 / 2 - 24).all()
    wide = table.pivot(index="layer", columns="rsm", values=["same_mean", "different_mean"])
    for column in ("same_mean", "different_mean"):  # exact matching never lowers a cosine similarity
        assert (wide[column, "semantic"] >= wide[column, "spatio_semantic"] - 1e-9).all()
    for layer in layers:
        assert (results / "figures" / f"rsm_{layer}.png").stat().st_size > 1000
        assert (results / "figures" / f"distributions_{layer}.png").stat().st_size > 1000
    assert summary["num_samples"] == 16 and summary["num_images"] == 4 and summary["num_layers"] == 4
    boot = pd.read_csv(results / "tables" / "crops_bootstrap.csv")
    assert (boot["n_units"] == 4).all() and (boot.groupby("layer").size() == 1 + N_RESAMPLES).all()
    full = boot[boot["replicate"] == -1].set_index("layer")
    plain = table.pivot(index="layer", columns="rsm", values="auroc")
    for rsm in ("semantic", "spatio_semantic"):  # the full-sample row is the plain AUROC
        np.testing.assert_allclose(full.loc[layers, f"auroc_{rsm}"], plain.loc[layers, rsm], rtol=1e-12)
    values = boot[["auroc_semantic", "auroc_spatio_semantic"]].to_numpy()
    assert ((values >= 0) & (values <= 1) | np.isnan(values)).all()  # NaN: a resample of one image
    assert summary["auroc/semantic/last"] == pytest.approx(plain.loc["layer4", "semantic"])  # the deepest
    assert summary["auroc/spatio_semantic/mean"] == pytest.approx(plain["spatio_semantic"].mean())
    gains = plain["semantic"] - plain["spatio_semantic"]
    assert summary["auroc_gain/min"] == pytest.approx(gains.min())
    assert not [key for key in summary if key.split("/")[0] in layers]
    assert json.loads((results / "metrics.json").read_text())["num_images"] == 4


@pytest.mark.slow
def test_other_kernel_reuses_cached_matchings(root, resnet_run):
    before = rsm_cache_entries(root)
    assert len(before) == 8  # 4 layers x {hungarian, identity}
    summary, results = run(root, "linear", "kernel=linear", "experiment.layers=[layer4]")
    assert rsm_cache_entries(root) == before
    table = pd.read_csv(results / "tables" / "crops_separation.csv")
    assert set(table["kernel"]) == {"linear"} and table["layer"].unique().tolist() == ["layer4"]
    assert summary["num_layers"] == 1


@pytest.mark.slow
def test_columns_name_the_chosen_config_options(root, resnet_run, compose_in_app):
    cached = rsm_cache_entries(root)
    cfg = compose_in_app(f"paths.root_dir={root}", *TINY, "experiment.layers=[layer4]")
    run_stage(cfg, root / "in_app")
    table = pd.read_csv(root / "in_app" / "results" / "tables" / "crops_separation.csv")
    assert cfg.backbone.name == "resnet18" and set(table["backbone"]) == {"resnet18_synthetic"}
    assert set(table["dataset"]) == {"synthetic_crops"} and rsm_cache_entries(root) == cached


@pytest.mark.slow
def test_token_backbone(root):
    overrides = ["backbone=vit_tiny", "backbone.num_classes=3", "experiment.layers=[blocks.2,blocks.11]"]
    summary, results = run(root, "vit", *overrides, "matcher=batch_optimal", "matcher.window=16")
    table = pd.read_csv(results / "tables" / "crops_separation.csv")
    assert table["layer"].unique().tolist() == ["blocks.2", "blocks.11"]
    assert set(table["spatial_size"]) == {64} and set(table["matcher"]) == {"batch_optimal"}
    assert table["auroc"].between(0, 1).all() and len(table) == 4
    assert (results / "figures" / "rsm_blocks.11.png").is_file()


@pytest.mark.slow
def test_unknown_layer_fails_cleanly(root, resnet_run):
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['layer9'\]"):
        run(root, "bad_layer", "experiment.layers=[layer9]")
    assert (root / "bad_layer" / "results.failed").is_dir() and not (root / "bad_layer" / "results").exists()


def feature_set(tmp_path, metas):
    writer = ShardedFeatureWriter(tmp_path, {"metas": metas}, len(metas), {"conv": "NCHW"})
    samples = [{"id": f"s{i}", "label": 0, "objects": [], "meta": meta} for i, meta in enumerate(metas)]
    writer.add(np.arange(len(metas)), {"conv": np.ones((len(metas), 1, 1, 1))}, samples)
    return writer.finalize()


def test_crop_groups_come_from_meta(tmp_path):
    groups = crop_groups(feature_set(tmp_path, [{"group": g} for g in (1, 0, 1, 0)]))
    assert groups.tolist() == [1, 0, 1, 0] and groups.dtype == np.int64


def test_crop_groups_reject_other_datasets(tmp_path):
    with pytest.raises(ValueError, match="'synthetic' is not a translated-crops view"):
        crop_groups(feature_set(tmp_path / "a", [{"index": 0}, {"index": 1}]), "synthetic")
    with pytest.raises(ValueError, match="at most 1 crop"):
        crop_groups(feature_set(tmp_path / "b", [{"group": 0}, {"group": 1}]))
    with pytest.raises(ValueError, match="need at least two source images"):
        crop_groups(feature_set(tmp_path / "c", [{"group": 0}, {"group": 0}]))


def test_separation_rows_and_bootstrap():
    groups = np.array([0, 0, 1, 1])
    blocks = np.where(groups[:, None] == groups[None, :], 0.9, 0.1)
    noisy = np.array([[1, 0.2, 0.5, 0.1], [0.2, 1, 0.3, 0.4], [0.5, 0.3, 1, 0.6], [0.1, 0.4, 0.6, 1]])
    rows = separation_rows({"spatio_semantic": noisy, "semantic": blocks}, groups, layer="l1")
    table = pd.DataFrame(rows)
    assert table["rsm"].tolist() == ["spatio_semantic", "semantic"] and set(table["layer"]) == {"l1"}
    assert table["auroc"].tolist() == [0.625, 1.0]
    assert table["same_mean"].tolist() == pytest.approx([0.4, 0.9])
    assert table["different_mean"].tolist() == pytest.approx([0.325, 0.1])
    boot = separation_bootstrap({"spatio_semantic": noisy, "semantic": blocks}, groups, layer="l1")
    assert boot["replicate"].tolist() == list(range(-1, N_RESAMPLES)) and (boot["n_units"] == 2).all()
    assert boot["auroc_spatio_semantic"].iloc[0] == 0.625 and (boot["auroc_semantic"].dropna() == 1.0).all()
    # a replicate drawing one source image twice has no different-image pair: its AUROC is undefined
    assert boot["auroc_semantic"].isna().any()
