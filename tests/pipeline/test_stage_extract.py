"""What keys the features of a config and a stage's finished results: configs, seeds and named files."""

import os

import pytest

from semrsm.pipeline.config import build, file_identities
from semrsm.pipeline.stage_extract import feature_source
from semrsm.pipeline.stages import stage_fingerprint


def test_random_init_features_are_keyed_by_the_seed(compose):
    random = feature_source(compose("backbone.pretrained=false"))
    assert random["init_seed"] == 0 and random["backbone"]["name"] == "resnet18"
    assert feature_source(compose("backbone.pretrained=false", "seed=1"))["init_seed"] == 1
    assert "init_seed" not in feature_source(compose("backbone.pretrained=true"))


def test_a_rewritten_checkpoint_changes_feature_source_and_stage_fingerprint(tmp_path, compose):
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"first")
    cfg = compose(f"backbone.pretrained={checkpoint}")
    source, fingerprint = feature_source(cfg), stage_fingerprint(cfg)
    assert source["files"] == {str(checkpoint): [5, checkpoint.stat().st_mtime_ns]}
    checkpoint.write_bytes(b"second")
    os.utime(checkpoint, ns=(1, 1))
    assert feature_source(cfg) != source and stage_fingerprint(cfg) != fingerprint


def test_fingerprint_ignores_settings_that_change_no_result(compose):
    base = stage_fingerprint(compose())
    assert (
        stage_fingerprint(compose("features.num_workers=2", "features.batch_size=8", "logger=wandb")) == base
    )
    assert stage_fingerprint(compose("features.dtype=float16")) != base


def test_file_identities_skip_strings_that_are_not_files(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    assert file_identities({"k": [str(tmp_path / "a.txt"), "cosine", str(tmp_path)]}, "nope") == {
        str(tmp_path / "a.txt"): [1, (tmp_path / "a.txt").stat().st_mtime_ns]
    }


def test_build_raises_the_targets_own_error(compose):
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200.wnids.txt"):
        build(compose("dataset=tinyimagenet").dataset)


def test_build_passes_overrides_and_unwraps_the_missing_checkpoint(compose):
    trained = compose("backbone=resnet18_synthetic").backbone
    with pytest.raises(FileNotFoundError, match=r"resnet18_synthetic_seed0\.pt.*experiment=train"):
        build(trained)
    assert build(trained, pretrained=False).num_classes == 10
