"""A layer's matching as a Lightning prediction over tiles: one process, resumed from finished parts, through the
rsm_tiles stage, and a whole stage in two DDP processes on the CPU (gloo) started by torchrun.
Results are compared bit for bit with a whole computation: the engine's products do not depend on the tiling (same
machine and BLAS)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_runs import run_env
from stage_runs import tiny_feature_set
from test_rsm_tiles import LAYERS, REPO, TINY, compose_tiny

from semrsm.pipeline import rsm_cache
from semrsm.pipeline.rsm_cache import RSMSpec, cache_entry
from semrsm.pipeline.rsm_predict import TileMatcher, check_trainer_options, match_layer
from semrsm.pipeline.stage_extract import load_features
from semrsm.pipeline.stages import run_stage
from semrsm.pipeline.tiles import Tile, save_part
from semrsm.similarity import matched_scores

N = 14


@pytest.fixture
def features(tmp_path):
    return tiny_feature_set(tmp_path, N, tokens=6)


def _whole(tmp_path, features, layer="conv"):
    """The engine's scores of the whole layer in one call (no tiles, no Trainer): the reference."""
    return matched_scores(np.array(features.layer(layer)), "lapjv")


@pytest.fixture
def computed_tiles(monkeypatch):
    """The tiles the prediction computed in this process, in order."""
    tiles = []
    original = rsm_cache.compute_scores

    def counting(entry, features, tiles_=None, **kwargs):
        tiles.extend(tile.index for tile in tiles_ or [])
        return original(entry, features, tiles_, **kwargs)

    monkeypatch.setattr("semrsm.pipeline.rsm_predict.compute_scores", counting)
    return tiles


def test_one_process_predicts_every_tile_once_and_assembles_the_entry(tmp_path, features, computed_tiles):
    entry = cache_entry(RSMSpec(tmp_path / "cache", "lapjv"), features, "conv", True)
    got = match_layer(entry, features, 6)
    assert computed_tiles == [0, 1, 2, 3, 4, 5]
    assert entry.path.is_file() and not entry.parts_dir.exists()
    torch.testing.assert_close(got.scores, _whole(tmp_path, features).scores, rtol=0, atol=0)
    again = match_layer(entry, features, 6)  # cached: nothing predicted
    assert computed_tiles == [0, 1, 2, 3, 4, 5] and torch.equal(again.scores, got.scores)


def test_finished_parts_are_kept_and_only_the_missing_tiles_predicted(tmp_path, features, computed_tiles):
    entry = cache_entry(RSMSpec(tmp_path / "cache", "lapjv"), features, "tokens", True)
    whole = _whole(tmp_path, features, "tokens")
    for index in (1, 4):
        save_part(entry.parts_dir, Tile(N, index, 5), whole)
    got = match_layer(entry, features, 5)
    assert computed_tiles == [0, 2, 3]
    torch.testing.assert_close(got.scores, whole.scores, rtol=0, atol=0)


def test_each_rank_takes_every_world_size_th_tile():
    tiles = [Tile(N, index, 7) for index in range(7)]

    class Trainer:
        def __init__(self, rank):
            self.global_rank, self.world_size = rank, 3

    taken = []
    for rank in range(3):
        module = TileMatcher(None, Path("unused"), tiles)
        module.__dict__["_trainer"] = Trainer(rank)  # what the Trainer sets when it runs the module
        taken.append([tile.index for tile in module.predict_dataloader()])
    assert taken == [[0, 3, 6], [1, 4], [2, 5]]  # each tile once, the ranks' shares within one tile


def test_unknown_trainer_option_is_named():
    with pytest.raises(ValueError, match=r"unknown trainer option\(s\) \['device'\]; valid: \['accelerator'"):
        check_trainer_options({"device": 2})


def test_stage_spreads_the_tiles_with_its_trainer_and_later_runs_reuse_the_entry(tmp_path):
    cfg = compose_tiny(tmp_path, LAYERS, "rsm.num_tiles=5")
    summary = run_stage(cfg, tmp_path / "trainer")
    assert summary["layers_merged"] == 2 and "tile_index" not in summary and summary["devices"] == 1
    table = pd.read_csv(tmp_path / "trainer" / "results" / "tables" / "rsm_tiles.csv")
    assert table["status"].tolist() == ["merged", "merged"] and (table["num_pairs"] == 66).all()
    again = run_stage(compose_tiny(tmp_path, LAYERS, "rsm.num_tiles=5"), tmp_path / "b")
    assert again["layers_computed"] == 0
    with pytest.raises(ValueError, match=r"unknown key\(s\) rsm\.trainer\.gpus; valid keys of rsm\.trainer"):
        run_stage(compose_tiny(tmp_path, LAYERS, "+rsm.trainer.gpus=1"), tmp_path / "bad")


@pytest.mark.slow
def test_a_stage_under_torchrun_with_two_processes_gives_the_tables_of_one_process_bit_for_bit(tmp_path):
    """torchrun starts experiments/run.py twice with a retrieval stage: both ranks predict their share of every
    RSM's tiles through the stage's own Trainer (rsm.trainer), rank zero alone locks, assembles and publishes;
    the other rank leaves nothing behind. Its tables equal those of a one-process run, byte for byte."""
    # one layer: its spatio-semantic and semantic matchings are two entries predicted one after the other
    overrides = ["experiment.layers=[layer4]", "rsm.num_tiles=6", "experiment.queries_shown=0", "logger=none"]
    cfg = compose_tiny(tmp_path, *overrides, experiment="retrieval")
    load_features(cfg)  # extracted here, so the two ranks only match
    env = run_env(tmp_path)
    command = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2"]
    trainer = ["rsm.trainer.devices=2", "rsm.trainer.strategy=ddp"]
    run = [str(REPO / "experiments" / "run.py"), "experiment=retrieval", *TINY, *overrides, *trainer]
    done = subprocess.run(
        [*command, *run], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    log = done.stdout + done.stderr
    assert "rank 0: layer layer4, identity" in log and "rank 1: layer layer4, lapjv" in log
    (run_dir,) = (tmp_path / "outputs" / "runs" / "retrieval").iterdir()
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith("results")) == ["results"]

    alone = compose_tiny(tmp_path / "alone", *overrides, experiment="retrieval")
    run_stage(alone, tmp_path / "alone" / "run")
    tables = sorted(p.name for p in (run_dir / "results" / "tables").glob("*.csv"))
    assert "retrieval.csv" in tables and "retrieval_queries.csv" in tables
    for name in tables:
        two = (run_dir / "results" / "tables" / name).read_bytes()
        assert two == (tmp_path / "alone" / "run" / "results" / "tables" / name).read_bytes(), name
