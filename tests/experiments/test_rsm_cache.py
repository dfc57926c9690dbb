"""The RSM cache: one matching per (features, layer, matcher) serves every kernel, reused until forced."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from stage_runs import tiny_feature_set

from semrsm.pipeline import rsm_cache
from semrsm.pipeline.rsm_cache import matcher_choice, rsm_cache_key
from semrsm.pipeline.rsm_predict import layer_rsms, layer_scores
from semrsm.pipeline.stage_common import result_keys, rsm_spec, select_layers
from semrsm.similarity import semantic_rsm, spatio_semantic_rsm

N = 6


@pytest.fixture
def features(tmp_path):
    return tiny_feature_set(tmp_path, N, tokens=5)


def make_cfg(tmp_path, kernel="cosine", matcher=None, **extra):
    return OmegaConf.create(
        {
            "paths": {"cache_dir": str(tmp_path / "cache")},
            "kernel": {"name": kernel, "sigma": None} if kernel == "rbf" else {"name": kernel},
            "matcher": matcher or {"name": "hungarian"},
            "force": False,
            "rsm": {"num_tiles": 1},  # a matching is one engine call, as ``count_matchings`` counts
            **extra,
        }
    )


@pytest.fixture
def count_matchings(monkeypatch):
    calls = []
    original = rsm_cache.matched_scores

    def counting(reps, matcher, **kwargs):
        calls.append(matcher)
        return original(reps, matcher, **kwargs)

    monkeypatch.setattr(rsm_cache, "matched_scores", counting)
    return calls


@pytest.mark.parametrize("layer", ["conv", "tokens"])
def test_rsms_equal_the_engine_for_both_layouts(tmp_path, features, layer):
    cfg = make_cfg(tmp_path)
    reps = np.array(features.layer(layer))
    semantic = layer_rsms(rsm_spec(cfg), features, layer, True, ["cosine", "linear"], progress=False)
    flat = layer_rsms(rsm_spec(cfg), features, layer, False, ["cosine", "linear"], progress=False)
    for kernel in ("cosine", "linear"):
        np.testing.assert_allclose(
            semantic[kernel], semantic_rsm(reps, kernel, "hungarian").numpy(), atol=1e-9
        )
        np.testing.assert_allclose(flat[kernel], spatio_semantic_rsm(reps, kernel).numpy(), atol=1e-9)
    assert (semantic["linear"] >= flat["linear"] - 1e-6).all()  # the optimal matching never scores below none
    assert not np.allclose(semantic["linear"], flat["linear"])


def test_one_matching_serves_all_kernels_and_is_reused(tmp_path, features, count_matchings):
    cfg = make_cfg(tmp_path)
    first = layer_rsms(rsm_spec(cfg), features, "conv", True, progress=False)
    assert list(first) == ["cosine"] and first["cosine"].shape == (N, N)
    again = layer_rsms(rsm_spec(cfg), features, "conv", True, ["linear", "cosine", "rbf"], progress=False)
    np.testing.assert_array_equal(again["cosine"], first["cosine"])
    assert count_matchings == ["hungarian"]
    entries = sorted(p.name for p in rsm_spec(cfg).root.iterdir() if p.suffix == ".npz")
    key = rsm_cache_key(features.key, "conv", "hungarian", {}, features.layer_checksum("conv"))
    assert entries == [f"{key}.npz"]


def test_force_recomputes(tmp_path, features, count_matchings):
    cfg = make_cfg(tmp_path)
    layer_scores(rsm_spec(cfg), features, "conv", False, progress=False)
    layer_scores(rsm_spec(cfg), features, "conv", False, progress=False)
    layer_scores(rsm_spec(cfg), features, "conv", False, force=True, progress=False)
    layer_scores(rsm_spec(make_cfg(tmp_path, force=True)), features, "conv", False, progress=False)
    assert count_matchings == ["identity"] * 3


def test_keys_separate_matchers_options_and_layers(tmp_path, features, count_matchings):
    window2 = make_cfg(tmp_path, matcher={"name": "batch_optimal", "window": 2})
    window4 = make_cfg(tmp_path, matcher={"name": "batch_optimal", "window": 4})
    for cfg in (window2, window4):
        for layer in ("conv", "tokens"):
            layer_scores(rsm_spec(cfg), features, layer, True, progress=False)
            layer_scores(rsm_spec(cfg), features, layer, False, progress=False)
    # the spatio-semantic entry ignores the configured matcher: computed once per layer
    assert count_matchings.count("batch_optimal") == 4 and count_matchings.count("identity") == 2
    assert matcher_choice(rsm_spec(window2), True) == ("batch_optimal", {"window": 2})
    assert matcher_choice(rsm_spec(window2), False) == ("identity", {})


def test_rbf_uses_the_configured_sigma(tmp_path, features):
    cfg = make_cfg(tmp_path, "rbf")
    cfg.kernel.sigma = 0.5
    fixed = layer_rsms(rsm_spec(cfg), features, "tokens", False, progress=False)["rbf"]
    expected = spatio_semantic_rsm(np.array(features.layer("tokens")), "rbf", sigma=0.5).numpy()
    np.testing.assert_allclose(fixed, expected, atol=1e-12)
    cfg.kernel.sigma = None
    assert not np.allclose(layer_rsms(rsm_spec(cfg), features, "tokens", False, progress=False)["rbf"], fixed)


def test_cache_leaves_no_temporary_files(tmp_path, features):
    cfg = make_cfg(tmp_path)
    layer_scores(rsm_spec(cfg), features, "conv", True, progress=False)
    names = [p.name for p in rsm_spec(cfg).root.iterdir()]
    assert not [name for name in names if "tmp" in name]


def test_bad_input_raises(tmp_path, features):
    cfg = make_cfg(tmp_path)
    with pytest.raises(ValueError, match="unknown layer 'fc'"):
        layer_rsms(rsm_spec(cfg), features, "fc", True)
    with pytest.raises(ValueError, match="semantic must be True or False"):
        layer_rsms(rsm_spec(cfg), features, "conv", "yes")
    with pytest.raises(ValueError, match="empty list of kernel names"):
        layer_rsms(rsm_spec(cfg), features, "conv", True, [])
    with pytest.raises(ValueError, match="unknown kernel 'gauss'"):
        layer_rsms(rsm_spec(cfg), features, "conv", True, ["gauss"])
    with pytest.raises(ValueError, match="unknown option"):
        layer_rsms(
            rsm_spec(make_cfg(tmp_path, matcher={"name": "greedy", "window": 3})), features, "conv", True
        )
    with pytest.raises(ValueError, match="unknown matcher 'fast'"):
        layer_rsms(rsm_spec(make_cfg(tmp_path, matcher={"name": "fast"})), features, "conv", True)


@pytest.mark.parametrize("damage", ["wrong shape", "truncated", "flipped byte"])
def test_a_corrupt_entry_is_reported_and_computed_again(tmp_path, features, caplog, damage):
    cfg = make_cfg(tmp_path)
    clean = layer_scores(rsm_spec(cfg), features, "conv", False, progress=False)
    key = rsm_cache_key(features.key, "conv", "identity", {}, features.layer_checksum("conv"))
    path = rsm_spec(cfg).root / f"{key}.npz"
    if damage == "wrong shape":
        np.savez(path, scores=np.zeros((2, 2)), sq_norms=np.ones(2))
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x08
        path.write_bytes(bytes(data[:300] if damage == "truncated" else data))
    with caplog.at_level(logging.WARNING):
        again = layer_scores(rsm_spec(cfg), features, "conv", False, progress=False)
    assert f"corrupt or truncated file {path}" in caplog.text and "computing it again" in caplog.text
    torch.testing.assert_close(again.scores, clean.scores, rtol=0, atol=0)
    torch.testing.assert_close(
        layer_scores(rsm_spec(cfg), features, "conv", False, progress=False).scores, clean.scores
    )


def test_select_layers_and_spatial_size(features):
    assert select_layers(features, None) == ["conv", "tokens"]
    assert select_layers(features, ["tokens"]) == ["tokens"]
    assert select_layers(features, "conv") == ["conv"]
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['fc'\]"):
        select_layers(features, ["conv", "fc"])
    with pytest.raises(ValueError, match="empty list"):
        select_layers(features, [])
    assert features.spatial_size("conv") == 9 and features.spatial_size("tokens") == 5


@pytest.fixture
def hydra_app_config():
    """A composed config with the Hydra runtime set, as inside ``experiments/run.py``."""
    conf = str(Path(__file__).resolve().parents[2] / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        cfg = compose(
            "config", ["experiment=translated_crops", "kernel=rbf", "logger=none"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    yield cfg
    HydraConfig.instance().cfg = None


def test_result_keys_name_the_chosen_config_options(tmp_path, hydra_app_config):
    assert hydra_app_config.backbone.name == "resnet18"
    assert result_keys(hydra_app_config) == {
        "dataset": "synthetic_crops",
        "backbone": "resnet18_synthetic",  # as a sweep override names it, not the architecture
        "kernel": "rbf",
        "matcher": "lapjv",
    }


def test_result_keys_outside_a_hydra_app_use_the_names(tmp_path):
    cfg = make_cfg(tmp_path, "linear", {"name": "greedy"}, dataset={"name": "d"}, backbone={"name": "b"})
    assert result_keys(cfg) == {"dataset": "d", "backbone": "b", "kernel": "linear", "matcher": "greedy"}
