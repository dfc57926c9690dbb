"""The layers_cka stage (claim C6) end to end on tiny synthetic data, and its helpers."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from cli_runs import run_env
from scipy import stats
from stage_runs import run_tiny

from semrsm.metrics.bootstrap import N_RESAMPLES
from semrsm.pipeline.stage_layers_cka import cka_matrix, size_trend

CONTRACT = {"dataset", "backbone", "layer", "spatial_size", "kernel", "matcher", "cka"}
TINY = [
    "experiment=layers_cka",
    "logger=none",
    "backbone.pretrained=false",  # the default resnet18_synthetic, randomly initialised
    "dataset.num_classes=3",
    "dataset.train_per_class=1",
    "dataset.val_per_class=4",
    "features.batch_size=16",
    "features.progress_bar=false",
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("cka")


def run(root, run_name, *overrides):
    return run_tiny(root, run_name, TINY, *overrides)


@pytest.fixture(scope="module")
def resnet_run(root):
    return run(root, "resnet18")


def tables(results):
    diagonal = pd.read_csv(results / "tables" / "layers_cka.csv")
    matrix = pd.read_csv(results / "tables" / "layers_cka_matrix.csv")
    return diagonal, matrix


@pytest.mark.slow
def test_conv_backbone_tables_figures_and_summary(resnet_run):
    summary, results = resnet_run
    diagonal, matrix = tables(results)
    assert CONTRACT <= set(diagonal.columns)
    assert diagonal["layer"].tolist() == ["layer1", "layer2", "layer3", "layer4"]
    assert diagonal["spatial_size"].tolist() == [256, 64, 16, 4]
    assert set(diagonal["dataset"]) == {"synthetic"} and set(diagonal["matcher"]) == {"lapjv"}
    assert diagonal["cka"].between(-1, 1).all() and not diagonal["cka"].isna().any()
    assert len(matrix) == 16 and matrix["cka"].between(-1, 1).all()
    same = matrix[matrix["semantic_layer"] == matrix["spatio_semantic_layer"]]
    np.testing.assert_allclose(same["cka"].to_numpy(), diagonal["cka"].to_numpy())
    expected = stats.spearmanr(diagonal["spatial_size"], diagonal["cka"]).statistic
    assert summary["cka/spearman_spatial_size"] == pytest.approx(expected)
    boot = pd.read_csv(results / "tables" / "layers_cka_bootstrap.csv")
    assert (boot.groupby("layer").size() == 1 + N_RESAMPLES).all() and (boot["n_units"] == 12).all()
    full = boot[boot["replicate"] == -1]
    assert full["layer"].tolist() == diagonal["layer"].tolist()
    np.testing.assert_allclose(full["cka"].to_numpy(), diagonal["cka"].to_numpy(), rtol=1e-9)
    assert boot["cka"].between(-1, 1).all()
    assert summary["cka/first"] == pytest.approx(diagonal["cka"].iloc[0])
    assert summary["cka/last"] == pytest.approx(diagonal["cka"].iloc[3])
    assert summary["cka/size_16"] == pytest.approx(diagonal["cka"].iloc[2])  # layer3: 4x4 positions
    assert {key for key in summary if key.startswith("cka/size_")} == {
        f"cka/size_{s}" for s in (4, 16, 64, 256)
    }
    assert summary["num_samples"] == 12 and summary["num_layers"] == 4
    for name in ("cka_matrix", "cka_vs_spatial_size"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 1000


@pytest.mark.slow
def test_identity_matcher_makes_both_rsms_equal(root, resnet_run):
    summary, results = run(root, "identity", "matcher=identity", "kernel=rbf", "experiment.debiased=true")
    diagonal, matrix = tables(results)
    np.testing.assert_allclose(diagonal["cka"], 1.0, atol=1e-9)
    off = matrix[matrix["semantic_layer"] != matrix["spatio_semantic_layer"]]
    assert (off["cka"] < 1 - 1e-6).all()
    assert set(diagonal["kernel"]) == {"rbf"} and summary["cka/mean"] == pytest.approx(1.0)


@pytest.mark.slow
def test_token_backbone_has_one_spatial_size(root):
    overrides = ["backbone=vit_tiny", "backbone.num_classes=3", "experiment.layers=[blocks.5,blocks.11]"]
    summary, results = run(root, "vit", *overrides, "matcher=greedy")
    diagonal, matrix = tables(results)
    assert diagonal["layer"].tolist() == ["blocks.5", "blocks.11"] and set(diagonal["spatial_size"]) == {64}
    assert len(matrix) == 4 and diagonal["cka"].between(-1, 1).all()
    assert math.isnan(summary["cka/spearman_spatial_size"])
    assert json.loads((results / "metrics.json").read_text())["cka/spearman_spatial_size"] is None
    assert summary["cka/size_64"] == pytest.approx(diagonal["cka"].mean())  # one size: the layers' mean
    assert summary["cka/last"] == pytest.approx(diagonal["cka"].iloc[1])


@pytest.mark.slow
def test_cli_names_the_chosen_backbone_and_reuses_the_caches(cli, root, resnet_run):
    done = cli.run([*TINY, "backbone=resnet18_synthetic"], cwd=root, env=run_env(root))
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = (root / "outputs" / "runs" / "layers_cka").glob("*/results")
    diagonal, _ = tables(results)
    assert set(diagonal["backbone"]) == {"resnet18_synthetic"}  # what a sweep override calls it
    np.testing.assert_allclose(diagonal["cka"], tables(resnet_run[1])[0]["cka"])  # same features and RSMs
    assert "matching" not in done.stderr  # every matching came from the RSM cache


@pytest.mark.slow
def test_bad_debiased_option_fails(root, resnet_run):
    with pytest.raises(ValueError, match="experiment.debiased must be true or false, got 'yes'"):
        run(root, "bad", "experiment.debiased=yes")


def test_cka_matrix_compares_semantic_rows_with_spatio_semantic_columns():
    rng = np.random.default_rng(0)
    grams = [x @ x.T for x in (rng.normal(size=(8, 3)), rng.normal(size=(8, 5)))]
    matrix = cka_matrix({"a": grams[0], "b": grams[1]}, {"a": grams[0], "b": grams[1]})
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert matrix[0, 1] == pytest.approx(matrix[1, 0]) and matrix[0, 1] < 0.99
    swapped = cka_matrix({"a": grams[0], "b": grams[1]}, {"a": grams[1], "b": grams[0]})
    np.testing.assert_allclose(swapped, matrix[:, ::-1])
    with pytest.raises(ValueError, match="layers differ"):
        cka_matrix({"a": grams[0]}, {"b": grams[0]})


def test_size_trend():
    assert size_trend([256, 64, 16, 4], [0.2, 0.4, 0.5, 0.9]) == pytest.approx(-1.0)
    assert size_trend([256, 64, 16], [0.9, 0.1, 0.5]) == pytest.approx(0.5)
    assert math.isnan(size_trend([64, 64], [0.2, 0.4]))
    assert math.isnan(size_trend([64, 16], [0.5, 0.5]))
