"""The train stage end to end on a tiny synthetic tiny-imagenet set (ResNet18 and a 2-block ViT), its checkpoint
loaded back by name, and the training helpers."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from semrsm.models import Preprocess, build_backbone
from semrsm.pipeline.config import build, register_resolvers
from semrsm.pipeline.stage_train import checkpoint_path
from semrsm.pipeline.stages import run_stage
from semrsm.pipeline.training import TrainSettings, build_trained_backbone, train_transform

CONF = str(Path(__file__).resolve().parents[2] / "conf")
TINY = ["logger=none", "backbone.num_classes=3", "features.progress_bar=false"]
SMALL_DATA = ["dataset.num_classes=3", "dataset.train_per_class=8", "dataset.val_per_class=4"]
TRAIN = ["experiment=train", "experiment.epochs=3", "experiment.batch_size=8"]
LOAD = ["experiment=class_probability"]  # a stage that loads the trained backbone config
VIT = ["backbone=vit_tiny_synthetic", "backbone.depth=2"]


def configure(root, *overrides, stage=TRAIN, data=SMALL_DATA):
    register_resolvers()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=[f"paths.root_dir={root}", *stage, *TINY, *data, *overrides])


def run(root, run_name, *overrides):
    """Run the tiny train config (paths under ``root``) in ``root/run_name``: (summary, results dir, cfg)."""
    cfg = configure(root, *overrides)
    return run_stage(cfg, root / run_name), root / run_name / "results", cfg


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def resnet_run(root):
    return run(root, "resnet18")


@pytest.mark.slow
def test_history_metrics_and_figure(resnet_run):
    summary, results, _ = resnet_run
    history = pd.read_csv(results / "tables" / "history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "val_acc"]
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["val_acc"].between(0, 1).all() and (history[["train_loss", "val_loss"]] > 0).all().all()
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]  # it learns
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["val_acc"] == pytest.approx(history["val_acc"].iloc[-1])
    assert (
        summary["num_train_samples"] == 24
        and summary["num_val_samples"] == 12
        and summary["num_classes"] == 3
    )
    assert (results / "figures" / "history.png").stat().st_size > 1000


def test_checkpoint_loads_by_name_and_by_path(root, resnet_run):
    summary, _, _ = resnet_run
    checkpoint = root / "outputs" / "checkpoints" / "resnet18_synthetic_seed0.pt"
    assert summary["checkpoint"] == str(checkpoint) and checkpoint.is_file()
    by_config = build(configure(root, f"backbone.pretrained={checkpoint}").backbone)
    by_name = build(configure(root, stage=LOAD).backbone)
    by_path = build_backbone("resnet18", pretrained=str(checkpoint), num_classes=3, img_size=64, crop_pct=1.0)
    images = torch.randn(2, 3, 64, 64)
    expected = by_config(images)["logits"]
    assert torch.equal(by_name(images)["logits"], expected) and torch.equal(
        by_path(images)["logits"], expected
    )
    assert not torch.equal(build_backbone("resnet18", num_classes=3, img_size=64)(images)["logits"], expected)


def test_finished_run_is_skipped(root, resnet_run):
    summary, _, _ = resnet_run
    mtime = Path(summary["checkpoint"]).stat().st_mtime_ns
    again, _, _ = run(root, "resnet18")
    assert again == summary and Path(summary["checkpoint"]).stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_other_weights(root):
    quick = ["experiment.epochs=1", "experiment.max_train_samples=8"]

    def weights(name, *overrides):
        summary, _, _ = run(root, name, *quick, f"experiment.checkpoint_name={name}.pt", *overrides)
        return torch.load(summary["checkpoint"])

    first, repeat, other = weights("first"), weights("repeat"), weights("other", "seed=1")
    assert first.keys() == repeat.keys()
    assert all(torch.equal(first[key], repeat[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_vit_trains_and_loads_with_token_layout(root):
    summary, results, _ = run(root, "vit", *VIT, "experiment.epochs=1", "dataset.train_per_class=4")
    assert summary["checkpoint"].endswith("vit_tiny_synthetic_seed0.pt")
    assert len(pd.read_csv(results / "tables" / "history.csv")) == 1
    backbone = build(configure(root, *VIT, stage=LOAD).backbone)
    outputs = backbone(torch.randn(2, 3, 64, 64))
    assert set(backbone.layouts.values()) == {"NTD"} and outputs["blocks.1"].shape == (2, 64, 192)
    assert outputs["logits"].shape == (2, 3)


def test_missing_checkpoint_says_how_to_train_it(tmp_path):
    cfg = configure(tmp_path, stage=LOAD)
    with pytest.raises(FileNotFoundError, match="experiment=train") as error:
        build(cfg.backbone)
    assert str(tmp_path / "outputs" / "checkpoints" / "resnet18_synthetic_seed0.pt") in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["backbone.num_classes=5"], r"backbone.num_classes=3"),
        (["experiment.checkpoint_name=sub/model.pt"], "plain file name"),
        (["experiment.optimizer=adam"], "optimizer must be one of"),
        (["experiment.max_train_samples=1000"], "experiment.max_train_samples"),
    ],
)
def test_bad_settings_raise_before_training(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        run(tmp_path, "bad", *overrides)
    assert not (tmp_path / "outputs" / "checkpoints").exists()


def test_dataset_without_splits_is_refused(tmp_path):
    with pytest.raises(ValueError, match="train/val splits"):
        run_stage(configure(tmp_path, "dataset=photos", data=()), tmp_path / "run")


@pytest.mark.parametrize(
    "settings",
    [{"epochs": 0}, {"batch_size": 2.5}, {"lr": 0}, {"weight_decay": -1}, {"optimizer": "lion"}],
)
def test_train_settings_reject_bad_values(settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        TrainSettings(**settings)


def test_checkpoint_path_is_a_file_under_the_checkpoint_dir(tmp_path):
    cfg = configure(tmp_path)
    assert checkpoint_path(cfg) == Path(cfg.paths.checkpoint_dir) / "resnet18_synthetic_seed0.pt"


def test_train_transform_shifts_and_flips_at_the_eval_size():
    preprocess = Preprocess(image_size=16, resize_size=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    image = Image.fromarray((torch.arange(16 * 16 * 3) % 251).reshape(16, 16, 3).to(torch.uint8).numpy())
    torch.manual_seed(0)
    views = [train_transform(preprocess)(image) for _ in range(8)]
    assert all(view.shape == (3, 16, 16) for view in views)
    assert len({view.numpy().tobytes() for view in views}) > 1


def test_trained_backbone_rejects_a_non_path():
    with pytest.raises(ValueError, match="checkpoint path"):
        build_trained_backbone("resnet18", pretrained=True)
