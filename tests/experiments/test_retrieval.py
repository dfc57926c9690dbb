"""The retrieval stage (claims C2/C3) end to end on tiny synthetic scenes, and its helpers."""

import itertools

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from stage_runs import rsm_cache_entries, run_tiny

from semrsm.metrics import set_f1
from semrsm.pipeline.feature_store import ShardedFeatureWriter
from semrsm.pipeline.stage_retrieval import (
    category_label,
    object_sets,
    query_choice,
    random_f1,
    retrieval_layers,
    retrieval_rows,
    sample_image,
)
from semrsm.pipeline.stages import run_stage

CONTRACT = ["dataset", "backbone", "layer", "kernel", "matcher", "semantic", "f1_at_1", "n_queries"]
TINY = [
    "experiment=retrieval",
    "logger=none",
    "backbone.pretrained=false",  # the default resnet18_synthetic, randomly initialised
    "backbone.num_classes=4",
    "features.progress_bar=false",
    "experiment.queries_shown=2",
]
SCENES = ["dataset.num_classes=4", "dataset.num_images=12", "dataset.image_size=64"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("retrieval")


def run(root, run_name, *overrides):
    return run_tiny(root, run_name, TINY, *overrides)


@pytest.fixture(scope="module")
def resnet_run(root):
    return run(root, "resnet18", *SCENES, "experiment.layers=null")


@pytest.mark.slow
def test_conv_backbone_table_figures_and_summary(resnet_run):
    summary, results = resnet_run
    table = pd.read_csv(results / "tables" / "retrieval.csv")
    assert set(CONTRACT) <= set(table.columns)
    assert table["layer"].unique().tolist() == ["layer1", "layer2", "layer3", "layer4"]
    assert table["spatial_size"].unique().tolist() == [256, 64, 16, 4]
    assert (table.groupby("layer")["semantic"].apply(sorted) == [[False, True]] * 4).all()
    assert set(table["dataset"]) == {"synthetic_scenes"} and set(table["backbone"]) == {"resnet18"}
    assert set(table["kernel"]) == {"cosine"} and set(table["matcher"]) == {"lapjv"}
    assert table["f1_at_1"].between(0, 1).all() and (table["n_queries"] == 12).all()
    assert table["f1_random"].between(0, 1).all() and table["f1_random"].nunique() == 1
    assert table["neighbor_similarity_mean"].between(-1, 1).all()
    wide = table.pivot(index="layer", columns="semantic", values="neighbor_similarity_mean")
    assert (wide[True] >= wide[False] - 1e-9).all()  # exact matching never lowers a cosine similarity
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        assert (results / "figures" / f"retrievals_{layer}.png").stat().st_size > 1000
    assert summary["num_samples"] == 12 and summary["num_layers"] == 4
    gains = table.pivot(index="layer", columns="semantic", values="f1_at_1").diff(axis=1)[True]
    assert summary["f1_gain/min"] == pytest.approx(gains.min())
    assert summary["f1_gain/max"] == pytest.approx(gains.max())
    assert summary["f1_gain/cosine/last"] == pytest.approx(gains["layer4"])  # the deepest layer
    assert summary["f1_gain/cosine/mean"] == pytest.approx(gains.mean())
    assert not [key for key in summary if "layer" in key.split("/")[0] and key != "num_layers"]
    queries = pd.read_csv(results / "tables" / "retrieval_queries.csv")
    assert len(queries) == 4 * 12 and (queries["seed"] == 0).all()
    means = queries.groupby("layer")[["f1_semantic", "f1_spatio_semantic"]].mean()
    wide = table.pivot(index="layer", columns="semantic", values="f1_at_1")
    np.testing.assert_allclose(means["f1_semantic"], wide.loc[means.index, True], rtol=1e-12)
    np.testing.assert_allclose(means["f1_spatio_semantic"], wide.loc[means.index, False], rtol=1e-12)
    semantic = table[(table["layer"] == "layer4") & table["semantic"]]
    assert summary["f1_at_1/semantic/cosine/last"] == pytest.approx(semantic["f1_at_1"].item())
    baseline = table[(table["layer"] == "layer4") & ~table["semantic"]]
    assert summary["f1_at_1/spatio_semantic/cosine/last"] == pytest.approx(baseline["f1_at_1"].item())


@pytest.mark.slow
def test_other_kernel_reuses_cached_matchings_of_the_last_layer(root, resnet_run):
    before = rsm_cache_entries(root)
    assert len(before) == 8  # 4 layers x {hungarian, identity}
    summary, results = run(root, "rbf", *SCENES, "kernel=rbf", "experiment.queries_shown=0")
    assert rsm_cache_entries(root) == before
    table = pd.read_csv(results / "tables" / "retrieval.csv")
    assert set(table["kernel"]) == {"rbf"} and table["layer"].tolist() == ["layer4", "layer4"]
    assert not (results / "figures").exists() or not any((results / "figures").iterdir())
    assert summary["num_layers"] == 1


@pytest.mark.slow
def test_columns_name_the_chosen_config_options(root, resnet_run, compose_in_app):
    before = rsm_cache_entries(root)
    cfg = compose_in_app(f"paths.root_dir={root}", *TINY, *SCENES, "experiment.queries_shown=0")
    run_stage(cfg, root / "in_app")
    table = pd.read_csv(root / "in_app" / "results" / "tables" / "retrieval.csv")
    assert cfg.backbone.name == "resnet18" and set(table["backbone"]) == {"resnet18_synthetic"}
    assert set(table["dataset"]) == {"synthetic_scenes"} and rsm_cache_entries(root) == before


@pytest.mark.slow
def test_token_backbone_on_cityscapes_format(root):
    overrides = [
        "dataset=synthetic_cityscapes",
        "dataset.num_images=10",
        "dataset.width=128",
        "dataset.height=64",
        "backbone=vit_tiny",
        "matcher=batch_optimal",
        "matcher.window=16",
        "experiment.top_k=2",
    ]
    summary, results = run(root, "vit", *overrides)
    table = pd.read_csv(results / "tables" / "retrieval.csv")
    assert table["layer"].tolist() == ["blocks.11", "blocks.11"] and set(table["spatial_size"]) == {64}
    assert set(table["dataset"]) == {"synthetic_cityscapes"} and set(table["matcher"]) == {"batch_optimal"}
    assert table["f1_at_1"].between(0, 1).all() and (table["n_queries"] == 10).all()
    assert (results / "figures" / "retrievals_blocks.11.png").is_file()


@pytest.mark.slow
def test_dataset_without_objects_fails_cleanly(root):
    with pytest.raises(ValueError, match="'photos' has no object annotations"):
        run(root, "photos", "dataset=photos")
    assert (root / "photos" / "results.failed").is_dir() and not (root / "photos" / "results").exists()


def feature_set(tmp_path, objects, layers=("a", "b")):
    n = len(objects)
    writer = ShardedFeatureWriter(tmp_path, {"objects": objects}, n, dict.fromkeys(layers, "NCHW"))
    samples = [{"id": f"s{i}", "label": -1, "objects": list(o), "meta": {}} for i, o in enumerate(objects)]
    writer.add(np.arange(n), {layer: np.ones((n, 1, 1, 1)) for layer in layers}, samples)
    return writer.finalize()


def test_object_sets_require_annotations(tmp_path):
    assert object_sets(feature_set(tmp_path / "a", [(1, 2), (), (3,)])) == ((1, 2), (), (3,))
    with pytest.raises(ValueError, match="'plain' has no object annotations"):
        object_sets(feature_set(tmp_path / "b", [(), ()]), "plain")


def test_retrieval_layers(tmp_path):
    features = feature_set(tmp_path, [(1,), (2,)], layers=("early", "late"))
    assert retrieval_layers(features, "last") == ["late"]
    assert retrieval_layers(features, None) == ["early", "late"]
    assert retrieval_layers(features, ["late", "early"]) == ["late", "early"]
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['final'\]"):
        retrieval_layers(features, "final")


def test_random_f1_is_the_mean_over_other_samples():
    categories = [(1, 2), (2,), (), (3, 1)]
    pairs = [(i, j) for i, j in itertools.permutations(range(4), 2)]
    expected = np.mean([set_f1(categories[i], categories[j]) for i, j in pairs])
    assert random_f1(categories) == pytest.approx(expected)
    assert random_f1([(1,), (1,), (1,)]) == 1.0


def test_retrieval_rows_per_variant():
    categories = [(0, 1), (0, 1), (2,), (2,)]
    blocks = np.kron(np.eye(2), np.ones((2, 2))) + 0.1 * np.eye(4)  # the same objects are most similar
    shifted = np.roll(blocks, 2, axis=1) + 0.1 * np.eye(4)  # the other objects are most similar
    rows, queries = retrieval_rows({False: shifted, True: blocks}, categories, layer="l")
    assert [(row["semantic"], row["f1_at_1"]) for row in rows] == [(False, 0.0), (True, 1.0)]
    assert queries["layer"].tolist() == ["l"] * 4 and queries["query"].tolist() == [0, 1, 2, 3]
    assert (
        queries["f1_semantic"].tolist() == [1.0] * 4 and queries["f1_spatio_semantic"].tolist() == [0.0] * 4
    )
    assert queries["neighbor_semantic"].tolist() == [1, 0, 3, 2]
    assert all(row["layer"] == "l" and row["n_queries"] == 4 for row in rows)
    assert [row["neighbor_similarity_mean"] for row in rows] == pytest.approx([1.1, 1.0])
    assert random_f1(categories) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("top_k=0", "top_k must be an integer >= 1, got 0"),
        ("queries_shown=-1", "queries_shown must be an integer >= 0"),
    ],
)
def test_bad_options_fail_cleanly(root, option, message):
    with pytest.raises(ValueError, match=message):
        run(root, "bad", *SCENES, f"experiment.{option}")
    assert (root / "bad" / "results.failed").is_dir() and not (root / "bad" / "results").exists()


def test_query_choice_is_seeded_distinct_and_bounded():
    chosen = query_choice(20, 4, seed=1)
    assert len(set(chosen.tolist())) == 4 and (np.diff(chosen) > 0).all()
    assert np.array_equal(chosen, query_choice(20, 4, seed=1))
    assert query_choice(3, 10, seed=0).tolist() == [0, 1, 2] and query_choice(5, 0, seed=0).size == 0


def test_category_label():
    classes = ["", "car", "bus", "person"]
    assert category_label((1, 2), classes) == "car, bus"
    assert category_label((1, 2, 3), classes) == "car, bus +1"
    assert category_label((7,), classes) == "7" and category_label((3,), None) == "3"
    assert category_label((), classes) == "(none)"


class ListDataset:
    def __init__(self, ids):
        self.ids = ids

    def __getitem__(self, index):
        return {"id": self.ids[index], "image": Image.new("RGB", (4, 3))}


def test_sample_image_checks_the_stored_id(tmp_path):
    features = feature_set(tmp_path, [(1,), (2,)])
    assert sample_image(ListDataset(["s0", "s1"]), features, 1).shape == (3, 4, 3)
    with pytest.raises(ValueError, match="dataset sample 1 has id 'x' but the stored features have 's1'"):
        sample_image(ListDataset(["s0", "x"]), features, 1)


@pytest.mark.slow
def test_several_kernels_from_one_matching_agree_with_single_kernel_runs(root, resnet_run):
    before = rsm_cache_entries(root)
    summary, results = run(
        root, "kernels", *SCENES, "experiment.kernels=[linear,cosine]", "experiment.queries_shown=0"
    )
    assert rsm_cache_entries(root) == before  # the matchings of resnet_run serve both kernels
    table = pd.read_csv(results / "tables" / "retrieval.csv")
    assert table["kernel"].tolist() == ["linear", "linear", "cosine", "cosine"]
    single = pd.read_csv(resnet_run[1] / "tables" / "retrieval.csv")
    single = single[single["layer"] == "layer4"].set_index("semantic")["f1_at_1"]
    cosine = table[table["kernel"] == "cosine"].set_index("semantic")["f1_at_1"]
    assert cosine.to_dict() == single.to_dict()
    queries = pd.read_csv(results / "tables" / "retrieval_queries.csv")
    assert queries.groupby("kernel").size().to_dict() == {"cosine": 12, "linear": 12}
    linear = table[table["kernel"] == "linear"].set_index("semantic")["f1_at_1"]
    assert summary["f1_at_1/semantic/linear/last"] == pytest.approx(linear[True])
    assert summary["f1_gain/linear/last"] == pytest.approx(linear[True] - linear[False])
    with pytest.raises(ValueError, match="experiment.kernels must list distinct kernels"):
        run(root, "bad_kernels", *SCENES, "experiment.kernels=[cosine,gauss]")
