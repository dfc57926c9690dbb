"""Helpers the stages share: the configured kernel's RSM, per-layer sizes with progress, figure names."""

import logging

import numpy as np
from omegaconf import OmegaConf

from semrsm.pipeline.feature_store import ShardedFeatureWriter
from semrsm.pipeline.stage_common import figure_name, kernel_rsm, layers_with_sizes
from semrsm.similarity import semantic_rsm, spatio_semantic_rsm


def feature_set(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "conv": np.maximum(rng.normal(size=(5, 3, 2, 2)), 0).astype(np.float32),
        "tokens": rng.normal(size=(5, 3, 4)).astype(np.float32),
    }
    writer = ShardedFeatureWriter(tmp_path / "features", {"t": 1}, 5, {"conv": "NCHW", "tokens": "NTD"})
    writer.add(
        np.arange(5), arrays, [{"id": f"s{i}", "label": 0, "objects": [], "meta": {}} for i in range(5)]
    )
    return writer.finalize()


def test_kernel_rsm_is_the_configured_kernel_with_and_without_matching(tmp_path):
    features = feature_set(tmp_path)
    cfg = OmegaConf.create(
        {
            "paths": {"cache_dir": str(tmp_path / "cache")},
            "kernel": {"name": "linear"},
            "matcher": {"name": "hungarian"},
            "features": {"progress_bar": False},
            "force": False,
        }
    )
    reps = np.array(features.layer("conv"))
    semantic = kernel_rsm(cfg, features, "conv", True)
    np.testing.assert_allclose(semantic, semantic_rsm(reps, "linear", "hungarian").numpy(), atol=1e-9)
    flat = kernel_rsm(cfg, features, "conv", False)
    np.testing.assert_allclose(flat, spatio_semantic_rsm(reps, "linear").numpy(), atol=1e-9)


def test_layers_with_sizes_log_each_layer(tmp_path, caplog):
    features = feature_set(tmp_path)
    with caplog.at_level(logging.INFO, logger="semrsm.pipeline.stage_common"):
        assert list(layers_with_sizes("demo", features, ["tokens", "conv"])) == [("tokens", 3), ("conv", 4)]
    assert "demo: layer tokens (1/2, 3 positions)" in caplog.messages[0]
    assert "demo: layer conv (2/2, 4 positions)" in caplog.messages[1]


def test_figure_names_are_file_safe():
    assert figure_name("rsm", "blocks.11") == "rsm_blocks.11"
    assert figure_name("distributions", "image_encoder/blocks 3") == "distributions_image_encoder_blocks_3"
