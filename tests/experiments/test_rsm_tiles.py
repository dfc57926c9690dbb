"""rsm_tiles: balanced, deterministic pair tiles whose parts merge through the RSM cache into the whole entry."""

import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from cli_runs import run_env
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from stage_runs import tiny_feature_set

from semrsm.pipeline import rsm_cache
from semrsm.pipeline.config import register_resolvers
from semrsm.pipeline.rsm_cache import cache_entry, compute_scores
from semrsm.pipeline.rsm_predict import layer_rsms, layer_scores
from semrsm.pipeline.stage_common import rsm_spec
from semrsm.pipeline.stage_extract import load_features
from semrsm.pipeline.stage_rsm_tiles import layer_tile
from semrsm.pipeline.stages import run_stage
from semrsm.pipeline.tiles import Tile, check_tile_choice, pair_count, save_part
from semrsm.similarity import MatchedScores
from semrsm.similarity.engine import BLOCK_BYTES

REPO = Path(__file__).resolve().parents[2]
N = 11  # 55 pairs: four tiles of 13 or 14


def pairs_of(tile: Tile) -> list[tuple[int, int]]:
    return [(row, col) for row, first, end in tile.segments() for col in range(first, end)]


@pytest.mark.parametrize("num_samples", [2, 3, 7, 16, 23])
def test_tiles_cut_the_pairs_into_balanced_runs(num_samples):
    every_pair = [
        (int(i), int(j)) for i, j in zip(*np.triu_indices(num_samples, 1), strict=True)
    ]  # row-major
    for num_tiles in sorted({1, 2, 3, 4, 7, len(every_pair)} & set(range(1, len(every_pair) + 1))):
        tiles = [Tile(num_samples, index, num_tiles) for index in range(num_tiles)]
        sizes = [tile.num_pairs for tile in tiles]
        assert sum(sizes) == pair_count(num_samples) and max(sizes) - min(sizes) <= 1
        assert [pair for tile in tiles for pair in pairs_of(tile)] == every_pair  # each pair once, in order


@pytest.mark.parametrize("block_size", [1, 2, 3, 5, None])
def test_pair_blocks_of_a_tile_compute_exactly_the_tile_pairs_within_the_memory_bound(block_size):
    for num_samples, num_tiles in [(5, 1), (5, 3), (13, 4), (13, 10), (30, 7)]:
        for index in range(num_tiles):
            tile = Tile(num_samples, index, num_tiles)
            blocks = tile.pair_blocks(bytes_per_pair=36, block_size=block_size)
            computed = [
                (block.rows[a], block.cols[b])
                for block in blocks
                for a, b in zip(*block.local_pairs(), strict=True)
            ]
            assert sorted(computed) == pairs_of(tile)  # no pair twice, none missing, none foreign
            side = block_size or math.ceil(num_samples / 8)
            assert all(len(block.rows) * len(block.cols) <= side * side for block in blocks)


def test_pair_blocks_of_a_tile_shrink_to_the_memory_budget():
    tile = Tile(40, 1, 3)
    assert all(len(b.rows) * len(b.cols) == 1 for b in tile.pair_blocks(bytes_per_pair=BLOCK_BYTES))
    assert all(len(b.rows) * len(b.cols) <= 4 for b in tile.pair_blocks(bytes_per_pair=BLOCK_BYTES // 4))


@pytest.mark.parametrize("align", [3, 8])
def test_pair_blocks_of_a_tile_keep_aligned_blocks_whole(align):
    for num_samples, num_tiles in [(30, 1), (30, 4), (45, 7)]:
        for index in range(num_tiles):
            tile = Tile(num_samples, index, num_tiles)
            blocks = tile.pair_blocks(bytes_per_pair=36, align=align)
            computed = sorted(
                (block.rows[a], block.cols[b])
                for block in blocks
                for a, b in zip(*block.local_pairs(), strict=True)
            )
            assert computed == pairs_of(tile)
            side = align * math.ceil(math.ceil(num_samples / 8) / align)
            for block in blocks:  # inside one aligned tile of rows and one of columns
                assert len(block.rows) == 1 or block.rows[0] // side == block.rows[-1] // side
                assert block.cols[0] // side == block.cols[-1] // side or len(block.rows) == 1


def test_take_and_put_round_trip_through_both_triangles():
    rng = np.random.default_rng(0)
    full = rng.normal(size=(N, N))
    full = full + full.T
    rebuilt = np.full((N, N), np.nan)
    for index in range(4):
        tile = Tile(N, index, 4)
        tile.put(rebuilt, tile.take(full))
    np.fill_diagonal(rebuilt, np.diag(full))
    np.testing.assert_array_equal(rebuilt, full)


def test_bad_tile_choice_raises_naming_it():
    with pytest.raises(ValueError, match=r"tile_index must be .* 0\.\.3 .* got tile_index=4"):
        check_tile_choice(4, 4)
    with pytest.raises(ValueError, match="got tile_index=-1"):
        check_tile_choice(-1, 4)
    with pytest.raises(ValueError, match="got experiment.tile_index='1'"):
        check_tile_choice("1", 4, "experiment.")
    for bad in (0, -2, True, 2.0):
        with pytest.raises(ValueError, match=f"got num_tiles={bad!r}"):
            check_tile_choice(0, bad)
    with pytest.raises(ValueError, match="num_tiles=4 exceeds the 3 pairs of 3 samples"):
        Tile(3, 0, 4)
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        Tile(N, 0, 2).pair_blocks(36, block_size=0)


# --- tile parts in the RSM cache


@pytest.fixture
def features(tmp_path):
    return tiny_feature_set(tmp_path, N, tokens=6)


def make_cfg(cache_dir, matcher=None):
    return OmegaConf.create(
        {
            "paths": {"cache_dir": str(cache_dir)},
            "kernel": {"name": "cosine"},
            "matcher": matcher or {"name": "hungarian"},
            "force": False,
            "rsm": {
                "num_tiles": 1
            },  # a matching not from parts is one engine call, as ``matched_pairs`` counts
        }
    )


@pytest.fixture
def matched_pairs(monkeypatch):
    """Per matching the cache runs: the number of pairs it computed."""
    counts = []
    original = rsm_cache.matched_scores

    def counting(reps, matcher, blocks=None, **kwargs):
        counts.append(
            pair_count(len(reps)) if blocks is None else sum(len(b.local_pairs()[0]) for b in blocks)
        )
        return original(reps, matcher, blocks=blocks, **kwargs)

    monkeypatch.setattr(rsm_cache, "matched_scores", counting)
    return counts


def whole_layer(tmp_path, features, layer, matcher=None) -> MatchedScores:
    """The whole layer matched in one engine call (no tiles): the reference."""
    spec = rsm_spec(make_cfg(tmp_path / "reference", matcher))
    return compute_scores(cache_entry(spec, features, layer, True), features, progress=False)


@pytest.mark.parametrize(
    ("layer", "matcher"),
    [("conv", {"name": "hungarian"}), ("tokens", {"name": "batch_optimal", "window": 2})],
)
def test_four_tiles_merge_into_exactly_the_whole_layer_result(
    tmp_path, features, matched_pairs, layer, matcher
):
    cfg = make_cfg(tmp_path / "cache", matcher)
    statuses = [
        layer_tile(rsm_spec(cfg), features, layer, Tile(N, i, 4), progress=False) for i in (2, 0, 3, 1)
    ]
    assert statuses == ["computed", "computed", "computed", "merged"]
    assert matched_pairs == [Tile(N, i, 4).num_pairs for i in (2, 0, 3, 1)]
    entry = cache_entry(rsm_spec(cfg), features, layer, True)
    assert entry.path.is_file() and not entry.parts_dir.exists()

    merged = layer_scores(rsm_spec(cfg), features, layer, True, progress=False)
    assert len(matched_pairs) == 4  # loaded, not recomputed
    reference = whole_layer(tmp_path, features, layer, matcher)
    torch.testing.assert_close(merged.scores, reference.scores, rtol=0, atol=0)
    torch.testing.assert_close(merged.sq_norms, reference.sq_norms, rtol=0, atol=0)
    rsms = layer_rsms(rsm_spec(cfg), features, layer, True, ["cosine", "rbf"], progress=False)
    assert np.isfinite(rsms["rbf"]).all() and len(matched_pairs) == 5  # the reference was the 5th matching


def test_rerunning_a_finished_tile_does_nothing(tmp_path, features, matched_pairs):
    cfg = make_cfg(tmp_path / "cache")
    tile = Tile(N, 1, 3)
    assert layer_tile(rsm_spec(cfg), features, "conv", tile, progress=False) == "computed"
    part = cache_entry(rsm_spec(cfg), features, "conv", True).parts_dir / tile.file_name
    stamp = part.stat().st_mtime_ns
    assert layer_tile(rsm_spec(cfg), features, "conv", tile, progress=False) == "cached"
    assert part.stat().st_mtime_ns == stamp and len(matched_pairs) == 1
    for index in (0, 2):
        layer_tile(rsm_spec(cfg), features, "conv", Tile(N, index, 3), progress=False)
    assert (
        layer_tile(rsm_spec(cfg), features, "conv", tile, progress=False) == "cached"
    )  # the entry is assembled
    assert len(matched_pairs) == 3


def test_missing_parts_are_computed_by_the_next_layer_scores(tmp_path, features, matched_pairs, caplog):
    cfg = make_cfg(tmp_path / "cache")
    for index in (0, 1, 3):
        layer_tile(rsm_spec(cfg), features, "conv", Tile(N, index, 4), progress=False)
    with caplog.at_level(logging.INFO, logger="semrsm.pipeline.rsm_cache"):
        merged = layer_scores(rsm_spec(cfg), features, "conv", True, progress=False)
    assert "3 of 4 tile parts finished; computing the missing tiles [2] here" in caplog.text
    assert matched_pairs[-1] == Tile(N, 2, 4).num_pairs  # only the missing tile
    assert not cache_entry(rsm_spec(cfg), features, "conv", True).parts_dir.exists()
    torch.testing.assert_close(merged.scores, whole_layer(tmp_path, features, "conv").scores, rtol=0, atol=0)


def test_the_most_complete_partition_is_finished_and_the_others_dropped(tmp_path, features, matched_pairs):
    cfg = make_cfg(tmp_path / "cache")
    layer_tile(rsm_spec(cfg), features, "conv", Tile(N, 0, 4), progress=False)  # 13 pairs
    layer_tile(rsm_spec(cfg), features, "conv", Tile(N, 1, 2), progress=False)  # 28 pairs
    merged = layer_scores(rsm_spec(cfg), features, "conv", True, progress=False)
    assert matched_pairs[-1] == Tile(N, 0, 2).num_pairs
    assert not cache_entry(rsm_spec(cfg), features, "conv", True).parts_dir.exists()
    torch.testing.assert_close(merged.scores, whole_layer(tmp_path, features, "conv").scores, rtol=0, atol=0)


def test_force_recomputes_the_tile_and_the_entry_is_rebuilt_from_parts(tmp_path, features, matched_pairs):
    cfg = make_cfg(tmp_path / "cache")
    for index in range(2):
        layer_tile(rsm_spec(cfg), features, "conv", Tile(N, index, 2), progress=False)
    entry = cache_entry(rsm_spec(cfg), features, "conv", True)
    assert (
        layer_tile(rsm_spec(cfg), features, "conv", Tile(N, 0, 2), force=True, progress=False) == "computed"
    )
    assert not entry.path.exists() and (entry.parts_dir / "0-of-2.npz").is_file()
    merged = layer_scores(rsm_spec(cfg), features, "conv", True, progress=False)
    assert matched_pairs == [27, 28, 27, 28]
    torch.testing.assert_close(merged.scores, whole_layer(tmp_path, features, "conv").scores, rtol=0, atol=0)
    layer_tile(rsm_spec(cfg), features, "conv", Tile(N, 1, 2), force=True, progress=False)
    layer_scores(
        rsm_spec(cfg), features, "conv", True, force=True, progress=False
    )  # every pair again; parts dropped
    assert matched_pairs[-3:] == [55, 28, 55]
    assert not entry.parts_dir.exists() and entry.path.is_file()


def test_a_part_of_the_wrong_size_is_reported(tmp_path, features):
    cfg = make_cfg(tmp_path / "cache")
    entry = cache_entry(rsm_spec(cfg), features, "conv", True)
    wrong = MatchedScores(
        torch.zeros(N + 1, N + 1, dtype=torch.float64), torch.ones(N + 1, dtype=torch.float64)
    )
    save_part(entry.parts_dir, Tile(N + 1, 0, 2), wrong)
    (entry.parts_dir / "0-of-2.npz").rename(entry.parts_dir / "5-of-2.npz")
    with pytest.raises(ValueError, match=r"tile part .*5-of-2\.npz does not fit 11 samples"):
        layer_scores(rsm_spec(cfg), features, "conv", True, progress=False)


@pytest.mark.parametrize("damage", ["wrong size", "truncated"])
def test_a_corrupt_part_is_reported_and_its_tile_computed_again(tmp_path, features, caplog, damage):
    cfg = make_cfg(tmp_path / "cache")
    entry = cache_entry(rsm_spec(cfg), features, "conv", True)
    whole = compute_scores(entry, features, progress=False)
    for index in range(2):
        save_part(entry.parts_dir, Tile(N, index, 2), whole)
    part = entry.parts_dir / "0-of-2.npz"
    if damage == "wrong size":
        wrong = MatchedScores(
            torch.zeros(N + 1, N + 1, dtype=torch.float64), torch.ones(N + 1, dtype=torch.float64)
        )
        save_part(entry.parts_dir, Tile(N + 1, 0, 2), wrong)
    else:
        part.write_bytes(part.read_bytes()[:150])
    with caplog.at_level(logging.WARNING):
        merged = layer_scores(rsm_spec(cfg), features, "conv", True, progress=False)
    assert f"corrupt or truncated file {part}" in caplog.text and "computed again" in caplog.text
    torch.testing.assert_close(merged.scores, whole.scores, rtol=0, atol=0)


# --- the stage through Hydra configs

TINY = [
    "logger=none",
    "dataset=synthetic",
    "dataset.num_classes=3",
    "dataset.train_per_class=1",
    "dataset.val_per_class=4",
    "backbone=resnet18",
    "backbone.pretrained=false",
    "features.progress_bar=false",
]
LAYERS = "experiment.layers=[layer3,layer4]"


def compose_tiny(root, *overrides, experiment="rsm_tiles"):
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", [f"paths.root_dir={root}", f"experiment={experiment}", *TINY, *overrides])


def test_stage_tiles_in_separate_runs_merge_and_later_stages_reuse_them(tmp_path, monkeypatch):
    summaries = []
    for index in range(4):
        cfg = compose_tiny(tmp_path, LAYERS, f"experiment.tile_index={index}", "rsm.num_tiles=4")
        summaries.append(run_stage(cfg, tmp_path / f"tile{index}"))
    assert [s["layers_computed"] for s in summaries] == [2, 2, 2, 2]
    assert [s["layers_merged"] for s in summaries] == [0, 0, 0, 2]
    assert sum(s["tile_pairs"] for s in summaries) == pair_count(12) and summaries[0]["num_samples"] == 12
    table = pd.read_csv(tmp_path / "tile3" / "results" / "tables" / "rsm_tiles.csv")
    assert table["layer"].tolist() == ["layer3", "layer4"] and set(table["status"]) == {"merged"}
    assert {"dataset", "backbone", "matcher", "spatial_size", "num_pairs", "seconds"} <= set(table.columns)
    again = compose_tiny(tmp_path, LAYERS, "experiment.tile_index=1", "rsm.num_tiles=4")
    assert run_stage(again, tmp_path / "again")["layers_computed"] == 0

    features = load_features(cfg)
    merged = {
        layer: layer_scores(rsm_spec(cfg), features, layer, True, progress=False)
        for layer in ("layer3", "layer4")
    }
    matchings = []
    original = rsm_cache.matched_scores
    monkeypatch.setattr(
        rsm_cache,
        "matched_scores",
        lambda reps, matcher, **kw: matchings.append(matcher) or original(reps, matcher, **kw),
    )
    later = run_stage(compose_tiny(tmp_path, LAYERS, experiment="layers_cka"), tmp_path / "cka")
    assert matchings == ["identity", "identity"] and later["num_layers"] == 2  # only the spatio-semantic RSMs
    for layer, scores in merged.items():
        whole = layer_scores(rsm_spec(cfg), features, layer, True, force=True, progress=False)
        torch.testing.assert_close(scores.scores, whole.scores, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["experiment.tile_index=4", "rsm.num_tiles=4"], r"experiment\.tile_index=4"),
        (
            ["experiment.tile_index=0", "rsm.num_tiles=0"],
            r"rsm\.num_tiles must be a positive integer or null, got 0",
        ),
        (["experiment.tile_index=0", "rsm.num_tiles=100"], r"num_tiles=100 exceeds the 66 pairs"),
    ],
)
def test_stage_rejects_bad_tiles(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_stage(compose_tiny(tmp_path, *overrides), tmp_path / "run")


@pytest.mark.slow
def test_joblib_multirun_of_tiles_assembles_the_entry(tmp_path):
    env = run_env(tmp_path)
    sweep_args = ["experiment.layers=[layer4]", "experiment.tile_index=0,1,2", "rsm.num_tiles=3"]
    run = [
        sys.executable,
        str(REPO / "experiments" / "run.py"),
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    ]
    done = subprocess.run(
        [*run, "experiment=rsm_tiles", *TINY, *sweep_args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Joblib.Parallel(n_jobs=2" in done.stdout + done.stderr
    sweep = tmp_path / "outputs" / "multirun" / "rsm_tiles"
    launcher = yaml.safe_load((sweep / "multirun.yaml").read_text())["hydra"]["launcher"]["_target_"]
    assert launcher.endswith("JoblibLauncher") and len(pd.read_csv(sweep / "aggregate.csv")) == 3
    table = pd.read_csv(sweep / "rsm_tiles.csv")
    assert sorted(table["tile_index"]) == [0, 1, 2] and (table["status"] == "merged").sum() == 1
    cfg = compose_tiny(tmp_path)
    entry = cache_entry(rsm_spec(cfg), load_features(cfg), "layer4", True)
    assert entry.path.is_file() and not entry.parts_dir.exists()
    with np.load(entry.path) as data:
        assert not np.isnan(data["scores"]).any()
